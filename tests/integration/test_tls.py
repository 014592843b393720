"""c2a-worker over TLS to RabbitMQ: a TLS-only private node
(private_broker.TLSBroker, certificates made with the openssl CLI by
make_test_pki). The daemon and c2actl work with the right CA; a daemon given an
unrelated CA says why it cannot connect and consumes nothing; a node that
requires client certificates takes the daemon's tls_cert and tls_key and turns
away a daemon without them. The shared broker on 5672 is never touched.

(Apart from test_cluster.py so that its three nodes are gone before these
boot: five Erlang nodes on two cores start slowly.)
"""

import json
import logging
import os
import ssl
import time

import pika
import pytest

from conftest import BIN, queue_name, run, wait_for
from private_broker import TLSBroker, available, in_parallel, make_test_pki

logging.getLogger("pika").setLevel(logging.CRITICAL)

pytestmark = pytest.mark.skipif(not available(), reason="needs rabbitmq-server")

SANITIZE = os.environ.get("C2A_SANITIZE") == "1"
CTL = os.path.join(os.path.dirname(BIN), "c2actl")
# They run no program of ours: the sanitizer pass leaves them to the normal one.
fixture_only = pytest.mark.skipif(SANITIZE, reason="runs no program of ours")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def _nodes(tmp_path_factory, pki):
    """Both nodes of the module, booted side by side (each takes ten seconds or
    more): a TLS-only node, and one that also requires a client certificate
    its CA signed."""
    nodes = [TLSBroker(tmp_path_factory.mktemp("tls-node"), pki),
             TLSBroker(tmp_path_factory.mktemp("strict-node"), pki, require_client_cert=True)]
    try:
        in_parallel(lambda rb: rb.start(), nodes)
        yield nodes
    finally:
        for rb in nodes:
            rb.close()


@pytest.fixture
def tls_node(_nodes):
    return _nodes[0]


@pytest.fixture
def strict_node(_nodes):
    return _nodes[1]


def tls_params(url, ca, cert=None, key=None):
    """pika parameters for an amqps:// URL, verifying the server against ca
    (and its name, localhost) with Debian python3's ssl module."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    params = pika.URLParameters(url)
    params.ssl_options = pika.SSLOptions(ctx, "localhost")
    return params


@fixture_only
def test_tls_fixture(tls_node, strict_node, pki):
    """The TLS-only node: pika verifying against the right CA gets in; against
    the unrelated CA it refuses the server; no plain AMQP listener exists. A
    node that requires client certificates takes only ones its CA signed."""
    conn = pika.BlockingConnection(tls_params(tls_node.url, pki.ca))
    assert conn.is_open
    conn.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        pika.BlockingConnection(tls_params(tls_node.url, pki.wrong_ca))
    listeners = json.loads(tls_node.ctl("status", "--formatter", "json"))["listeners"]
    assert sorted(x["protocol"] for x in listeners) == ["amqp/ssl", "clustering"]

    conn = pika.BlockingConnection(tls_params(strict_node.url, pki.ca, pki.client_cert,
                                              pki.client_key))
    conn.close()
    for cert, key in ((None, None), (pki.wrong_client_cert, pki.wrong_client_key)):
        # the server's alert, or the connection it closed (ssl.SSLError is one)
        with pytest.raises((pika.exceptions.AMQPConnectionError, OSError)):
            pika.BlockingConnection(tls_params(strict_node.url, pki.ca, cert, key))


def test_tls_node(tls_node, pki, daemon, tmp_path):
    """amqps:// with tls_ca: c2a-worker -t accepts the config, the daemon runs
    jobs and c2actl submits over TLS. With an unrelated CA the daemon says the
    certificate verification failed, and consumes nothing."""
    q = queue_name(tmp_path, "tls")
    replies = q + ".replies"
    tls = {"url": tls_node.url, "queues": q, "tls_ca": str(pki.ca)}
    d = daemon("good", workers={"count": "1"}, broker=tls)
    r = run([BIN, "-t", "-c", str(d.conf)])
    assert r.returncode == 0, r.stderr
    d.start()
    conn = pika.BlockingConnection(tls_params(tls_node.url, pki.ca))
    ch = conn.channel()
    ch.queue_declare(replies, durable=True)
    for i in range(10):
        ch.basic_publish("", q, json.dumps({"id": f"t{i}", "text": f"Over TLS {i}."}),
                         pika.BasicProperties(reply_to=replies, correlation_id=f"t{i}",
                                              delivery_mode=2))
    got = {}
    deadline = time.monotonic() + 60
    while len(got) < 10 and time.monotonic() < deadline:
        method, _, body = ch.basic_get(replies, auto_ack=True)
        if method is None:
            conn.sleep(0.1)
            continue
        doc = json.loads(body)
        got[doc["id"]] = doc
    assert sorted(got) == [f"t{i}" for i in range(10)]
    assert all(r["status"] == "ok" and os.path.exists(r["path"]) for r in got.values()), got

    # c2actl submits over TLS as well, with the daemon's config (its URL and CA).
    r = run([CTL, "-c", str(d.conf), "submit", "--text", "c2actl over TLS", "--id", "ctl1",
             "--wait"], timeout=90)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "audio" / "ctl1.wav")

    # The unrelated CA: the daemon says why it cannot connect and takes nothing.
    d.stop()
    for i in range(3):
        ch.basic_publish("", q, json.dumps({"id": f"w{i}", "text": "never"}),
                         pika.BasicProperties(reply_to=replies, delivery_mode=2))
    wrong = daemon("wrong", workers={"count": "1"}, broker=dict(tls, tls_ca=str(pki.wrong_ca)))
    assert run([BIN, "-t", "-c", str(wrong.conf)]).returncode == 0  # the config is fine
    wrong.start(wait_workers=False)
    wait_for(lambda: "certificate verify failed" in wrong.log(), timeout=30,
             what="the verification failure in the log")
    line = next(ln for ln in wrong.log().splitlines() if "certificate verify failed" in ln)
    assert f"localhost:{tls_node.port}" in line, line
    time.sleep(2)
    assert not wrong.status()["broker"]["connected"]
    assert ch.queue_declare(q, passive=True).method.message_count == 3
    assert ch.queue_declare(q, passive=True).method.consumer_count == 0
    ch.queue_delete(q)
    ch.queue_delete(replies)
    conn.close()
    print(f"\n{line}")


def test_tls_client_certificate(strict_node, pki, daemon, tmp_path):
    """A node that requires client certificates: the daemon's tls_cert and
    tls_key are its way in."""
    rb = strict_node
    q = queue_name(tmp_path, "mtls")
    d = daemon("mtls", workers={"count": "1", "app": "builtin:noop"},
               broker={"url": rb.url, "queues": q, "tls_ca": str(pki.ca),
                       "tls_cert": str(pki.client_cert), "tls_key": str(pki.client_key)})
    d.start()
    conn = pika.BlockingConnection(tls_params(rb.url, pki.ca, pki.client_cert,
                                              pki.client_key))
    ch = conn.channel()
    replies = ch.queue_declare("", exclusive=True).method.queue
    for i in range(5):
        ch.basic_publish("", q, "{}", pika.BasicProperties(
            reply_to=replies, message_id=f"m{i}", content_type="application/json"))
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        method, _, body = ch.basic_get(replies, auto_ack=True)
        if method is None:
            conn.sleep(0.1)
            continue
        got.append(json.loads(body))
    assert sorted(r["id"] for r in got) == [f"m{i}" for i in range(5)]
    assert all(r["status"] == "ok" for r in got)
    d.stop()
    # Without its certificate the node turns the daemon away.
    bare = daemon("bare", workers={"count": "1", "app": "builtin:noop"},
                  broker={"url": rb.url, "queues": q, "tls_ca": str(pki.ca)})
    bare.start(wait_workers=False)
    # (The node's alert comes after the handshake, in TLS 1.3: the worker sees
    # it at login, and names the likely cause.)
    line = wait_for(lambda: next((ln for ln in bare.log().splitlines()
                                  if "worker" in ln and f"localhost:{rb.port}" in ln), None),
                    timeout=30, what="the refusal in the log")
    assert "does the broker want a client certificate?" in line, line
    time.sleep(2)
    assert not bare.status()["broker"]["connected"]
    assert ch.queue_declare(q, passive=True).method.consumer_count == 0
    ch.queue_delete(q)
    conn.close()
