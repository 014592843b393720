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

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def available():
    return os.path.exists(SERVER) and os.path.exists(CTL)


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_port():
    """A port free now and below the kernel's ephemeral range. A node that is
    stopped and started again must find its ports free: one the kernel hands
    out to any connect() or bind(0) meanwhile (a worker reconnecting, an Erlang
    VM's own distribution listener) makes the restart fail with eaddrinuse, as
    it once did in CI. rabbitmqctl's own distribution ports (35672-35682) are
    above it too."""
    high = min(_ephemeral_low(), 32768) - 1
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(20000, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def in_parallel(fn, items):
    """fn(x) for each item on threads of its own (node boots are mostly
    waiting); the first exception is raised once all have finished."""
    errors = []

    def call(x):
        try:
            fn(x)
        except Exception as e:  # re-raised below
            errors.append(e)
    threads = [threading.Thread(target=call, args=(x,), daemon=True) for x in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


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



# --- a cluster of private nodes ----------------------------------------------------

class ClusterNode(PrivateBroker):
    """One node of a PrivateCluster: a PrivateBroker with the cluster's Erlang
    cookie (nodes that do not share it cannot talk) and a name of its own."""

    def __init__(self, base, node, cookie, start_timeout=90):
        home = Path(base) / "home"
        home.mkdir(parents=True, exist_ok=True)
        path = home / ".erlang.cookie"
        if not path.exists():  # written before PrivateBroker would write its own
            path.write_text(cookie)
            path.chmod(0o400)
        super().__init__(base, start_timeout=start_timeout)
        self.node = node


class PrivateCluster:
    """n private nodes clustered with rabbitmqctl join_cluster, each with its own
    name, AMQP port, distribution port, data and log directories under base, and
    one Erlang cookie. Nodes are numbered from 0; node 0 is the one the others
    join. stop(i) is a real node stop (data kept); start(i) brings it back, and it
    rejoins the cluster by itself (the membership is in its data).

        with PrivateCluster(tmp_path / "cluster") as c:
            c.urls                  # one amqp:// URL per node
            c.stop(0); c.start(0)   # one node down and up again
            c.ctl(1, "list_queues") # rabbitmqctl against node 1
    """

    def __init__(self, base, n=3, token=None, start_timeout=90):
        self.base = Path(base)
        self.token = token or uuid.uuid4().hex[:8]
        self.start_timeout = start_timeout
        cookie = secrets.token_hex(16).upper()
        self.nodes = []
        ports = set()
        for i in range(n):
            node = ClusterNode(self.base / f"node{i}", f"c2a-cluster-{self.token}-{i}@localhost",
                               cookie, start_timeout)
            # _free_port() asks the kernel one port at a time: it can hand out the
            # same one twice before any node has bound it.
            first_port = node.port
            while node.port in ports or node.dist_port in ports or node.port == node.dist_port:
                node.port, node.dist_port = _free_port(), _free_port()
            if node.port != first_port:
                conf = node.config_file.read_text()
                node.config_file.write_text(conf.replace(f"127.0.0.1:{first_port}\n",
                                                         f"127.0.0.1:{node.port}\n"))
            ports |= {node.port, node.dist_port}
            self.nodes.append(node)

    def __len__(self):
        return len(self.nodes)

    @property
    def urls(self):
        return [n.url for n in self.nodes]

    def url(self, i):
        return self.nodes[i].url

    def index_of_port(self, port):
        """The node whose AMQP port this is (None: none of ours)."""
        return next((i for i, n in enumerate(self.nodes) if n.port == port), None)

    def index_of_node(self, name):
        """The index of the node of this name (None: none of ours)."""
        return next((i for i, n in enumerate(self.nodes) if n.node == name), None)

    def ctl(self, i, *args, **kw):
        return self.nodes[i].ctl(*args, **kw)

    def running(self, i):
        return self.nodes[i].running()

    def running_nodes(self, i=None):
        """The running members as node i (default: the first running one) sees them."""
        out = self.ctl(self._live(i), "cluster_status", "--formatter", "json")
        return sorted(json.loads(out).get("running_nodes", []))

    def _live(self, i):
        if i is None:
            i = next(k for k, n in enumerate(self.nodes) if n.running())
        return i

    def connections(self, i=None):
        """Every client connection in the cluster (as node i, default the first
        running one, lists them): [{"node": index of the node it is on,
        "connection_name": the client's, or None, "peer_port"}]."""
        out = self.ctl(self._live(i), "list_connections", "port", "peer_port",
                       "client_properties", "--formatter", "json")
        conns = []
        for c in json.loads(out or "[]"):
            props = {p[0]: p[2] for p in c.get("client_properties") or [] if len(p) == 3}
            conns.append({"node": self.index_of_port(c["port"]), "peer_port": c["peer_port"],
                          "connection_name": props.get("connection_name")})
        return conns

    def queues(self, i=None):
        """{name: {"type", "leader", "members", "online", "messages_ready",
        "messages_unacknowledged"}} as node i (default the first running one)
        sees the queues."""
        out = self.ctl(self._live(i), "list_queues", "name", "type", "leader", "members",
                       "online", "messages_ready", "messages_unacknowledged",
                       "--formatter", "json")
        return {q.pop("name"): q for q in json.loads(out or "[]")}

    def start(self, i=None):
        """start(): boot every node and form the cluster; start(i): bring node i
        back (it rejoins the running cluster on its own). Either way, wait until
        the cluster shows every started node running."""
        if i is not None:
            self.nodes[i].start()
            self.wait_running()
            return self
        try:
            # Every node boots on its own at once; then the others join node 0 one
            # after the other (concurrent joins to one node race in Mnesia).
            in_parallel(lambda k: self.nodes[k].start(), range(len(self.nodes)))
            first = self.nodes[0].node
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first)
                node.ctl("start_app")
            self.wait_running()
        except BaseException:
            self.close()
            raise
        return self

    def wait_running(self, timeout=None):
        """Until every node that runs is a running member of one cluster."""
        want = sorted(n.node for n in self.nodes if n.running())
        deadline = time.monotonic() + (timeout or self.start_timeout)
        seen = None
        while time.monotonic() < deadline:
            try:
                seen = self.running_nodes()
                if seen == want:
                    return seen
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                seen = repr(e)
            time.sleep(0.5)
        raise RuntimeError(f"cluster: running nodes {seen}, expected {want}")

    def stop(self, i):
        """A real stop of node i (rabbitmqctl stop; its data stays)."""
        self.nodes[i].stop()

    def close(self):
        """Always safe: stops every node (at once), kills what remains."""
        in_parallel(lambda k: self.nodes[k].close(), range(len(self.nodes)))

    def tail(self, n=2000):
        return "\n".join(f"=== {node.node}\n{node.tail(n)}" for node in self.nodes)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# --- TLS ------------------------------------------------------------------------------

class TestPKI:
    """Paths of the files make_test_pki() writes."""

    def __init__(self, d):
        d = Path(d)
        self.dir = d
        self.ca, self.ca_key = d / "ca.pem", d / "ca.key"
        self.server_cert, self.server_key = d / "server.pem", d / "server.key"
        self.client_cert, self.client_key = d / "client.pem", d / "client.key"
        self.wrong_ca, self.wrong_ca_key = d / "wrong-ca.pem", d / "wrong-ca.key"
        # a client certificate the wrong CA signed: refused where one is required
        self.wrong_client_cert = d / "wrong-client.pem"
        self.wrong_client_key = d / "wrong-client.key"


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")


def make_test_pki(d):
    """A CA, a server certificate it signed (SAN DNS:localhost, IP:127.0.0.1), a
    client certificate it signed, and an unrelated second CA with a client
    certificate of its own: all made with the openssl CLI in d, P-256 keys
    (quick to make), valid for two days. Returns a TestPKI."""
    p = TestPKI(d)
    p.dir.mkdir(parents=True, exist_ok=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def ca(cert, keyfile, cn):
        _openssl("req", "-x509", *key, "-keyout", str(keyfile), "-out", str(cert),
                 "-days", "2", "-subj", f"/CN={cn}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=p.dir)

    def leaf(cert, keyfile, cn, ext, ca_cert, ca_key):
        csr = cert.with_suffix(".csr")
        extfile = cert.with_suffix(".ext")
        extfile.write_text("basicConstraints = CA:FALSE\n"
                           "keyUsage = critical,digitalSignature,keyAgreement\n" + ext)
        _openssl("req", "-new", *key, "-keyout", str(keyfile), "-out", str(csr),
                 "-subj", f"/CN={cn}", cwd=p.dir)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                 "-set_serial", str(int.from_bytes(secrets.token_bytes(8), "big")),
                 "-days", "2", "-extfile", str(extfile), "-out", str(cert), cwd=p.dir)

    ca(p.ca, p.ca_key, "c2a test CA")
    ca(p.wrong_ca, p.wrong_ca_key, "c2a unrelated CA")
    leaf(p.server_cert, p.server_key, "localhost",
         "subjectAltName = DNS:localhost,IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
         p.ca, p.ca_key)
    leaf(p.client_cert, p.client_key, "c2a-test-client", "extendedKeyUsage = clientAuth\n",
         p.ca, p.ca_key)
    leaf(p.wrong_client_cert, p.wrong_client_key, "c2a-wrong-client",
         "extendedKeyUsage = clientAuth\n", p.wrong_ca, p.wrong_ca_key)
    return p


class TLSBroker(PrivateBroker):
    """A private node that speaks AMQP over TLS only (no plain listener), with
    the server certificate of a TestPKI. It asks every client for a certificate
    and verifies one that is sent against the PKI's CA; with
    require_client_cert it refuses a client that sends none.

        pki = make_test_pki(tmp_path / "pki")
        with TLSBroker(tmp_path / "rabbitmq", pki) as rb:
            rb.url                # amqps://guest:guest@localhost:<port>/%2f
    """

    def __init__(self, base, pki, require_client_cert=False, **kw):
        super().__init__(base, **kw)
        self.node = f"c2a-tls-{self.token}@localhost"
        self.pki = pki
        self.require_client_cert = require_client_cert
        self.config_file.write_text(
            "listeners.tcp = none\n"
            f"listeners.ssl.default = 127.0.0.1:{self.port}\n"
            f"ssl_options.cacertfile = {pki.ca}\n"
            f"ssl_options.certfile = {pki.server_cert}\n"
            f"ssl_options.keyfile = {pki.server_key}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = "
            f"{'true' if require_client_cert else 'false'}\n"
            "loopback_users.guest = true\n"
            "log.console = false\n"
            "log.file.level = info\n")

    @property
    def url(self):
        # localhost: the name the server certificate carries (as well as 127.0.0.1)
        return f"amqps://guest:guest@localhost:{self.port}/%2f"

    def env(self):
        env = super().env()
        # RABBITMQ_NODE_PORT would open a plain AMQP listener beside the TLS one.
        env.pop("RABBITMQ_NODE_PORT", None)
        env.pop("RABBITMQ_NODE_IP_ADDRESS", None)
        return env


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
