"""The control socket: errors as JSON, a unix socket, and nothing a client sends
crashes or blocks the master."""

import http.client
import json
import os
import select
import socket
import stat
import subprocess
import threading
import time

import requests

from conftest import queue_name, wait_for


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.unix_path)


def test_unknown_path_and_wrong_method(daemon):
    d = daemon().start()
    r = requests.get(d.url + "/nope", timeout=5)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = requests.post(d.url + "/status", data="x", timeout=5)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["Allow"] == "GET, HEAD"
    r = requests.get(d.url + "/status?full", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert "config" in r.json()


def unix_status(path):
    def get():
        c = UnixHTTPConnection(str(path))
        c.request("GET", "/status")
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, json.loads(body)
    return get


def test_unix_socket_serves_status(daemon, tmp_path):
    path = tmp_path / "ctl.sock"
    path.write_text("stale")
    d = daemon(master={"control": f"unix:{path}"})
    d.spawn()
    status, doc = wait_for(unix_status(path), what="unix status")
    assert status == 200
    assert doc["pid"] == d.master_pid and doc["control"] == f"unix:{path}"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    d.proc.terminate()
    assert d.proc.wait(timeout=15) == 0
    assert not path.exists()


def test_hostile_clients_cannot_crash_or_block_the_master(daemon):
    d = daemon().start()
    pid = d.master_pid

    # Garbage and malformed requests get an error or a closed connection.
    for junk in (b"\x00\xff\xfe garbage\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"POST /status HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"GET /status HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                 b"POST /status HTTP/1.1\r\nContent-Length: 999999999\r\n\r\nabc"):
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            reply = b""
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                while chunk := s.recv(65536):
                    reply += chunk
            except (ConnectionResetError, BrokenPipeError, TimeoutError, OSError):
                pass
            if reply:
                code = int(reply.split(b" ", 2)[1])
                assert 400 <= code < 500, reply[:200]

    # Half requests held open do not block anyone else.
    held = []
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(b"GET /sta")
        held.append(s)
    t0 = time.monotonic()
    assert d.status()["pid"] == pid
    assert time.monotonic() - t0 < 1
    for s in held:
        s.close()

    # 10,000 connections opened and dropped, 500 at a time.
    opened = 0
    while opened < 10000:
        batch = []
        for _ in range(500):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.connect(("127.0.0.1", d.port))
            batch.append(s)
        for s in batch:
            s.close()
        opened += len(batch)
    st = wait_for(lambda: d.status(), what="status after the storm")
    assert st["pid"] == pid
    assert d.proc.poll() is None
    assert len(st["workers"]) == 2
    assert st["totals"]["worker_restarts"] == 0


def test_listen_backlog_rides_out_connection_bursts(daemon):
    """libevent's listener used to re-listen() with a backlog of 128: bursts of a
    few hundred connections overflowed it and clients stalled a second per SYN
    retry."""
    d = daemon().start()
    out = subprocess.run(["ss", "-Hltn", f"sport = :{d.port}"], capture_output=True,
                         text=True).stdout.split()
    backlog = int(out[2])
    with open("/proc/sys/net/core/somaxconn") as f:
        assert backlog == min(4096, int(f.read()))


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def ask(s, req=HEALTHZ):
    """One request on a keep-alive connection; the reply, b"" if it was closed."""
    s.sendall(req)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def closed_by_peer(s):
    if not select.select([s], [], [], 0)[0]:
        return False
    try:
        return s.recv(4096, socket.MSG_PEEK) == b""
    except OSError:
        return True


def test_keepalive_clients_cannot_lock_others_out(daemon):
    """300 clients holding keep-alive connections and asking again and again
    (a dashboard fleet): a new client is served at once, the connections idle
    longest are closed to make room, and the master keeps at most 256."""
    d = daemon().start()
    held = []
    try:
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            reply = ask(s)
            assert reply.startswith(b"HTTP/1.1 200"), (i, reply[:100])
            held.append(s)
        # The first 44 (idle longest) made room for the last 44.
        time.sleep(0.3)
        gone = [i for i, s in enumerate(held) if closed_by_peer(s)]
        assert gone == list(range(44)), gone
        # Everyone still there asks again; a newcomer is served at once.
        for s in held[44:]:
            assert ask(s).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        r = requests.get(d.url + "/healthz", timeout=5)
        assert r.status_code == 200 and time.monotonic() - t0 < 1
        assert "256 connections open" in d.log()
    finally:
        for s in held:
            s.close()
    st = wait_for(lambda: d.status(), what="status once they left")
    assert st["totals"]["worker_restarts"] == 0


class FreezingRelay:
    """A TCP relay to the shared broker that can stop relaying new connections:
    a client connecting while it is frozen waits for the broker's answer as it
    would behind a hung broker."""

    def __init__(self, target=("127.0.0.1", 5672)):
        self.target = target
        self.frozen = False
        self.held = []
        self.threads = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
                if self.frozen:
                    self.held.append(c)
                    continue
                u = socket.create_connection(self.target)
            except OSError:
                return
            self.held += [c, u]
            for a, b in ((c, u), (u, c)):
                t = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pump(a, b):
        try:
            while (data := a.recv(65536)):
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        """Cut every connection (shutdown wakes the threads blocked on them,
        close alone does not) and wait for the threads."""
        for s in [self.sock] + list(self.held):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)
        for s in [self.sock] + list(self.held):
            s.close()


def test_a_client_awaiting_dead_letters_is_not_closed_for_room(daemon):
    """GET /dead/Q is answered when c2actl has asked the broker, which can take
    seconds: the client waiting for it is not idle. When 300 keep-alive clients
    fill the control socket, the connections idle longest are closed, never the
    one awaiting its answer (it was the first closed: its request was the
    oldest)."""
    relay = FreezingRelay()
    held = []
    d = w = None
    try:
        d = daemon(broker={"url": f"amqp://guest:guest@127.0.0.1:{relay.port}/%2f"}).start()
        relay.frozen = True  # c2actl now waits 5 s for the broker, then gives up
        w = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        w.sendall(f"GET /dead/{queue_name(d.tmp, d.name)} HTTP/1.1\r\nHost: t\r\n\r\n"
                  .encode())
        def helper_running():
            kids = open(f"/proc/{d.master_pid}/task/{d.master_pid}/children").read().split()
            return any(open(f"/proc/{k}/comm").read().strip() == "c2actl" for k in kids
                       if os.path.exists(f"/proc/{k}/comm"))
        wait_for(helper_running, what="c2actl asking the broker")
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            assert ask(s).startswith(b"HTTP/1.1 200"), i
            held.append(s)
        time.sleep(0.3)
        if select.select([w], [], [], 0)[0]:
            assert w.recv(1, socket.MSG_PEEK) != b"", "closed to make room"
            raise AssertionError("answered already: too slow to tell")
        gone = [i for i, s in enumerate(held) if closed_by_peer(s)]
        assert len(gone) == 45, gone
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = w.recv(4096)
            assert chunk, f"closed without an answer: {reply!r}"
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 502"), reply[:200]
        assert b"broker_unreachable" in reply
    finally:
        for s in held + [w]:
            if s:
                s.close()
        if d:
            d.stop()  # before its workers lose the broker with the relay
        relay.close()


def test_slow_requests_are_dropped(daemon):
    """Slowloris: a header byte a second restarts evhttp's idle timeout every
    time; the whole request must arrive within 10 s of its first byte. A
    keep-alive client's second request is held to the same."""
    d = daemon().start()
    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        slow.append(s)
    ka = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    assert ask(ka).startswith(b"HTTP/1.1 200")
    slow.append(ka)
    line = b"GET /status HTTP/1.1\r\nX-Slow: " + b"a" * 100
    t0 = time.monotonic()
    closed_at = {}
    for i in range(len(line)):
        for k, s in enumerate(slow):
            if k in closed_at:
                continue
            try:
                s.sendall(line[i:i + 1])
            except OSError:
                closed_at[k] = time.monotonic() - t0
        if len(closed_at) == len(slow) or time.monotonic() - t0 > 20:
            break
        # Others are served meanwhile.
        assert requests.get(d.url + "/healthz", timeout=2).status_code == 200
        time.sleep(1)
        for k, s in enumerate(slow):
            if k not in closed_at and closed_by_peer(s):
                closed_at[k] = time.monotonic() - t0
    assert len(closed_at) == len(slow), closed_at
    assert all(9 <= t <= 14 for t in closed_at.values()), closed_at
    assert "dropped: no whole request within 10 s" in d.log()
    for s in slow:
        s.close()


def test_out_of_descriptors(daemon):
    """The master past its descriptor limit: the connections idle longest are
    closed for new ones, /healthz still answers, accept() does not spin, and
    the log says so once, not ten times a second."""
    import resource
    d = daemon().start()
    held = []
    old = resource.prlimit(d.master_pid, resource.RLIMIT_NOFILE)
    resource.prlimit(d.master_pid, resource.RLIMIT_NOFILE, (64, old[1]))
    try:
        for _ in range(120):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            held.append(s)
            try:
                ask(s)
            except OSError:
                pass
        for _ in range(20):
            t0 = time.monotonic()
            r = requests.get(d.url + "/healthz", timeout=5)
            assert r.status_code == 200 and time.monotonic() - t0 < 1
        time.sleep(1)
        log = d.log()
        assert 1 <= log.count("Too many open files") <= 2, log[-2000:]
        cpu = lambda: sum(int(x) for x in open(f"/proc/{d.master_pid}/stat").read()
                          .rsplit(")", 1)[1].split()[11:13])
        c0 = cpu()
        time.sleep(2)
        assert cpu() - c0 < 50  # clock ticks: no accept() loop
    finally:
        for s in held:
            s.close()
        resource.prlimit(d.master_pid, resource.RLIMIT_NOFILE, old)
    st = wait_for(lambda: d.status(), what="status once they left")
    assert st["pid"] == d.master_pid and st["totals"]["worker_restarts"] == 0


def test_nul_byte_in_a_request_is_refused(daemon):
    """evhttp keeps header values as C strings: "Bearer <token>\\0junk" would
    pass for the token."""
    d = daemon(master={"control_token": "tok"}).start()
    for hdr in (b"Authorization: Bearer tok\x00junk", b"X-Other: a\x00b"):
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            reply = ask(s, b"POST /pause HTTP/1.1\r\nHost: x\r\n" + hdr +
                        b"\r\nContent-Length: 0\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
            assert b"NUL" in reply
    assert d.status()["paused"] is False
    r = requests.post(d.url + "/pause", headers={"Authorization": "Bearer tok"}, timeout=5)
    assert r.status_code == 200 and d.status()["paused"] is True
