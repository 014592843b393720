"""Queue depths in /status, on the page and in /metrics: the master asks the broker
itself (its own AMQP connection), every two seconds, and says "unknown" when it
cannot."""

import signal
import time

import requests

from conftest import BROKER, queue_name, wait_for
from test_control_api import TOKEN, metrics


def queues(d):
    return {q["name"]: q for q in d.status()["queues"]}


def test_depths_follow_the_broker(daemon, broker):
    d = daemon(master={"control_token": "tok"}).start()
    q = queue_name(d.tmp, d.name)
    # Two workers consume the work queue; nobody consumes the dead-letter queue.
    st = wait_for(lambda: (lambda x: x[q]["consumers"] == 2 and x)(queues(d)),
                  what="consumers counted")
    assert st[q]["kind"] == "work" and st[q]["messages"] == 0 and st[q]["exists"]
    assert st[q + ".dead"] == {"name": q + ".dead", "kind": "dead-letter", "messages": 0,
                               "consumers": 0, "exists": True, "error": None}
    assert d.status()["broker"]["probe_connected"] is True
    assert d.status()["broker"]["probe_error"] is None

    assert requests.post(d.url + "/pause", headers=TOKEN, timeout=5).status_code == 200
    wait_for(lambda: queues(d)[q]["consumers"] == 0, what="consumers gone while paused")
    for i in range(7):
        broker.publish(q, {"id": f"w{i}", "text": "waiting"})
    wait_for(lambda: queues(d)[q]["messages"] == 7, what="seven waiting")
    m = metrics(d)
    assert m[("c2a_queue_messages", (("kind", "work"), ("queue", q)))] == 7
    assert m[("c2a_queue_consumers", (("kind", "work"), ("queue", q)))] == 0
    assert m[("c2a_queue_messages", (("kind", "dead-letter"), ("queue", q + ".dead")))] == 0
    assert m[("c2a_broker_probe_connected", ())] == 1
    page = requests.get(d.url + "/", timeout=5).text
    assert f"<td class=\"l\">{q}</td><td class=\"l\">work</td><td>7</td>" in page

    assert requests.post(d.url + "/resume", headers=TOKEN, timeout=5).status_code == 200
    broker.wait_results(7)
    wait_for(lambda: (lambda x: x[q]["messages"] == 0 and x[q]["consumers"] == 2)(queues(d)),
             what="drained and consumed again")


def test_missing_queue_is_reported_and_the_rest_still_counted(daemon, broker):
    d = daemon().start()
    q = queue_name(d.tmp, d.name)
    broker.ch.queue_delete(q + ".dead")
    st = wait_for(lambda: (lambda x: not x[q + ".dead"]["exists"] and x)(queues(d)),
                  what="404 noticed")
    # The 404 closed the probe's channel; it reopened it and went on.
    assert d.status()["broker"]["probe_connected"] is True
    wait_for(lambda: queues(d)[q]["consumers"] == 2, what="work queue still counted")
    assert "no such queue" in requests.get(d.url + "/", timeout=5).text
    assert st[q + ".dead"]["messages"] == 0


def test_refused_login_shows_unknown_and_why(daemon):
    bad = BROKER.replace("guest:guest@", "guest:wrong@")
    assert bad != BROKER
    d = daemon(broker={"url": bad}).start(wait_workers=False)
    st = wait_for(lambda: (lambda x: x["broker"]["probe_error"] and
                           "ACCESS_REFUSED" in x["broker"]["probe_error"] and x)(d.status()),
                  what="the broker's refusal")
    assert st["broker"]["probe_connected"] is False
    assert st["broker"]["url"].startswith("amqp://guest:***@")
    assert all(q["messages"] is None and q["consumers"] is None for q in st["queues"])
    m = metrics(d)
    assert m[("c2a_broker_probe_connected", ())] == 0
    assert not any(k[0] == "c2a_queue_messages" for k in m)
    page = requests.get(d.url + "/", timeout=5).text
    assert "broker unreachable" in page and "<td>unknown</td>" in page


def test_unanswering_broker_never_stalls_the_master(daemon, tmp_path):
    """A "broker" that accepts and says nothing: the probe gives up after 5 s,
    and /status answers at once all along."""
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    try:
        d = daemon(broker={"url": f"amqp://guest:guest@127.0.0.1:{port}/%2f"},
                   workers={"count": "1"}).start(wait_workers=False)
        t0 = time.monotonic()
        worst = 0.0
        while time.monotonic() - t0 < 8:
            s = time.monotonic()
            st = d.status()
            worst = max(worst, time.monotonic() - s)
            assert st["queues"][0]["messages"] is None
            time.sleep(0.1)
        assert "no answer in 5 s" in d.log() or "no answer" in (st["broker"]["probe_error"] or "")
        # Not a timing assertion on speed: a blocked loop would stall for seconds.
        assert worst < 2.5, worst
    finally:
        srv.close()


def healthz(d):
    r = requests.get(d.url + "/healthz", timeout=5)
    return r.status_code, r.json()


def test_queue_made_with_other_arguments_is_named(daemon, broker):
    """A work queue made elsewhere as a quorum queue while the workers declare it
    classic: every worker's declare fails (406) and no worker connects. /status,
    the page and /healthz name the queue and the broker's reason instead of
    "broker down", and the master logs it once, not every round."""
    d = daemon(workers={"count": "1", "app": "builtin:noop"})
    q = queue_name(d.tmp, d.name)
    broker.ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        d.start(wait_workers=False)
        st = wait_for(lambda: (lambda x: "PRECONDITION" in (x["broker"]["probe_error"] or "")
                               and x)(d.status()), what="the probe's verdict")
        why = (f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in "
               "vhost '/': received none but current is the value 'quorum'")
        assert st["broker"]["probe_connected"] is True
        assert st["broker"]["probe_error"].startswith(f"queue {q}: {why}"), st["broker"]
        work = queues(d)[q]
        assert work["error"].startswith(why) and work["exists"] is True
        # The passive declare still counts it.
        assert work["messages"] == 0
        assert queues(d)[q + ".dead"]["error"] is None
        code, body = wait_for(lambda: (lambda h: h[0] == 503 and "arguments" in
                                       h[1]["reason"] and h)(healthz(d)),
                              what="/healthz naming the queue")
        assert body["reason"].startswith(f"queue {q} exists with other arguments: {why}")
        page = requests.get(d.url + "/", timeout=5).text
        assert "exists with other arguments than the workers'" in page
        assert f"inequivalent arg 'x-queue-type' for queue '{q}'" in page
        # Two more rounds: still one line in the log.
        time.sleep(2 * 2.2)
        # (The worker says it too, once, in its own words: see
        # test_broker_features.py.)
        said = [x for x in d.log().splitlines()
                if " master " in x and f"queue {q} exists with other arguments" in x]
        assert len(said) == 1, d.log()
    finally:
        broker.ch.queue_delete(q)


def test_other_priority_is_named_and_a_reload_checks_again(daemon, broker):
    """x-max-priority 5 on the broker, 6 in the file: named, with the broker's
    comparison (the probe sends the number as the workers do). A reload to 5
    checks again and the error goes; the figures never stopped."""
    d = daemon(workers={"count": "1", "app": "builtin:noop"}, broker={"max_priority": "6"})
    q = queue_name(d.tmp, d.name)
    broker.ch.queue_declare(q, durable=True, arguments={"x-max-priority": 5})
    try:
        d.start(wait_workers=False)
        err = wait_for(lambda: queues(d)[q]["error"], what="the priority refused")
        assert "inequivalent arg 'x-max-priority'" in err and "received '6' but current is '5'" \
            in err, err
        assert d.status()["broker"]["probe_error"] == f"queue {q}: {err}"
        # Not a passive declare of the dead-letter queue: it has no priority.
        assert queues(d)[q + ".dead"]["error"] is None

        d.write_config(**dict(d.sections, broker={"max_priority": "5"}))
        d.signal(signal.SIGHUP)
        wait_for(lambda: queues(d)[q]["error"] is None, what="the error gone after the reload")
        st = d.status()
        assert st["broker"]["probe_error"] is None and st["broker"]["probe_connected"] is True
        assert queues(d)[q]["messages"] == 0
        assert f"queue probe: queue {q} has the workers' arguments now" in d.log()
    finally:
        broker.ch.queue_delete(q)
