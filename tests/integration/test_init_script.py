"""The LSB init script drives the daemon through its pidfile, with LSB exit codes."""

import subprocess

from conftest import BIN, ROOT, alive, run as run_ours, wait_for

INIT = str(ROOT / "scripts" / "c2a-worker.init")


def run(d, action):
    env = dict(DAEMON=BIN, CONFIG=str(d.conf), PIDFILE=str(d.pidfile),
               DEFAULTS="/nonexistent", STOP_TIMEOUT="20")
    r = run_ours(["sh", INIT, action], env=env, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_init_script_lifecycle(daemon):
    d = daemon()
    assert run(d, "status")[0] == 3
    assert run(d, "stop")[0] == 0  # stopping a stopped service succeeds
    assert run(d, "reload")[0] == 7
    rc, out = run(d, "start")
    assert rc == 0, out
    pid = int(d.pidfile.read_text())
    d.adopted.append(pid)
    d.master_pid = pid
    old = d.wait_workers(2)
    rc, out = run(d, "status")
    assert rc == 0 and f"running (pid {pid})" in out
    rc, out = run(d, "start")
    assert rc == 0 and "already running" in out

    d.write_config(workers={"count": "3"})
    assert run(d, "reload")[0] == 0
    d.wait_workers(3, exclude=old, timeout=15)

    d.write_config("[workers]\ncount = x\n")
    rc, out = run(d, "reload")
    assert rc == 6 and "not reloading" in out
    assert "count: not an integer" in out  # the reason, not only the verdict
    # A restart with a bad configuration keeps the old daemon running (it used
    # to stop it first, then refuse to start: an outage).
    rc, out = run(d, "restart")
    assert rc == 6 and "not restarting (still running)" in out
    assert alive(pid) and int(d.pidfile.read_text()) == pid
    d.write_config(workers={"count": "3"}, speech={"voice": "xx-nowhere"})
    rc, out = run(d, "restart")  # a file -t refuses for what start needs
    assert rc == 6 and "voice: xx-nowhere is not installed" in out and alive(pid)
    assert run(d, "configtest")[0] == 1
    d.write_config()
    assert run(d, "configtest")[0] == 0
    assert run(d, "reopen")[0] == 0
    wait_for(lambda: "log reopened" in d.log(), what="reopen")

    rc, out = run(d, "restart")
    assert rc == 0, out
    new_pid = int(d.pidfile.read_text())
    d.adopted.append(new_pid)
    assert new_pid != pid and not alive(pid)

    rc, out = run(d, "stop")
    assert rc == 0 and "stopped" in out
    assert not alive(new_pid)
    assert not d.pidfile.exists()
    assert run(d, "status")[0] == 3
    assert run(d, "bogus")[0] == 2


def test_init_script_dead_pidfile_and_bad_config(daemon):
    d = daemon()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        d.pidfile.write_text(f"{sleeper.pid}\n")  # a live pid that is not ours
        rc, out = run(d, "status")
        assert rc == 1 and "exists" in out
    finally:
        sleeper.kill()
        sleeper.wait()
    d.write_config("[workers]\ncount = 0\n")
    rc, out = run(d, "start")
    assert rc == 6 and "has errors" in out
