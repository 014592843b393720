"""The daemon's start, supervision, control and stop paths under valgrind: no
memory errors and no definite leaks in the master or any worker."""

import os
import re
import shutil
import signal

import pytest

from conftest import BIN, alive, wait_for

pytestmark = pytest.mark.skipif(
    not shutil.which("valgrind") or os.environ.get("C2A_SANITIZE") == "1",
    reason="needs valgrind and a build without sanitizers")


def test_valgrind_clean(daemon, broker, web):
    from test_fetch import ARTICLE, LOCAL
    from test_pipeline import queue_of
    from test_tts_http import FakeTTS, http_engine
    tts = FakeTTS(web)
    web.static("/story.html", "text/html", ARTICLE)
    web.static("/up", None, b"", status=201)
    web.static("/cb", "text/plain", "ok")
    d = daemon(workers={"count": "2", "timeout": "20"}, fetch=LOCAL,
               speech={**http_engine(web), "engine": "espeak"})
    logs = d.tmp / "vg"
    d.spawn(["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
             "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
             f"--log-file={logs}.%p", BIN, "-c", str(d.conf)])
    wait_for(lambda: d.status(), timeout=30, what="status under valgrind")
    old = d.wait_workers(2, timeout=30)
    d.status(full=True)
    # Every path of a job: text, a fetched page, the http engine, an upload and a
    # callback, a refused fetch.
    q = queue_of(d)
    broker.publish(q, {"id": "t", "text": "Under valgrind.", "format": "ogg"})
    broker.publish(q, {"id": "u", "url": web.url("/story.html"), "upload_url": web.url("/up"),
                       "callback_url": web.url("/cb"), "format": "mp3"})
    broker.publish(q, {"id": "h", "text": "Remote. Voice.", "engine": "http", "format": "flac"})
    broker.publish(q, {"id": "x", "url": web.url("/nothing-here")})
    res = broker.wait_results(4, timeout=120)
    assert [res[i]["status"] for i in "tuhx"] == ["ok", "ok", "ok", "error"], res
    assert tts.problems == [] and len(web.got("/cb")) == 1
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
