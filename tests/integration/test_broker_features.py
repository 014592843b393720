"""What a producer and an operator see of the broker side: properties kept
through retries and dead letters, priority queues, the host in results, a queue
that exists with other arguments, and c2actl's confirms and failover. All on
the shared RabbitMQ, each test with queues of its own."""

import json
import os
import subprocess
import time

import requests

from conftest import BIN, BROKER, free_port, queue_name, wait_for

CTL = os.path.join(os.path.dirname(BIN), "c2actl")

TEXT = "Hello from the broker tests."


def queue_of(d):
    return queue_name(d.tmp, d.name)


def props(broker, **kw):
    base = dict(reply_to=broker.reply_to, content_type="application/json", delivery_mode=2)
    base.update(kw)
    return broker.pika.BasicProperties(**base)


def test_dead_letter_keeps_the_producers_properties(daemon, broker, test_app):
    # okapp's "fail-transient" fails each attempt: one retry through a delay
    # queue, then the dead letter; "fail-permanent" goes straight there.
    d = daemon(workers={"count": "1", "app": test_app("okapp", "ok_app")},
               broker={"max_attempts": "2"}).start()
    q = queue_of(d)
    headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
               "x-tenant": "acme", "x-c2a-error-code": "stale"}
    for payload in ("fail-transient", "fail-permanent"):
        p = props(broker, correlation_id="cid-" + payload, message_id="mid-" + payload,
                  priority=5, timestamp=1700000000, app_id="billing", type="tts.request",
                  headers=dict(headers), expiration="600000")
        broker.ch.basic_publish("", q, json.dumps({"id": payload, "payload": payload}), p)
    broker.wait_results(2, timeout=30)
    dead = wait_for(lambda: (lambda m: len(m) == 2 and m)(broker.get_all(q + ".dead")),
                    what="dead letters", timeout=20)
    for p, body in dead:
        payload = json.loads(body)["payload"]
        assert p.correlation_id == "cid-" + payload
        assert p.message_id == "mid-" + payload
        assert p.reply_to == broker.reply_to  # a re-driven dead letter still answers
        assert p.priority == 5 and p.timestamp == 1700000000
        assert p.app_id == "billing" and p.type == "tts.request"
        assert p.content_type == "application/json" and p.delivery_mode == 2
        assert p.expiration is None  # a dead letter must not expire
        assert p.headers["traceparent"] == headers["traceparent"]
        assert p.headers["x-tenant"] == "acme"
        # Ours replace any the message had, and are not duplicated.
        expect = 2 if payload == "fail-transient" else 1
        assert p.headers["x-c2a-attempts"] == expect, p.headers
        assert p.headers["x-c2a-error-code"] in ("upstream_down", "bad_field")


def test_priority_job_overtakes_a_backlog(daemon, broker):
    d = daemon(workers={"count": "1", "app": "builtin:noop"},
               broker={"max_priority": "10", "prefetch": "1"}).start()
    q = queue_of(d)
    r = requests.post(d.url + "/pause", timeout=5)
    assert r.status_code == 200
    wait_for(lambda: d.status()["workers"][0]["state"] == "paused", what="paused", timeout=15)
    wait_for(lambda: broker.ch.queue_declare(q, passive=True).method.consumer_count == 0,
             what="consumer cancelled", timeout=15)
    for i in range(500):
        broker.ch.basic_publish("", q, "{}", props(broker, correlation_id=f"low-{i}", priority=0))
    broker.ch.basic_publish("", q, "{}", props(broker, correlation_id="urgent", priority=9))
    # All in the queue before anyone consumes: the broker takes a moment.
    wait_for(lambda: broker.depth(q) == 501, what="501 queued", timeout=20)
    requests.post(d.url + "/resume", timeout=5)
    broker.wait_results(501, timeout=60)
    order = [cid for cid, _ in broker.result_list]
    assert len(order) == 501
    assert order.index("urgent") < 5, order[:10]
    assert all(doc["status"] == "ok" for _, doc in broker.result_list)


def test_result_names_the_host(daemon, broker):
    import socket
    d = daemon(workers={"count": "1", "app": "builtin:noop"}).start()
    broker.publish(queue_of(d), {"id": "h1"})
    res = broker.wait_results(1, timeout=20)["h1"]
    assert res["host"] == socket.gethostname()
    assert isinstance(res["worker"], int)


def connection_names():
    out = subprocess.run(["rabbitmqctl", "-q", "list_connections", "client_properties"],
                         capture_output=True, text=True, timeout=30).stdout
    return out


def test_connections_are_named_after_host_and_pid(daemon):
    import socket
    d = daemon(workers={"count": "1", "app": "builtin:noop"}).start()
    pid = d.worker_pids()[0]
    want = f"c2a-worker@{socket.gethostname()}:{pid}"
    wait_for(lambda: want in connection_names(), what=want, timeout=15)


def test_queue_with_other_arguments_is_named_not_broker_down(daemon, broker):
    d0 = daemon("pre")
    q = queue_name(d0.tmp, "c2a")  # the queue the daemon below will use
    broker.ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        d = daemon(workers={"count": "1", "app": "builtin:noop"})
        d.start(wait_workers=False)
        def reason():
            r = requests.get(d.url + "/healthz", timeout=5)
            return r.status_code == 503 and "exists with other arguments" in r.json()["reason"] \
                and r.json()["reason"]
        why = wait_for(reason, what="healthz names the queue", timeout=20)
        assert f"queue {q}" in why and "x-queue-type" in why, why
        errs = [w["broker_error"] for w in d.status()["workers"] if w["broker_error"]]
        assert errs and "inequivalent arg 'x-queue-type'" in errs[0]
        # Said once, not at every reconnection.
        time.sleep(4)
        said = [line for line in d.log().splitlines()
                if "exists with other arguments" in line and " debug: " not in line]
        # Once by the worker, once by the master's queue probe.
        assert len([x for x in said if " worker " in x]) == 1, said
        assert len([x for x in said if " master " in x]) == 1, said
    finally:
        broker.ch.queue_delete(q)


def test_c2actl_unroutable_job_fails(tmp_path):
    r = subprocess.run([CTL, "submit", "--url", BROKER, "--text", TEXT, "--queue",
                        queue_name(tmp_path, "nobody-declared-this")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert "the broker returned the job" in r.stderr
    assert r.stdout == ""


def test_c2actl_fails_over_to_the_next_url(tmp_path, broker):
    q = queue_name(tmp_path, "ctl")
    broker.ch.queue_declare(q, durable=True)
    try:
        dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2f"
        conf = tmp_path / "c.conf"
        conf.write_text(f"[broker]\nurl = {dead}\nurl = {BROKER}\nqueues = {q}\n")
        r = subprocess.run([CTL, "-c", str(conf), "submit", "--text", TEXT],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r
        assert "connect 127.0.0.1" in r.stderr  # the dead one is named
        assert broker.depth(q) == 1
    finally:
        broker.ch.queue_delete(q)


def test_quorum_retry_goes_through_a_quorum_delay_queue(daemon, broker, test_app):
    # One node is enough for quorum queues; the cluster test covers node loss.
    d = daemon(workers={"count": "1", "app": test_app("okapp", "ok_app")},
               broker={"queue_type": "quorum", "max_attempts": "2"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "qr", "payload": "fail-transient"})
    res = broker.wait_results(1, timeout=30)["qr"]
    # Attempt 1 failed, went through <q>.retry.1000 and came back for attempt 2.
    assert res["attempts"] == 2 and res["error"]["code"] == "upstream_down", res
    for name in (q, q + ".dead", q + ".retry.1000"):
        out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "type", "arguments"],
                             capture_output=True, text=True, timeout=30).stdout
        line = next(x for x in out.splitlines() if x.split("\t")[0] == name)
        assert "quorum" in line, line
    assert "at-least-once" in line and "reject-publish" in line, line
    assert len(broker.get_all(q + ".dead")) == 1
