"""c2actl dead: list, show, requeue and purge the dead letters of a queue, on
the real broker, with the daemon making them."""

import json
import os
import time

import pika
import requests

from conftest import BIN, queue_name, run, wait_for

CTL = os.path.join(os.path.dirname(BIN), "c2actl")


def ctl(d, *args):
    r = run([CTL, "-c", str(d.conf), *args], timeout=60)
    return r.returncode, r.stdout, r.stderr


def publish(broker, q, body, msg_id, **props):
    broker.ch.basic_publish("", q, body, pika.BasicProperties(
        reply_to=broker.reply_to, correlation_id=msg_id, message_id=msg_id,
        content_type="application/json", delivery_mode=2,
        headers={"x-tenant": "acme", "x-c2a-attempts": 0}, **props))


def dead_list(d, q):
    rc, out, err = ctl(d, "--json", "dead", "list", q)
    assert rc == 0, out + err
    return {m["id"]: m for m in json.loads(out)["messages"]}


def test_list_show_requeue_purge(daemon, broker):
    d = daemon().start()
    q = queue_name(d.tmp, d.name)
    publish(broker, q, json.dumps({"id": "v1", "text": "a", "voice": "xx-nowhere"}), "v1",
            priority=3, app_id="billing")
    publish(broker, q, json.dumps({"id": "v2", "text": "b", "voice": "xx-nowhere"}), "v2")
    publish(broker, q, "{oops", "b1")
    broker.wait_results(3)
    wait_for(lambda: broker.depth(q + ".dead") == 3, what="three dead letters")

    rows = dead_list(d, q)
    assert sorted(rows) == ["b1", "v1", "v2"]
    assert rows["v1"]["code"] == "unknown_voice" and rows["b1"]["code"] == "bad_json"
    assert rows["v1"]["attempts"] == 1 and 0 <= rows["v1"]["age_s"] < 60
    assert "xx-nowhere" in rows["v1"]["message"]
    assert broker.depth(q + ".dead") == 3  # listing takes nothing
    rc, out, _ = ctl(d, "dead", "list", q + ".dead", "--limit", "2")  # either name
    assert rc == 0 and "unknown_voice" in out and "there are more" in out
    assert len(out.strip().splitlines()) == 4  # header, 2 rows, summary

    rc, out, _ = ctl(d, "dead", "show", q, "v1")
    assert rc == 0
    shown = json.loads(out)
    assert shown["body"]["voice"] == "xx-nowhere"
    assert shown["headers"]["x-tenant"] == "acme"
    assert shown["headers"]["x-c2a-error-code"] == "unknown_voice"
    assert shown["properties"]["priority"] == 3 and shown["properties"]["app_id"] == "billing"
    assert shown["properties"]["reply_to"] == broker.reply_to
    rc, out, err = ctl(d, "dead", "show", q, "nope")
    assert rc == 1 and "no dead letter with id nope" in err
    assert broker.depth(q + ".dead") == 3

    # Requeue by code while the pool is paused, to look at what goes back.
    requests.post(d.url + "/pause", timeout=5).raise_for_status()
    wait_for(lambda: all(w["state"] == "paused" for w in d.status()["workers"]), what="paused")
    rc, out, err = ctl(d, "dead", "requeue", q, "--code", "unknown_voice")
    assert rc == 0 and out.strip() == f"requeued 2 dead letters to {q}", err
    assert sorted(dead_list(d, q)) == ["b1"]
    back = broker.get_all(q)
    assert sorted(p.message_id for p, _ in back) == ["v1", "v2"]
    for props, body in back:
        assert props.headers == {"x-tenant": "acme"}  # x-c2a-* gone: attempts reset
        assert props.reply_to == broker.reply_to and props.delivery_mode == 2
        assert json.loads(body)["voice"] == "xx-nowhere"
    # Put them back through the CLI path once more and let the pool fail them
    # again: they are dead again, at attempt 1.
    for props, body in back:
        broker.ch.basic_publish("", q + ".dead", body, props)
    rc, out, _ = ctl(d, "--json", "dead", "requeue", q, "--id", "v1", "--id", "v2")
    assert rc == 0 and json.loads(out) == {"queue": q + ".dead", "requeued": 2, "to": q}
    broker.result_list.clear()
    requests.post(d.url + "/resume", timeout=5).raise_for_status()
    broker.wait_results(2)
    wait_for(lambda: broker.depth(q + ".dead") == 3, what="dead again")
    rows = dead_list(d, q)
    assert rows["v1"]["attempts"] == 1 and rows["v2"]["code"] == "unknown_voice"

    rc, _, err = ctl(d, "dead", "requeue", q, "--id", "nope")
    assert rc == 1 and "no dead letter with id nope" in err
    assert ctl(d, "dead", "requeue", q)[0] == 2  # needs a selection
    rc, out, _ = ctl(d, "dead", "purge", q, "--code", "bad_json")
    assert rc == 0 and out.strip() == f"purged 1 dead letter from {q}.dead"
    rc, out, _ = ctl(d, "--json", "dead", "purge", q)
    assert rc == 0 and json.loads(out)["purged"] == 2
    assert dead_list(d, q) == {}
    assert broker.depth(q + ".dead") == 0


def test_dead_usage_and_missing_queue(daemon):
    d = daemon()
    assert ctl(d, "dead")[0] == 2
    assert ctl(d, "dead", "list")[0] == 2
    assert ctl(d, "dead", "frob", "q")[0] == 2
    assert ctl(d, "dead", "list", "q", "--limit", "x")[0] == 2
    rc, out, _ = ctl(d, "--json", "dead", "list", f"no-such-queue-{time.time_ns()}")
    assert rc == 1 and "NOT_FOUND" in json.loads(out)["error"]["message"]


def test_dead_letters_over_the_control_api(daemon, broker):
    """GET /dead/QUEUE, GET /dead/QUEUE/ID, POST /dead/QUEUE/requeue and
    /purge: c2actl dead's answers over HTTP, changes behind the token."""
    d = daemon(master={"control_token": "tok"}).start()
    q = queue_name(d.tmp, d.name)
    tok = {"Authorization": "Bearer tok"}
    publish(broker, q, json.dumps({"id": "v1", "text": "a", "voice": "xx-nowhere"}), "v1")
    publish(broker, q, json.dumps({"id": "v2", "text": "b", "voice": "xx-nowhere"}), "v2")
    publish(broker, q, "{oops", "b1")
    broker.wait_results(3)
    wait_for(lambda: broker.depth(q + ".dead") == 3, what="three dead letters")
    url = f"{d.url}/dead/{q}"

    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    doc = r.json()
    assert doc["queue"] == q + ".dead" and doc["more"] is False
    rows = {m["id"]: m for m in doc["messages"]}
    assert sorted(rows) == ["b1", "v1", "v2"] and rows["b1"]["code"] == "bad_json"
    doc = requests.get(f"{d.url}/dead/{q}.dead?limit=1", timeout=30).json()
    assert len(doc["messages"]) == 1 and doc["more"] is True
    assert requests.head(url, timeout=30).status_code == 200
    shown = requests.get(url + "/v1", timeout=30).json()
    assert shown["body"]["voice"] == "xx-nowhere" and shown["headers"]["x-tenant"] == "acme"

    # Errors: 4xx with a JSON error, nothing taken.
    for path, code in ((f"/dead/{q}/nope", 404), ("/dead/not-ours", 404),
                       (f"/dead/{q}?limit=0", 400), (f"/dead/{q}?limit=x", 400),
                       (f"/dead/{q}/a/b", 404), (f"/dead/{q}/requeue", 405)):
        r = requests.get(d.url + path, timeout=30)
        assert r.status_code == code and "error" in r.json(), (path, r.status_code, r.text)
    assert requests.post(url + "/requeue", json={"all": True}, timeout=30).status_code == 401
    for body in ({}, {"ids": ["v1"], "all": True}, {"ids": "v1"}, {"ids": ["-x"]}):
        r = requests.post(url + "/requeue", json=body, headers=tok, timeout=30)
        assert r.status_code == 400, (body, r.text)
    r = requests.post(url + "/requeue", data="{nope", headers=tok, timeout=30)
    assert r.status_code == 400
    r = requests.post(url + "/requeue", json={"ids": ["zz"]}, headers=tok, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert broker.depth(q + ".dead") == 3

    # Requeue one: it runs again (and dies again, attempt 1); purge by code.
    broker.result_list.clear()
    r = requests.post(url + "/requeue", json={"ids": ["v1"]}, headers=tok, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"queue": q + ".dead", "requeued": 1, "to": q}
    broker.wait_results(1)
    wait_for(lambda: broker.depth(q + ".dead") == 3, what="dead again")
    r = requests.post(url + "/purge", json={"code": "bad_json"}, headers=tok, timeout=30)
    assert r.status_code == 200 and r.json()["purged"] == 1
    r = requests.post(url + "/purge", headers=tok, timeout=30)
    assert r.status_code == 200 and r.json()["purged"] == 2
    assert broker.depth(q + ".dead") == 0
    assert "dead letters: purge" in d.log()
