"""USR2: the binary re-executes itself, keeps the control socket, and the old
master leaves once the new one's workers are up."""

import signal
import subprocess
import threading

import requests

from conftest import alive, children_of, wait_for


def test_usr2_hands_over_without_dropping_the_control_socket(daemon):
    d = daemon().start()
    old_master, old_workers = d.master_pid, d.worker_pids()
    errors, seen_pids = [], set()
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                seen_pids.add(requests.get(d.url + "/status", timeout=5).json()["pid"])
            except requests.RequestException as e:
                errors.append(repr(e))

    t = threading.Thread(target=poll)
    t.start()
    try:
        d.signal(signal.SIGUSR2)
        new_master = wait_for(
            lambda: (lambda p: p != old_master and p)(int(d.pidfile.read_text())),
            what="new pidfile")
        d.adopted.append(new_master)
        assert d.wait_exit() == 0  # the old master stopped gracefully
        wait_for(lambda: not any(alive(p) for p in old_workers), what="old workers gone")
        d.master_pid = new_master
        new_workers = d.wait_workers(2)
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert seen_pids == {old_master, new_master}
    st = d.status()
    assert st["pid"] == new_master
    assert not set(new_workers) & set(old_workers)
    assert sorted(children_of(new_master)) == new_workers
    assert not d.pidfile.with_name(d.pidfile.name + ".oldbin").exists()
    log = d.log()
    assert f"re-executing" in log
    assert f"asking the old master {old_master} to stop" in log
    # Of the broker connections, the new master holds its own queue probe only:
    # the old master's was not inherited through exec (it used to be, and stayed
    # open on the broker for as long as the new master lived).
    wait_for(lambda: broker_connections(new_master) == 1, what="one probe connection")


def broker_connections(pid):
    out = subprocess.run(["ss", "-Htnp", "state", "established", "dport", "= :5672"],
                         capture_output=True, text=True, check=True).stdout
    return out.count(f"pid={pid},")


def test_usr2_with_a_failing_new_master_keeps_the_old_one(daemon):
    d = daemon().start()
    workers = d.worker_pids()
    d.write_config("[workers]\ncount = broken\n")  # the new binary will refuse to start
    d.signal(signal.SIGUSR2)
    wait_for(lambda: "re-executed master exited before taking over" in d.log(),
             what="old master notices")
    assert int(d.pidfile.read_text()) == d.master_pid
    assert not d.pidfile.with_name(d.pidfile.name + ".oldbin").exists()
    assert d.worker_pids() == workers
    assert d.status()["state"] == "running"
