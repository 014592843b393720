"""The daemon's start, supervision, control and stop paths under valgrind: no
memory errors and no definite leaks in the master or any worker."""

import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import BIN, alive, wait_for

pytestmark = pytest.mark.skipif(
    not shutil.which("valgrind") or os.environ.get("C2A_SANITIZE") == "1",
    reason="needs valgrind and a build without sanitizers")


def test_valgrind_clean(daemon):
    d = daemon(workers={"count": "2", "timeout": "20"})
    logs = d.tmp / "vg"
    d.proc = subprocess.Popen(
        ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
         "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
         f"--log-file={logs}.%p", BIN, "-c", str(d.conf)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    d.master_pid = d.proc.pid
    wait_for(lambda: d.status(), timeout=30, what="status under valgrind")
    old = d.wait_workers(2, timeout=30)
    d.status(full=True)
    os.kill(old[0], signal.SIGKILL)
    d.wait_workers(2, timeout=30, exclude=[old[0]])
    d.write_config(workers={"count": "1", "timeout": "20"})
    d.signal(signal.SIGHUP)
    d.wait_workers(1, timeout=30, exclude=old)
    d.signal(signal.SIGUSR1)
    wait_for(lambda: "log reopened" in d.log(), what="reopen")
    d.signal(signal.SIGTERM)
    assert d.proc.wait(timeout=60) == 0
    reports = sorted(d.tmp.glob("vg.*"))
    assert reports
    bad = []
    for p in reports:
        text = p.read_text()
        if re.search(r"(Invalid|uninitialised|definitely lost|Mismatched)", text):
            bad.append(f"== {p.name}\n{text[:3000]}")
    assert not bad, "\n".join(bad)
