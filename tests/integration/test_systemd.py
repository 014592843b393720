"""Running under systemd: the notify protocol as systemd's socket hears it, and
the shipped units as systemd-analyze judges them.

No systemd runs on this machine (and none in CI), so the service manager's side
is played by a datagram socket named in $NOTIFY_SOCKET, which is all that
Type=notify involves on the daemon's side; the units are checked offline."""

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import alive, queue_name, wait_for

ROOT = Path(__file__).resolve().parents[2]


class NotifySocket:
    """systemd's end of sd_notify(3): collects the daemon's datagrams."""

    def __init__(self, path, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.name = ("@" + path.name) if abstract else str(path)
        self.sock.bind(("\0" + path.name) if abstract else str(path))
        self.sock.settimeout(0.1)
        self.messages = []

    def env(self):
        return {"NOTIFY_SOCKET": self.name}

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, socket.timeout):
                return self.messages
            self.messages.append(dict(line.split("=", 1)
                                      for line in data.decode().split("\n") if line))

    def wait(self, key, value=None, timeout=15, start=0):
        """The first message from index start on that sets key (to value)."""
        def seen():
            for i, m in enumerate(self.drain()[start:], start):
                if key in m and (value is None or m[key] == value):
                    return i, m
            return None
        return wait_for(seen, timeout, what=f"{key}={value} on the notify socket")

    def close(self):
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify(request, tmp_path):
    s = NotifySocket(tmp_path / "notify.sock", abstract=request.param == "abstract")
    yield s
    s.close()


def test_ready_reload_and_stop_are_announced(daemon, notify):
    d = daemon()
    d.start(env=notify.env())
    i, ready = notify.wait("READY", "1")
    assert ready["MAINPID"] == str(d.master_pid)
    assert "serving" in ready["STATUS"]

    d.signal(signal.SIGHUP)
    j, reloading = notify.wait("RELOADING", "1", start=i + 1)
    assert int(reloading["MONOTONIC_USEC"]) > 0
    k, done = notify.wait("READY", "1", start=j + 1)
    assert "reloaded" in done["STATUS"]

    # A refused reload ends the reload too: systemd must not wait for ever.
    d.conf.write_text(d.conf.read_text() + "\n[workers]\ncount = many\n")
    d.signal(signal.SIGHUP)
    j, _ = notify.wait("RELOADING", "1", start=k + 1)
    k, refused = notify.wait("READY", "1", start=j + 1)
    assert "refused" in refused["STATUS"]

    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    notify.wait("STOPPING", "1", start=k + 1)


def test_without_notify_socket_nothing_breaks(daemon, tmp_path):
    # A NOTIFY_SOCKET that nobody listens on (systemd gone, or a stale variable)
    # costs nothing: the daemon starts, reloads and stops as usual.
    d = daemon()
    d.start(env={"NOTIFY_SOCKET": str(tmp_path / "nobody.sock")})
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.status()["reloads"] == 1, what="reload")
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_binary_upgrade_hands_the_main_pid_over(daemon, notify):
    """USR2 under Type=notify: the new master announces itself as the main pid
    once its workers are up, and the old master's stop is not the service's."""
    d = daemon()
    d.start(env=notify.env())
    i, _ = notify.wait("READY", "1")
    old_master = d.master_pid
    d.signal(signal.SIGUSR2)
    j, handover = notify.wait("MAINPID", start=i + 1, timeout=20)
    new_master = int(handover["MAINPID"])
    d.adopted.append(new_master)
    assert new_master != old_master and alive(new_master)
    assert handover["READY"] == "1"
    assert d.wait_exit() == 0
    notify.drain()
    assert not any("STOPPING" in m for m in notify.messages[j:])

    os.kill(new_master, signal.SIGTERM)
    notify.wait("STOPPING", "1", start=j + 1)
    wait_for(lambda: not alive(new_master), what="new master gone")


# --- the units ---------------------------------------------------------------

UNITS = ["c2a-worker.service", "c2a-worker@.service"]
needs_analyze = pytest.mark.skipif(not shutil.which("systemd-analyze"),
                                   reason="systemd-analyze (package systemd) is not installed")


def make_unit(unit, dest, sbindir):
    text = subprocess.run(["sh", str(ROOT / "scripts/mkunit.sh"), unit, str(sbindir), "/etc"],
                          capture_output=True, text=True, check=True).stdout
    # A template is analysed as one of its instances.
    path = dest / unit.replace("@.", "@main.")
    path.write_text(text)
    return path


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_valid_and_hardened(unit, tmp_path):
    path = make_unit(unit, tmp_path, Path(os.environ["C2A_BIN"]).resolve().parent)
    v = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                       capture_output=True, text=True)
    assert v.returncode == 0 and v.stderr == "", v.stderr
    s = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                        str(path)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", s.stdout)
    assert m, s.stdout + s.stderr
    assert float(m.group(1)) <= 2.5 and m.group(2) == "OK", s.stdout


def unit_settings(path, key):
    return [line.split("=", 1)[1] for line in path.read_text().splitlines()
            if line.startswith(key + "=")]


def expand_group(name, seen=None):
    """The system calls of a systemd set such as @system-service, subsets included."""
    seen = set() if seen is None else seen
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", name],
                         capture_output=True, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            if item not in seen:
                seen.add(item)
                calls |= expand_group(item, seen)
        else:
            calls.add(item)
    return calls


def allowed_syscalls(path):
    allowed = set()
    for value in unit_settings(path, "SystemCallFilter"):
        deny = value.startswith("~")
        items = set()
        for item in value.lstrip("~").split():
            items |= expand_group(item) if item.startswith("@") else {item}
        allowed = allowed - items if deny else allowed | items
    return allowed


TRACE_LINE = re.compile(r"^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")
PROT_WX = re.compile(r"\b(mmap|mprotect|pkey_mprotect)\(.*PROT_WRITE\|PROT_EXEC|"
                     r"\b(mmap|mprotect|pkey_mprotect)\(.*PROT_EXEC\|PROT_WRITE|"
                     r"PROT_READ\|PROT_WRITE\|PROT_EXEC")


@needs_analyze
@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
@pytest.mark.skipif(os.environ.get("C2A_SANITIZE") == "1",
                    reason="ASan's own system calls are not the daemon's")
def test_the_daemon_lives_within_the_units_system_call_filter(daemon, broker, tmp_path):
    """Every system call the master, a worker and its engine child make while
    starting, running jobs, reloading, reopening logs and stopping is allowed by
    the unit's SystemCallFilter; none maps memory writable and executable at
    once (MemoryDenyWriteExecute=yes)."""
    unit = make_unit("c2a-worker.service", tmp_path, "/usr/sbin")
    allowed = allowed_syscalls(unit)
    assert {"read", "epoll_wait", "prctl"} <= allowed and "mount" not in allowed

    d = daemon(workers={"count": "1"})
    trace = tmp_path / "trace"
    d.spawn(["strace", "-f", "-qq", "-o", str(trace), os.environ["C2A_BIN"], "-c", str(d.conf)])
    wait_for(lambda: d.status(), timeout=30, what="control socket")
    d.wait_workers(timeout=60)
    master = d.status()["pid"]
    q = queue_name(d.tmp, d.name)
    for i, fmt in enumerate(["ogg", "mp3", "flac", "wav", "opus"]):
        broker.publish(q, {"id": f"sys-{i}", "text": "System calls.", "format": fmt})
    results = broker.wait_results(5, timeout=120)
    assert all(r["status"] == "ok" for r in results.values()), results
    os.kill(master, signal.SIGHUP)
    wait_for(lambda: d.status()["reloads"] == 1, what="reload")
    os.kill(master, signal.SIGUSR1)
    d.wait_workers(timeout=60)
    os.kill(master, signal.SIGTERM)
    assert d.wait_exit(timeout=60) == 0

    used, wx = set(), []
    for line in trace.read_text().splitlines():
        m = TRACE_LINE.match(line)
        if m:
            used.add(m.group(1) or m.group(2))
        if PROT_WX.search(line):
            wx.append(line)
    # The daemon is started by strace (execve of ours is the first call).
    assert {"execve", "epoll_wait", "socketpair", "fsync", "rename", "prctl"} <= used, used
    assert sorted(used - allowed) == []
    assert wx == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) is not installed")
def test_the_whole_daemon_runs_unprivileged(daemon, broker):
    """What the unit asks for (User=, NoNewPrivileges=, no capabilities),
    played with setpriv: the master, its workers and their engines start,
    synthesize, reload and stop as an ordinary user."""
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="c2a-unpriv-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        d = daemon()
        d.tmp = base  # its config, pidfile, log and audio live where nobody can write
        d.conf, d.pidfile, d.logfile = base / "c2a.conf", base / "c2a.pid", base / "c2a.log"
        d.write_config()
        bin_ = os.environ["C2A_BIN"]
        d.spawn(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                 "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all",
                 bin_, "-c", str(d.conf)])
        wait_for(lambda: d.status(), timeout=30, what="control socket")
        d.wait_workers(timeout=60)
        st = d.status()
        for pid in [st["pid"]] + [w["pid"] for w in st["workers"]]:
            assert os.stat(f"/proc/{pid}").st_uid == nobody.pw_uid
            caps = Path(f"/proc/{pid}/status").read_text()
            assert re.search(r"^CapBnd:\s+0+$", caps, re.M), caps
            assert re.search(r"^NoNewPrivs:\s+1$", caps, re.M)
        q = queue_name(d.tmp, d.name)
        broker.publish(q, {"id": "unpriv", "text": "Nobody speaks.", "format": "ogg"})
        r = broker.wait_results(1, timeout=60)["unpriv"]
        assert r["status"] == "ok", r
        assert os.stat(r["path"]).st_uid == nobody.pw_uid
        d.signal(signal.SIGHUP, st["pid"])
        wait_for(lambda: d.status()["reloads"] == 1, what="reload")
        d.signal(signal.SIGTERM, st["pid"])
        assert d.wait_exit(timeout=30) == 0
        assert not d.pidfile.exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
