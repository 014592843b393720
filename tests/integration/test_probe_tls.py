"""The master's queue probe over amqps://. The master maps no OpenSSL: a relay
process it forks does the TLS, says why when it cannot connect, and is reaped
by the master without ever passing for a worker."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pika
import pytest

from conftest import SANITIZE, alive, children_of, free_port, queue_name, wait_for


def comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def relays(master):
    return [p for p in children_of(master) if comm(p) == "c2a-tls-relay"]


def zombies(master):
    out = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master and fields[0] == "Z":
            out.append(int(d))
    return out


def tls_maps(pid):
    return [line for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if "libssl" in line or "libcrypto" in line]


def vm_rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def inheritable(pid):
    """The descriptors above stderr without close-on-exec, as (fd, target)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        flags = int(info.split("flags:")[1].split()[0], 8)
        if int(fd) > 2 and not flags & os.O_CLOEXEC:
            out.append((int(fd), target))
    return out


def started(d):
    """The pids of the relays the master's log says it started."""
    return [int(line.split("TLS relay ")[1].split()[0]) for line in d.log().splitlines()
            if "queue probe: TLS relay" in line and line.endswith("started")]


def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_ca(d, name):
    openssl(d, "req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "2", "-subj", f"/CN=c2a test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return d / f"{name}.pem"


def make_server_cert(d, ca):
    """localhost and 127.0.0.1, signed by the CA called ca."""
    openssl(d, "req", *EC, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                  "extendedKeyUsage=serverAuth\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return d / "server.pem", d / "server.key"


def test_amqps_refused_says_why_and_relays_are_reaped(daemon):
    """No broker on the port: each round's relay reports the refusal, exits and
    is reaped; none is a zombie, none counts as a worker restart."""
    port = free_port()
    d = daemon(workers={"count": "1", "app": "builtin:noop"},
               broker={"url": f"amqps://guest:guest@127.0.0.1:{port}/%2f"}).start(
                   wait_workers=False)
    st = wait_for(lambda: (lambda x: x["broker"]["probe_error"].startswith("connect") and x)(
        d.status()), what="the relay's reason")
    assert st["broker"]["probe_error"] == f"connect 127.0.0.1:{port}: Connection refused"
    assert st["broker"]["probe_connected"] is False
    # Three more rounds, three more relays.
    wait_for(lambda: len(started(d)) >= 4, timeout=15, what="four relays")
    relay_pids = started(d)
    wait_for(lambda: not set(relay_pids) & set(children_of(d.master_pid) +
                                               zombies(d.master_pid)),
             what="relays gone and reaped")
    assert tls_maps(d.master_pid) == []
    st = d.status()
    assert st["totals"]["worker_restarts"] == 0, st["restarts"]
    for pid in relay_pids:
        assert f"worker {pid} " not in d.log()


def test_amqps_silent_peer_times_out_in_the_relay(daemon):
    """A peer that takes the connection and never answers the TLS hello: the
    relay gives up after four seconds and says so, before the probe's own five
    second limit; the master answers at once all along."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    try:
        d = daemon(workers={"count": "1", "app": "builtin:noop"},
                   broker={"url": f"amqps://guest:guest@127.0.0.1:{port}/%2f"}).start(
                       wait_workers=False)
        t0 = time.monotonic()
        worst = 0.0
        while time.monotonic() - t0 < 10:
            s = time.monotonic()
            st = d.status()
            worst = max(worst, time.monotonic() - s)
            if st["broker"]["probe_error"].startswith("TLS"):
                break
            time.sleep(0.1)
        assert st["broker"]["probe_error"] == f"TLS: no handshake with 127.0.0.1:{port} in 4 s"
        # Not a timing assertion on speed: a blocked loop would stall for seconds.
        assert worst < 2.5, worst
    finally:
        srv.close()


@pytest.fixture
def tls_broker(tmp_path):
    from private_broker import PrivateBroker, available
    if not available():
        pytest.skip("needs rabbitmq-server")
    certs = tmp_path / "tls"
    certs.mkdir()
    ca = make_ca(certs, "ca")
    other_ca = make_ca(certs, "other-ca")
    cert, key = make_server_cert(certs, "ca")
    rb = PrivateBroker(tmp_path / "rabbitmq", tls=(ca, cert, key))
    try:
        rb.start()
        rb.ca, rb.other_ca = ca, other_ca
        yield rb
    finally:
        rb.close()


def test_amqps_probe_through_the_relay(daemon, tls_broker):
    rb = tls_broker
    url = rb.tls_url.replace("127.0.0.1", "localhost")  # SNI and a host name to check
    d = daemon(workers={"count": "1", "app": "builtin:noop"},
               broker={"url": url, "tls_ca": str(rb.ca)})
    q = queue_name(d.tmp, d.name)
    conn = pika.BlockingConnection(pika.URLParameters(rb.url))
    ch = conn.channel()
    # The workers consume over TLS too: the figures to watch are the dead-letter
    # queue's, which nobody consumes.
    ch.queue_declare(q, durable=True)
    ch.queue_declare(q + ".dead", durable=True)
    for i in range(3):
        ch.basic_publish("", q + ".dead", b"{}")
    conn.close()

    d.start(wait_workers=False)
    master = d.master_pid
    st = wait_for(lambda: (lambda x: x["queues"][1]["messages"] == 3 and x)(d.status()),
                  timeout=15, what="depths over TLS")
    assert st["broker"]["probe_connected"] is True and st["broker"]["probe_error"] is None
    assert [(x["name"], x["exists"], x["error"]) for x in st["queues"]
            if x["kind"] != "retry"] == [(q, True, None), (q + ".dead", True, None)]
    # The delay queues too (no worker has declared them here).
    assert [x["name"] for x in st["queues"] if x["kind"] == "retry"] == [
        f"{q}.retry.{ms}" for ms in (1000, 2000, 4000, 8000)]

    # OpenSSL is in the relay, not in the master.
    assert tls_maps(master) == []
    [relay] = relays(master)
    assert tls_maps(relay)
    rss = vm_rss_kb(master)
    print(f"master VmRSS with {url}: {rss} kB")
    if not SANITIZE:
        assert rss <= 4096, rss
    # The master's end of the socketpair is close-on-exec (a master started
    # on USR2 must not inherit it), as is every other descriptor of the master.
    assert inheritable(master) == []

    # The broker knows the probe by name, and over TLS.
    conns = rb.ctl("list_connections", "ssl", "client_properties")
    line = next(x for x in conns.splitlines() if f"c2a-worker@{socket.gethostname()}:master" in x)
    assert line.startswith("true"), line

    # A CA that did not sign the broker's certificate.
    d.write_config(workers={"count": "1", "app": "builtin:noop"},
                   broker={"url": url, "tls_ca": str(rb.other_ca)})
    d.signal(signal.SIGHUP)
    st = wait_for(lambda: (lambda x: "verify" in (x["broker"]["probe_error"] or "") and x)(
        d.status()), timeout=15, what="the verification failure")
    # RabbitMQ sends its CA with its certificate, hence "self-signed ... in
    # chain"; a broker sending its own certificate alone gets "unable to get
    # local issuer certificate".
    assert st["broker"]["probe_error"] in (
        "TLS: certificate verify failed: self-signed certificate in certificate chain",
        "TLS: certificate verify failed: unable to get local issuer certificate")
    assert all(x["messages"] is None for x in st["queues"])
    # The first relay passed on the goodbye, left and was reaped; it was no worker.
    wait_for(lambda: relay not in children_of(master) and relay not in zombies(master),
             what="the first relay reaped")
    assert f"worker {relay} " not in d.log()
    assert d.status()["totals"]["worker_restarts"] == 0

    # tls_verify = no takes any certificate.
    d.write_config(workers={"count": "1", "app": "builtin:noop"},
                   broker={"url": url, "tls_ca": str(rb.other_ca), "tls_verify": "no"})
    d.signal(signal.SIGHUP)
    wait_for(lambda: (lambda x: x["broker"]["probe_connected"] and
                      x["queues"][1]["messages"] == 3)(d.status()), timeout=15,
             what="connected without verification")
    assert tls_maps(master) == []

    # The relay does not outlive the master.
    [relay] = relays(master)
    d.stop()
    wait_for(lambda: not alive(relay), what="the relay gone with the master")
