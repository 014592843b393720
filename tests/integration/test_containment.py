"""Crash containment and exact accounting: the engine child of a worker dies on
a job (abort, SIGKILL, a hang past job_timeout, espeak-ng's own crashers) and
only that job is charged; the worker, its connection and its other jobs go on.
Attempt headers from producers are validated; undeliverable results are
`reply_failed`, not crashes."""

import decimal
import json
import os
import re
import signal
import time

import requests

from conftest import alive, children_of, queue_name, wait_for

TEXT = "The quick brown fox jumps over the lazy dog."


def queue_of(d):
    return queue_name(d.tmp, d.name)


def engine_of(d, worker_pid):
    w = [w for w in d.status()["workers"] if w["pid"] == worker_pid][0]
    return w["engine_pid"]


def publish(broker, q, body, headers=None, reply_to=True, job_id=None):
    props = broker.pika.BasicProperties(
        reply_to=broker.reply_to if reply_to else None, correlation_id=job_id,
        message_id=job_id, content_type="application/json", delivery_mode=2,
        headers=headers)
    broker.ch.basic_publish("", q, body if isinstance(body, (bytes, str)) else json.dumps(body),
                            props)


def test_neighbours_of_a_crasher_come_back_ok(daemon, broker, test_app):
    """One worker, prefetch 4, max_attempts 5: a job that aborts its engine and
    three good ones beside it. The good ones are ok on their first attempt; the
    crasher is quarantined after 2 crashes; the worker never restarts."""
    d = daemon(workers={"count": "1", "app": test_app("crashapp", "crash_app")},
               broker={"prefetch": "4", "max_attempts": "5"}).start()
    q = queue_of(d)
    (worker,) = d.worker_pids()
    engine = engine_of(d, worker)
    assert engine and engine in children_of(worker)
    publish(broker, q, {"id": "bad", "do": "abort"}, job_id="bad")
    for i in range(3):
        publish(broker, q, {"id": f"good{i}"}, job_id=f"good{i}")
    res = broker.wait_results(4, timeout=60)
    for i in range(3):
        r = res[f"good{i}"]
        assert r["status"] == "ok" and r["attempts"] == 1, r
        assert r["worker"] == worker
    bad = res["bad"]
    assert bad["status"] == "error" and bad["error"]["code"] == "crashed", bad
    assert bad["attempts"] == 2
    assert "signal 6" in bad["error"]["message"]
    dead = wait_for(lambda: broker.get_all(q + ".dead"), what="dead letter")
    assert len(dead) == 1
    assert dead[0][0].headers["x-c2a-error-code"] == "crashed"
    assert dead[0][0].headers["x-c2a-crashes"] == 2
    # the same worker, a new engine child, every counter kept
    assert d.worker_pids() == [worker]
    st = d.status()
    assert st["restarts"]["crashed"] == 0 and st["totals"]["worker_restarts"] == 0
    assert st["totals"]["engine_crashes"] == 2 and st["totals"]["jobs_ok"] == 3
    new_engine = engine_of(d, worker)
    assert new_engine and new_engine != engine and not alive(engine)
    # and a job after it runs on the new child
    publish(broker, q, {"id": "after"}, job_id="after")
    r = broker.wait_results(5, timeout=30)["after"]
    assert r["status"] == "ok" and r["engine_pid"] == new_engine


def test_a_sigkilled_engine_costs_one_crash(daemon, broker, test_app):
    d = daemon(workers={"count": "1", "app": test_app("crashapp", "crash_app")},
               broker={"max_attempts": "5"}).start()
    q = queue_of(d)
    publish(broker, q, {"id": "k", "do": "kill"}, job_id="k")
    publish(broker, q, {"id": "fine"}, job_id="fine")
    res = broker.wait_results(2, timeout=60)
    assert res["fine"]["status"] == "ok" and res["fine"]["attempts"] == 1
    assert res["k"]["error"]["code"] == "crashed" and res["k"]["attempts"] == 2
    assert "signal 9" in res["k"]["error"]["message"]


def test_an_engine_killed_while_writing_leaves_no_file(daemon, broker):
    """The engine writes the audio under a temporary name of its worker's (which
    lives on, so no engine start cleans it up): the worker removes what the
    dead engine left, and the job runs again."""
    d = daemon(workers={"count": "1"}, broker={"max_attempts": "5"}).start()
    q = queue_of(d)
    (worker,) = d.worker_pids()
    tmpdir = d.tmp / "audio" / ".c2a-tmp"
    publish(broker, q, {"id": "long", "text": " ".join([TEXT] * 150)}, job_id="long")
    wait_for(lambda: tmpdir.exists() and list(tmpdir.iterdir()), timeout=20,
             what="the engine writing")
    os.kill(engine_of(d, worker), signal.SIGKILL)
    r = broker.wait_results(1, timeout=90)["long"]
    assert r["status"] == "ok" and r["attempts"] == 2, r
    assert list(tmpdir.iterdir()) == []
    assert d.worker_pids() == [worker]
    assert d.status()["totals"]["engine_crashes"] == 1


def test_slow_job_is_named_once_while_it_runs(daemon, broker, test_app):
    """php-fpm's slow log: a job past slow_job is named in the log once, with
    its worker and engine pids, and counted; it is not killed."""
    d = daemon(workers={"count": "1", "slow_job": "1",
                        "app": test_app("crashapp", "crash_app")}).start()
    q = queue_of(d)
    (worker,) = d.worker_pids()
    publish(broker, q, {"id": "sleepy", "do": "nap"}, job_id="sleepy")
    line = wait_for(lambda: [l for l in d.log().splitlines() if "slow job: sleepy" in l],
                    what="the slow-job warning")[0]
    engine = d.status()["workers"][0]["engine_pid"]
    assert re.search(rf"has run for 1\.\d s \(slow_job = 1 s\) in worker {worker}, "
                     rf"engine pid {engine}$", line), line
    res = broker.wait_results(1, timeout=30)
    assert res["sleepy"]["status"] == "ok"
    assert d.log().count("slow job:") == 1
    assert d.status()["totals"]["slow_jobs"] == 1
    assert "c2a_jobs_slow_total 1\n" in requests.get(d.url + "/metrics", timeout=5).text


def test_job_timeout_kills_the_engine_not_the_worker(daemon, broker, test_app):
    """A job that hangs is killed at job_timeout with its engine child; the
    worker lives on, the jobs behind it are ok on their first attempt, and the
    hung job is dead-lettered as `timeout` after 2 such attempts."""
    d = daemon(workers={"count": "1", "job_timeout": "1",
                        "app": test_app("crashapp", "crash_app")},
               broker={"prefetch": "3", "max_attempts": "5"}).start()
    q = queue_of(d)
    (worker,) = d.worker_pids()
    publish(broker, q, {"id": "stuck", "do": "hang"}, job_id="stuck")
    for i in range(5):
        publish(broker, q, {"id": f"ok{i}"}, job_id=f"ok{i}")
    res = broker.wait_results(6, timeout=60)
    assert all(res[f"ok{i}"]["status"] == "ok" and res[f"ok{i}"]["attempts"] == 1
               for i in range(5))
    r = res["stuck"]
    assert r["status"] == "error" and r["error"]["code"] == "timeout" and r["attempts"] == 2
    st = d.status()
    assert d.worker_pids() == [worker]
    assert st["restarts"]["job_timeout"] == 0 and st["totals"]["worker_restarts"] == 0
    assert st["totals"]["engine_timeouts"] == 2
    dead = wait_for(lambda: broker.get_all(q + ".dead"), what="dead letter")
    assert [p.headers["x-c2a-error-code"] for p, _ in dead] == ["timeout"]


# Texts that crash espeak-ng 1.51 inside the library (Debian 12), and a voice
# variant longer than its buffer. Each must be answered, by an ok or an error
# result, without a worker restart; a good job after them succeeds.
CRASHERS = {
    "dots": "a." * 85,
    "host": "http://" + "a." * 120 + "com",
    "quotes": "s'" * 100,
    "accents": "é." * 150,
    "ssml": "<speak>" + "a." * 85 + "</speak>",
    "bengali": "\u09e6" * 20 + " ok",
    "tamil": "\u0bff" * 20 + " ok",
}


def test_espeak_crashers_cost_no_worker(daemon, broker):
    d = daemon(workers={"count": "1"}, broker={"prefetch": "4", "max_attempts": "3"}).start()
    q = queue_of(d)
    (worker,) = d.worker_pids()
    for name, text in CRASHERS.items():
        job = {"id": name, "ssml": text} if name == "ssml" else {"id": name, "text": text}
        publish(broker, q, job, job_id=name)
    publish(broker, q, {"id": "variant", "text": TEXT, "voice": "en+" + "x" * 40},
            job_id="variant")
    publish(broker, q, {"id": "good", "text": TEXT}, job_id="good")
    res = broker.wait_results(len(CRASHERS) + 2, timeout=120)
    assert res["good"]["status"] == "ok" and res["good"]["attempts"] == 1
    for name in CRASHERS:
        r = res[name]
        assert r["status"] == "ok" or r["error"]["code"] == "crashed", r
    assert res["variant"]["error"]["code"] == "unknown_voice"
    assert d.worker_pids() == [worker]
    assert d.status()["totals"]["worker_restarts"] == 0


def test_forged_attempt_headers_are_treated_as_absent(daemon, broker):
    d = daemon(workers={"count": "1"}).start()
    q = queue_of(d)
    forged = {"max": 2**31 - 1, "min": -2**31, "neg": -5, "big": 2**40, "text": "7",
              "decimal": decimal.Decimal("1.5"), "huge": 10**6, "bool": True}
    for name, v in forged.items():
        publish(broker, q, {"id": name, "text": TEXT},
                headers={"x-c2a-attempts": v, "x-c2a-crashes": v,
                         "x-c2a-redeliveries": v}, job_id=name)
    res = broker.wait_results(len(forged), timeout=60)
    for name in forged:
        assert res[name]["status"] == "ok" and res[name]["attempts"] == 1, (name, res[name])
    assert d.status()["totals"]["worker_restarts"] == 0


def test_an_empty_body_is_a_bad_job_not_a_crash(daemon, broker):
    d = daemon(workers={"count": "1"}).start()
    q = queue_of(d)
    publish(broker, q, b"", job_id="empty")
    publish(broker, q, {"id": "next", "text": TEXT}, job_id="next")
    res = broker.wait_results(2, timeout=30)
    assert res["empty"]["error"]["code"] == "bad_json"
    assert res["next"]["status"] == "ok"
    assert d.status()["totals"]["worker_restarts"] == 0


def test_a_refused_result_is_reply_failed_not_a_crash(daemon, broker):
    """The reply_to queue rejects every message (x-overflow = reject-publish on a
    full queue): the job is retried as `reply_failed` through the delay queues,
    then dead-lettered with that code; nothing is counted as a crash and the
    worker's other jobs flow."""
    d = daemon(workers={"count": "1"}, broker={"max_attempts": "2"}).start()
    q = queue_of(d)
    full = queue_name(d.tmp, "full")
    broker.ch.queue_declare(full, arguments={"x-max-length": 0,
                                             "x-overflow": "reject-publish"})
    try:
        props = broker.pika.BasicProperties(reply_to=full, correlation_id="nowhere",
                                            content_type="application/json", delivery_mode=2)
        broker.ch.basic_publish("", q, json.dumps({"id": "nowhere", "text": TEXT}), props)
        publish(broker, q, {"id": "fine", "text": TEXT}, job_id="fine")
        assert broker.wait_results(1, timeout=30)["fine"]["status"] == "ok"
        dead = wait_for(lambda: broker.get_all(q + ".dead"), timeout=30, what="dead letter")
        h = dead[0][0].headers
        assert h["x-c2a-error-code"] == "reply_failed" and h["x-c2a-attempts"] == 2
        assert "x-c2a-crashes" not in h
        st = d.status()
        assert st["totals"]["worker_restarts"] == 0 and st["totals"]["engine_crashes"] == 0
        assert st["totals"]["jobs_retried"] == 1 and st["totals"]["jobs_dead"] == 1
        assert st["workers"][0]["jobs_in_hand"] == 0
    finally:
        broker.ch.queue_delete(full)


def test_graceful_stop_of_an_idle_worker_is_quick(daemon, broker):
    """A worker with nothing in hand stops at once on TERM: nothing waits for
    confirms that will never come."""
    d = daemon(workers={"count": "1", "graceful_timeout": "30"}).start()
    q = queue_of(d)
    for i in range(20):
        publish(broker, q, {"id": f"j{i}", "text": TEXT}, job_id=f"j{i}")
    broker.wait_results(20, timeout=60)
    wait_for(lambda: d.status()["workers"][0]["jobs_in_hand"] == 0, what="idle")
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(timeout=30) == 0
    assert time.monotonic() - t0 < 3
    assert "killed (killed)" not in d.log()


def test_voices_as_espeak_ng_takes_them(daemon, broker):
    """Language codes, voice files and names, +variants, as `espeak-ng -v` takes
    them, checked against the installed list; mbrola voices refused unless
    configured; a variant too long for espeak-ng's buffers is unknown, not a
    crash."""
    d = daemon(workers={"count": "1"}).start()
    q = queue_of(d)
    good = ["en-us", "en-gb", "de", "fr-fr", "gmw/en-US", "en+m3", "en-us+klatt",
            "English_(America)", "EN-GB"]
    bad = ["xx-nosuch", "en+nosuchvariant", "en+" + "v" * 40, "mb/mb-en1", "mb-en1+m3"]
    for i, v in enumerate(good + bad):
        publish(broker, q, {"id": f"v{i}", "text": TEXT, "voice": v}, job_id=f"v{i}")
    res = broker.wait_results(len(good) + len(bad), timeout=60)
    for i, v in enumerate(good):
        assert res[f"v{i}"]["status"] == "ok", (v, res[f"v{i}"])
    for i, v in enumerate(bad, len(good)):
        r = res[f"v{i}"]
        assert r["status"] == "error" and r["error"]["code"] in ("unknown_voice", "bad_field"), \
            (v, r)
    assert d.status()["totals"]["worker_restarts"] == 0
    assert d.status()["totals"]["engine_crashes"] == 0
