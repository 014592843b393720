"""The master's supervision, proved from outside: pids, /status, pidfile, log,
exit codes. One test per behaviour of the spec's signal table and more."""

import os
import signal
import socket
import time

from conftest import BIN, alive, children_of, queue_name, run, wait_for


def test_config_check_good_and_bad(daemon, tmp_path):
    d = daemon()
    r = run([BIN, "-t", "-c", str(d.conf)])
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stdout
    bad = tmp_path / "bad.conf"
    bad.write_text("[master]\ncontrol = 1.2.3.4\n[workers]\ncount = many\nfoo = 1\n[x]\n")
    r = run([BIN, "-t", "-c", str(bad)])
    assert r.returncode == 1
    assert f"{bad}:2: control: expected host:port or unix:/path" in r.stderr
    assert f"{bad}:4: count: not an integer" in r.stderr
    assert f"{bad}:5: foo: unknown key in [workers]" in r.stderr
    assert f"{bad}:6: [x]: unknown section" in r.stderr
    # Starting with a bad file is a config error: exit 1, nothing left behind.
    r = run([BIN, "-c", str(bad)], timeout=10)
    assert r.returncode == 1
    r = run([BIN, "-t", "-c", str(tmp_path / "missing.conf")])
    assert r.returncode == 1 and "cannot open" in r.stderr


def test_version_and_usage():
    r = run([BIN, "-V"])
    assert r.returncode == 0 and r.stdout.startswith("c2a-worker ")
    r = run([BIN, "-h"])
    assert r.returncode == 0 and "-w N" in r.stdout
    r = run([BIN, "-Z"])
    assert r.returncode == 1


def test_status_has_spec_fields(daemon):
    d = daemon().start()
    st = d.status()
    for k in ("pid", "version", "started_at", "state", "config_file", "paused", "workers",
              "totals", "queues", "broker"):
        assert k in st, k
    assert st["pid"] == d.master_pid
    assert st["state"] == "running"
    assert st["config_file"] == str(d.conf)
    assert st["paused"] is False
    assert len(st["workers"]) == 2
    for w in st["workers"]:
        for k in ("pid", "state", "started_at", "heartbeat_at", "jobs_ok", "jobs_failed",
                  "current_job", "rss_kb"):
            assert k in w, k
        assert w["state"] == "idle"
        assert w["rss_kb"] > 0
        assert abs(w["heartbeat_at"] - time.time()) < 3
        assert os.getppid() != w["pid"] and w["pid"] in children_of(d.master_pid)
    for k in ("jobs_ok", "jobs_failed", "jobs_retried", "jobs_dead", "worker_restarts"):
        assert st["totals"][k] == 0
    queue = queue_name(d.tmp, "c2a")
    assert [(q["name"], q["kind"]) for q in st["queues"]] == [
        (queue, "work"), (queue + ".dead", "dead-letter")] + [
        (f"{queue}.retry.{ms}", "retry") for ms in (1000, 2000, 4000, 8000)]
    # The master asks the broker every 2 s; the workers declared the queues at boot.
    st = wait_for(lambda: (lambda x: x["queues"][0]["consumers"] == 2 and x)(d.status()),
                  what="queue figures")
    assert st["queues"][0] == {"name": queue, "kind": "work", "messages": 0, "consumers": 2,
                               "exists": True, "error": None}
    assert st["broker"]["connected"] is True  # the workers' connections
    assert st["broker"]["probe_connected"] is True  # the master's own
    assert all(w["broker_connected"] for w in st["workers"])
    full = d.status(full=True)
    assert full["config"]["workers"]["count"] == "2"
    assert int(d.pidfile.read_text()) == d.master_pid


def test_kill9_worker_is_replaced_within_2s(daemon):
    d = daemon().start()
    before = d.worker_pids()
    victim = before[0]
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    after = wait_for(lambda: (lambda p: len(p) == 2 and victim not in p and p)(d.worker_pids()),
                     timeout=2, what="replacement")
    assert time.monotonic() - t0 < 2
    assert before[1] in after
    st = d.status()
    assert st["totals"]["worker_restarts"] == 1
    assert st["restarts"]["killed"] == 1
    assert f"worker {victim} was killed from outside" in d.log()


def test_hup_with_new_count_leaves_only_new_pids(daemon):
    d = daemon().start()
    old = d.worker_pids()
    d.write_config(workers={"count": "3", "timeout": "5", "graceful_timeout": "5"})
    d.signal(signal.SIGHUP)
    new = d.wait_workers(3, exclude=old)
    assert not set(new) & set(old)
    wait_for(lambda: not any(alive(p) for p in old), what="old workers gone")
    assert sorted(children_of(d.master_pid)) == new
    st = d.status()
    assert st["generation"] == 2 and st["reloads"] == 1
    assert st["totals"]["worker_restarts"] == 0
    assert "configuration reloaded (generation 2, 3 workers)" in d.log()


def test_hup_with_broken_config_keeps_old_workers(daemon):
    d = daemon().start()
    old = d.worker_pids()
    d.write_config("[workers]\ncount = lots\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in d.log(), what="refusal in log")
    log = d.log()
    assert f"{d.conf}:2: count: not an integer" in log
    time.sleep(0.5)
    assert d.worker_pids() == old
    assert d.status()["generation"] == 1
    assert d.proc.poll() is None


def test_reload_to_unbootable_app_keeps_old_workers(daemon, test_app):
    d = daemon().start()
    old = d.worker_pids()
    d.write_config(workers={"count": "2", "timeout": "5", "graceful_timeout": "5",
                            "app": test_app("failboot", "failboot_app")})
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.status()["backoff"]["boot_failures"] >= 2, what="boot failures")
    # The old generation keeps serving while the new one cannot boot.
    assert all(alive(p) for p in old)
    states = {w["pid"]: w["state"] for w in d.status()["workers"]}
    assert all(states[p] == "idle" for p in old)
    # A good config again: the new generation comes up and replaces the old.
    d.write_config(workers={"count": "2", "timeout": "5", "graceful_timeout": "5"})
    d.signal(signal.SIGHUP)
    d.wait_workers(2, exclude=old, timeout=15)
    assert d.status()["backoff"]["boot_failures"] == 0


def test_term_graceful_stop_leaves_nothing(daemon):
    d = daemon().start()
    workers = d.worker_pids()
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert not any(alive(p) for p in workers)
    assert not d.pidfile.exists()
    assert "graceful stop" in d.log()
    assert "master exiting (0)" in d.log()


def test_int_stops_like_term(daemon):
    d = daemon().start()
    workers = d.worker_pids()
    d.signal(signal.SIGINT)
    assert d.wait_exit() == 0
    assert not any(alive(p) for p in workers)
    assert not d.pidfile.exists()


def test_term_kills_worker_that_outlives_graceful_timeout(daemon):
    d = daemon(workers={"count": "1", "timeout": "60", "graceful_timeout": "1"}).start()
    (w,) = d.worker_pids()
    os.kill(w, signal.SIGSTOP)  # it can no longer finish anything
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert 0.9 < time.monotonic() - t0 < 5
    assert not alive(w)
    assert f"killing worker {w}" in d.log()


def test_quit_fast_stop(daemon):
    d = daemon().start()
    workers = d.worker_pids()
    d.signal(signal.SIGQUIT)
    assert d.wait_exit() == 0
    assert not any(alive(p) for p in workers)
    assert "fast stop" in d.log()
    assert "exiting now: SIGQUIT" in d.log()


def test_ttin_ttou(daemon):
    d = daemon().start()
    old = d.worker_pids()
    d.signal(signal.SIGTTIN)
    pids = d.wait_workers(3)
    assert set(old) < set(pids)
    # Signals of one kind that arrive together are merged by the kernel: one at a time.
    d.signal(signal.SIGTTOU)
    d.wait_workers(2)
    d.signal(signal.SIGTTOU)
    pids = d.wait_workers(1)
    # The oldest go first.
    newest = (set(pids) - set(old)) or set(pids)
    assert set(pids) == newest
    assert d.status()["workers_target"] == 1
    d.signal(signal.SIGTTOU)  # never below one
    time.sleep(0.5)
    assert d.status()["workers_target"] == 1
    assert "scale to 0 refused" in d.log()
    assert d.status()["totals"]["worker_restarts"] == 0


def test_usr1_reopens_renamed_log(daemon):
    d = daemon().start()
    rotated = d.logfile.with_suffix(".log.1")
    os.rename(d.logfile, rotated)
    d.signal(signal.SIGUSR1)
    wait_for(lambda: d.logfile.exists() and "log reopened" in d.log(), what="new log")
    assert "log reopened" not in rotated.read_text()
    # Workers reopened too: their next lines land in the new file.
    victim = d.worker_pids()[0]
    os.kill(victim, signal.SIGTERM)
    wait_for(lambda: f"[{victim}] worker info: stopping: SIGTERM" in d.log(), what="worker line")
    assert f"[{victim}] worker info: stopping" not in rotated.read_text()


def test_missed_heartbeat_gets_worker_replaced(daemon):
    d = daemon(workers={"count": "2", "timeout": "2", "graceful_timeout": "2"}).start()
    victim = d.worker_pids()[0]
    os.kill(victim, signal.SIGSTOP)  # a worker whose loop no longer turns
    wait_for(lambda: not alive(victim), timeout=6, what="stuck worker killed")
    # A zombie is "not alive" before the master has reaped it and cleared its
    # scoreboard slot, so wait for the replacement rather than any two workers.
    d.wait_workers(2, exclude=(victim,))
    st = d.status()
    assert st["restarts"]["heartbeat"] == 1
    assert f"killing worker {victim}: heartbeat" in d.log()


def test_boot_failures_back_off(daemon, test_app):
    d = daemon(workers={"count": "2", "timeout": "5",
                        "app": test_app("failboot", "failboot_app")})
    d.start(wait_workers=False)
    time.sleep(5)
    spawns = d.log().count("spawned worker")
    failures = d.log().count("failed to boot")
    # Without backoff this would be hundreds; with it 0.5 s, 1 s, 2 s, ... apart.
    assert 3 <= spawns <= 9, spawns
    assert failures >= 3
    st = d.status()
    assert st["state"] == "backoff"
    assert st["backoff"]["boot_failures"] >= 3
    assert st["restarts"]["boot_failed"] >= 3
    assert "app " in d.log() and "init failed" in d.log()
    assert d.proc.poll() is None  # the master never gives up or spins
    # It recovers by itself once the app is fixed.
    d.write_config(workers={"count": "2", "timeout": "5"})
    d.signal(signal.SIGHUP)
    d.wait_workers(2, timeout=15)
    assert d.status()["state"] == "running"


def test_app_loaded_with_dlopen(daemon, test_app):
    d = daemon(workers={"count": "1", "app": test_app("okapp", "ok_app")}).start()
    assert "worker ready (app okapp)" in d.log()
    bad = daemon("wrongabi", workers={"count": "1", "app": test_app("okapp", "wrong_abi_app")})
    bad.start(wait_workers=False)
    wait_for(lambda: "ABI version 999, this server speaks 2" in bad.log(), what="ABI refusal")
    missing = daemon("missing", workers={"count": "1", "app": "/nonexistent/lib.so:app"})
    missing.start(wait_workers=False)
    wait_for(lambda: "/nonexistent/lib.so: cannot open shared object file" in missing.log(),
             what="dlopen error")
    # The worker logs before it exits; the master counts the failure when it reaps it.
    wait_for(lambda: missing.status()["backoff"]["boot_failures"] >= 1, what="boot failure counted")


def test_pidfile_refuses_live_master_and_takes_over_stale(daemon):
    d = daemon().start()
    other = daemon("other")  # its own control port and log, the same pidfile
    other.write_config(master={"pidfile": str(d.pidfile), "log_file": str(d.logfile)})
    r = run([BIN, "-c", str(other.conf)], timeout=10)
    assert r.returncode == 2
    assert f"is held by a running c2a-worker (pid {d.master_pid})" in d.log()
    d.signal(signal.SIGTERM)
    d.wait_exit()
    # A stale pidfile naming a pid that is not a master is taken over.
    d.pidfile.write_text("1\n")
    d.start()
    assert int(d.pidfile.read_text()) == d.master_pid


def test_control_bind_failure_is_exit_2(daemon):
    d = daemon().start()
    d2 = daemon("second")
    d2.write_config(master={"control": f"127.0.0.1:{d.port}"})
    r = run([BIN, "-c", str(d2.conf)], timeout=10)
    assert r.returncode == 2
    assert "Address already in use" in d2.log()
    assert not d2.pidfile.exists()


def test_daemonize(daemon):
    d = daemon()
    r = run([BIN, "-D", "-c", str(d.conf)], timeout=10)
    assert r.returncode == 0, r.stderr
    pid = int(d.pidfile.read_text())
    assert alive(pid)
    st = wait_for(lambda: d.status(), what="status")
    assert st["pid"] == pid
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[4]) == 0  # no controlling terminal
    assert int(fields[3]) != os.getsid(0)  # its own session
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    d.wait_workers()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), what="daemon gone")
    assert not d.pidfile.exists()


def test_daemonize_failure_is_reported_on_the_terminal(daemon):
    d = daemon()
    with socket.socket() as s:
        s.bind(("127.0.0.1", d.port))
        s.listen()
        d.write_config(master={"log_file": "-"})
        r = run([BIN, "-D", "-c", str(d.conf)], timeout=10)
    assert r.returncode == 2
    assert "Address already in use" in r.stderr
    assert not d.pidfile.exists()


def test_workers_drop_privileges(daemon):
    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root")
    import shutil
    import tempfile
    out = tempfile.mkdtemp(prefix="c2a-nobody-")
    os.chown(out, 65534, 65534)
    try:
        _check_nobody(daemon, out)
    finally:
        shutil.rmtree(out)


def _check_nobody(daemon, out):
    d = daemon(master={"user": "nobody"}, output={"dir": out}).start()
    for pid in d.worker_pids():
        with open(f"/proc/{pid}/status") as f:
            uid = next(l for l in f if l.startswith("Uid:")).split()[1:]
        assert uid == ["65534"] * 4
    with open(f"/proc/{d.master_pid}/status") as f:
        assert next(l for l in f if l.startswith("Uid:")).split()[1] == "0"
    # An output directory the workers cannot write is a boot failure that says why.
    bad = daemon("badout", master={"user": "nobody"}, output={"dir": str(d.tmp / "private")})
    bad.start(wait_workers=False)
    wait_for(lambda: "Permission denied" in bad.log() and "failed to boot" in bad.log(),
             what="boot failure")


def test_hup_moves_the_control_socket(daemon):
    from conftest import free_port
    import requests
    d = daemon().start()
    old_port, new_port = d.port, free_port()
    d.write_config(master={"control": f"127.0.0.1:{new_port}"})
    d.signal(signal.SIGHUP)
    d.port = new_port
    wait_for(lambda: d.status()["control"] == f"127.0.0.1:{new_port}", what="new socket")
    try:
        requests.get(f"http://127.0.0.1:{old_port}/status", timeout=2)
        raise AssertionError("the old control socket still answers")
    except requests.ConnectionError:
        pass


def test_command_line_overrides_survive_reload(daemon):
    from conftest import free_port
    d = daemon()
    port = free_port()
    d.spawn([BIN, "-c", str(d.conf), "-w", "3", "-b", f"127.0.0.1:{port}"])
    d.port = port
    old = d.wait_workers(3)
    d.signal(signal.SIGHUP)
    d.wait_workers(3, exclude=old)
    assert d.status()["control"] == f"127.0.0.1:{port}"
    r = run([BIN, "-t", "-c", str(d.conf), "-w", "0"])
    assert r.returncode == 1 and "command line: count: out of range (1..256)" in r.stderr
