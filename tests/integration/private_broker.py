"""A private RabbitMQ node for tests that stop and start their broker.

The shared node on 127.0.0.1:5672 serves every other test and must never be
stopped; a test that takes its broker away runs one of these instead: Debian's
rabbitmq-server with its own node name, AMQP port, distribution port, Erlang
cookie, data and log directories, all under the test's temporary directory.
It can be stopped and started again on the same data (durable queues and
persistent messages survive), and close() always leaves nothing running.

    with PrivateBroker(tmp_path / "rabbitmq") as rb:
        url = rb.url              # amqp://guest:guest@127.0.0.1:<port>/%2f
        rb.stop(); rb.start()     # a full node restart on the same data
        rb.ctl("list_queues", "name", "messages")

With tls=(cacertfile, certfile, keyfile) it also listens for AMQP over TLS on
tls_port (tls_url), without asking clients for certificates.

The node runs as the calling user (root or not: Debian's /usr/sbin wrappers,
which switch to the rabbitmq user, are bypassed) with HOME in its own directory,
so that its Erlang cookie is its own; rabbitmqctl runs the same way, in ctl().
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def available():
    return os.path.exists(SERVER) and os.path.exists(CTL)


def _free_port(low=1024, high=55000):
    # rabbitmqctl's own distribution ports are 35672-35682 unless told
    # otherwise; keep ours away from them.
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if low <= port <= high and not 35600 <= port <= 35700:
            return port


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateBroker:
    def __init__(self, base, token=None, start_timeout=90, tls=None):
        self.base = Path(base)
        self.token = token or uuid.uuid4().hex[:8]
        self.node = f"c2a-fault-{self.token}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
        while self.dist_port == self.port:
            self.dist_port = _free_port()
        self.start_timeout = start_timeout
        self.home = self.base / "home"
        self.mnesia = self.base / "mnesia"
        self.logs = self.base / "log"
        for d in (self.home, self.mnesia, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        self.plugins_file = self.base / "enabled_plugins"
        self.plugins_file.write_text("[].\n")
        self.tls_port = None
        tls_conf = ""
        if tls:
            self.tls_port = _free_port()
            while self.tls_port in (self.port, self.dist_port):
                self.tls_port = _free_port()
            ca, cert, key = tls
            tls_conf = (f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                        f"ssl_options.cacertfile = {ca}\n"
                        f"ssl_options.certfile = {cert}\n"
                        f"ssl_options.keyfile = {key}\n"
                        "ssl_options.verify = verify_none\n"
                        "ssl_options.fail_if_no_peer_cert = false\n")
        self.config_file = self.base / "rabbitmq.conf"
        self.config_file.write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            "log.console = false\n"
            "log.file.level = info\n" + tls_conf)
        self.env_file = self.base / "rabbitmq-env.conf"  # empty: not /etc's
        self.env_file.write_text("")
        self.proc = None
        self.starts = 0
        self.out = None

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"

    @property
    def tls_url(self):
        return f"amqps://guest:guest@127.0.0.1:{self.tls_port}/%2f"

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update({
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.mnesia),
            "RABBITMQ_LOG_BASE": str(self.logs),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.plugins_file),
            "RABBITMQ_CONFIG_FILE": str(self.config_file),
            "RABBITMQ_CONF_ENV_FILE": str(self.env_file),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
        })
        return env

    def ctl(self, *args, timeout=60, check=True):
        """rabbitmqctl -n <node> ARGS with this node's cookie; returns its stdout."""
        r = subprocess.run([CTL, "-n", self.node, *args], env=self.env(), cwd=self.base,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: exit {r.returncode}: "
                               f"{r.stdout.strip()} {r.stderr.strip()}")
        return r.stdout

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        """Start the node (again, on the same data) and wait until it serves AMQP."""
        assert not self.running(), "already running"
        self.starts += 1
        self.out = open(self.logs / f"server-{self.starts}.out", "w")
        self.proc = subprocess.Popen([SERVER], env=self.env(), cwd=self.base,
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        # The AMQP listener opens late in the boot; poll it (cheap) before asking
        # rabbitmqctl (a few seconds of Erlang start-up per call).
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited ({self.proc.returncode}) at start: "
                                   f"{self.tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"rabbitmq node {self.node} not up within "
                                   f"{self.start_timeout}s: {self.tail()}")
            time.sleep(0.1)
        left = max(5, int(deadline - time.monotonic()))
        self.ctl("await_startup", "--timeout", str(left), timeout=left + 30)
        while self.tls_port and not _port_open(self.tls_port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no TLS listener on {self.tls_port}: {self.tail()}")
            time.sleep(0.1)
        return self

    def stop(self, timeout=60):
        """Stop the node (rabbitmqctl stop, then SIGKILL if it will not go)."""
        if not self.running():
            self._close_out()
            return
        try:
            self.ctl("stop", timeout=timeout, check=False)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_out()

    def kill(self):
        """Last resort: SIGKILL the node's process group (the start script and
        the Erlang VM under it) while its leader still runs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._close_out()

    def _close_out(self):
        if self.out:
            self.out.close()
            self.out = None

    def close(self):
        """Always safe: stop if running, kill whatever of the node remains."""
        try:
            self.stop()
        finally:
            self.kill()

    def tail(self, n=2000):
        parts = []
        for p in sorted(self.logs.glob("*")):
            if p.is_file():
                parts.append(f"== {p.name}\n{p.read_text(errors='replace')[-n:]}")
        return "\n".join(parts)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


if __name__ == "__main__":
    # By hand: python3 private_broker.py DIR  -> starts a node, prints its URL,
    # stops it on Ctrl-C.
    import sys
    d = Path(sys.argv[1] if len(sys.argv) > 1 else f"/tmp/c2a-private-{uuid.uuid4().hex[:6]}")
    rb = PrivateBroker(d)
    t0 = time.monotonic()
    with rb:
        print(f"{rb.node} up in {time.monotonic() - t0:.1f}s: {rb.url} (data {d})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    if len(sys.argv) <= 1:
        shutil.rmtree(d, ignore_errors=True)
