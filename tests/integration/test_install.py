"""make install honours PREFIX, SYSCONFDIR and DESTDIR at install time: an
installed tree anywhere finds its plugins, reads its own configuration by
default, keeps the configuration private, and make uninstall takes it away."""

import os
import shutil
import stat
import subprocess

import pytest

from conftest import ROOT, base_config, free_port, queue_name, wait_for

pytestmark = pytest.mark.skipif(os.environ.get("C2A_SANITIZE") == "1",
                                reason="builds and installs a tree of its own")


def make(*args, timeout=300):
    r = subprocess.run(["make", "-s", "-j2", "-C", str(ROOT), *args], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def installed_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_install_anywhere_then_uninstall(tmp_path, daemon, broker):
    build, prefix = tmp_path / "build", tmp_path / "opt" / "c2a"
    etc_before = sorted(os.listdir("/etc"))
    # A plain build first, then an install elsewhere: the paths compiled in
    # follow PREFIX (the build used to keep /usr/local and workers never booted).
    make(f"BUILD={build}", "all")
    make(f"BUILD={build}", f"PREFIX={prefix}", "install")
    assert sorted(os.listdir("/etc")) == etc_before  # nothing outside PREFIX
    conf = prefix / "etc" / "c2a-worker.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640  # it holds secrets
    for f in ("sbin/c2a-worker", "bin/c2actl", "lib/c2a-worker/c2a-pipeline.so",
              "lib/c2a-worker/c2a-engine.so", "lib/systemd/system/c2a-worker@.service",
              "etc/init.d/c2a-worker", "share/man/man8/c2a-worker.8"):
        assert (prefix / f).exists(), f
    unit = (prefix / "lib/systemd/system/c2a-worker.service").read_text()
    assert f"ExecStart={prefix}/sbin/c2a-worker -c ${{C2A_CONFIG}}" in unit
    assert f"C2A_CONFIG={prefix}/etc/c2a-worker.conf" in unit

    # Its own configuration by default.
    binary = prefix / "sbin" / "c2a-worker"
    r = subprocess.run([str(binary), "-T"], capture_output=True, text=True, timeout=30)
    assert f"configuration file {conf} test" in r.stdout, r.stdout + r.stderr

    # The installed daemon's workers find the plugins and do a job.
    d = daemon()
    d.write_config(base_config(d.tmp, d.port, d.name, workers={"count": "1"}))
    d.spawn([str(binary), "-c", str(d.conf)])
    wait_for(lambda: d.status(), what="control socket")
    d.wait_workers(timeout=30)
    broker.publish(queue_name(d.tmp, d.name), {"id": "inst", "text": "Installed.",
                                               "format": "ogg"})
    assert broker.wait_results(1)["inst"]["status"] == "ok"
    d.stop()

    # DESTDIR stages a /usr install without touching /usr or /etc.
    stage = tmp_path / "stage"
    make(f"BUILD={build}", "PREFIX=/usr", f"DESTDIR={stage}", "install")
    assert (stage / "etc" / "c2a-worker.conf").exists()
    assert (stage / "usr" / "lib" / "c2a-worker" / "c2a-tls.so").exists()
    assert "ExecStart=/usr/sbin/c2a-worker" in \
        (stage / "usr/lib/systemd/system/c2a-worker.service").read_text()

    r = make(f"BUILD={build}", f"PREFIX={prefix}", "uninstall")
    assert "c2a-worker.conf is left in place" in r.stdout
    assert installed_files(prefix) == ["etc/c2a-worker.conf"]
    shutil.rmtree(build)
