"""The job pipeline against a real RabbitMQ: jobs in (pika), results and files
out, errors dead-lettered, nothing lost when workers die."""

import os
import signal
import subprocess
import time

import pytest
import requests

from conftest import alive, sfinfo, queue_name, wait_for

FORMATS = ["wav", "flac", "ogg", "opus", "mp3"]
TEXT = ("The quick brown fox jumps over the lazy dog. "
        "Content to audio, at scale, without losing a job.")


def queue_of(d):
    """The queue conftest.base_config gives each test's daemon."""
    return queue_name(d.tmp, d.name)


def test_200_jobs_every_format(daemon, broker):
    d = daemon(workers={"count": "2"}, broker={"prefetch": "4"}).start()
    q = queue_of(d)
    rates = {"wav": 0, "flac": 16000, "ogg": 44100, "opus": 0, "mp3": 22050}
    for i in range(200):
        fmt = FORMATS[i % 5]
        broker.publish(q, {"id": f"job-{i}", "text": f"{TEXT} Number {i}.", "format": fmt,
                           "sample_rate": rates[fmt]})
    results = broker.wait_results(200, timeout=120)
    assert len(results) == 200
    assert len(broker.result_list) == 200  # no result twice
    expect_rate = {"wav": 22050, "flac": 16000, "ogg": 44100, "opus": 24000, "mp3": 22050}
    for i in range(200):
        r = results[f"job-{i}"]
        fmt = FORMATS[i % 5]
        assert r["status"] == "ok", r
        assert r["id"] == f"job-{i}" and r["format"] == fmt and r["attempts"] == 1
        assert r["path"] == str(d.tmp / "audio" / f"job-{i}.{fmt}")
        assert r["sample_rate"] == expect_rate[fmt] and r["channels"] == 1
        assert os.path.getsize(r["path"]) == r["bytes"] and len(r["sha256"]) == 64
        rate, frames, channels, _ = sfinfo(r["path"])
        assert rate == expect_rate[fmt] and channels == 1
        assert abs(frames * 1000 / rate - r["duration_ms"]) < 80, (fmt, frames, r)
        assert 3000 < r["duration_ms"] < 12000
    assert len([p for p in (d.tmp / "audio").iterdir() if p.is_file()]) == 200
    assert list((d.tmp / "audio" / ".c2a-tmp").iterdir()) == []  # no temporary files left
    st = d.status()
    assert st["totals"]["jobs_ok"] == 200 and st["totals"]["jobs_failed"] == 0
    assert broker.depth(q) == 0


def test_wav_matches_espeak_cli(daemon, broker, tmp_path):
    d = daemon(workers={"count": "1"}).start()
    q = queue_of(d)
    text = "Hello from c2a worker. This sentence should sound the same as espeak-ng says it."
    broker.publish(q, {"id": "cmp", "text": text, "voice": "en-us", "rate": 160})
    r = broker.wait_results(1)["cmp"]
    ref = tmp_path / "ref.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(ref), text], check=True)
    rate_a, frames_a, _, env_a = sfinfo(r["path"])
    rate_b, frames_b, _, env_b = sfinfo(ref)
    assert rate_a == rate_b == 22050
    assert abs(frames_a - frames_b) <= 0.01 * frames_b
    # The same loudness envelope, 50 ms at a time.
    n = min(len(env_a), len(env_b))
    a, b = env_a[:n], env_b[:n]
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    var = (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5
    assert cov / var > 0.95
    # The first utterance of a fresh worker is sample-identical to the CLI.
    assert open(r["path"], "rb").read()[44:] == open(ref, "rb").read()[44:]


def test_bad_jobs_get_error_results_and_are_dead_lettered(daemon, broker):
    d = daemon(workers={"count": "1"}, speech={"max_chars": "50"}).start()
    q = queue_of(d)
    broker.publish(q, None, correlation_id="c1", message_id="m1", raw="{oops")
    broker.publish(q, {"id": "nosrc"})
    broker.publish(q, {"id": "voice", "text": "hi", "voice": "xx-nosuch"})
    broker.publish(q, {"id": "big", "text": "x" * 51})
    broker.publish(q, {"id": "good", "text": "still fine"})
    res = broker.wait_results(5)
    assert res["c1"]["error"]["code"] == "bad_json" and res["c1"]["id"] == "m1"
    assert res["nosrc"]["error"]["code"] == "bad_field"
    assert res["voice"]["error"]["code"] == "unknown_voice"
    assert res["big"]["error"]["code"] == "too_large"
    assert res["good"]["status"] == "ok"
    dead = wait_for(lambda: (lambda m: len(m) == 4 and m)(broker.get_all(q + ".dead")),
                    what="dead letters")
    codes = sorted(p.headers["x-c2a-error-code"] for p, _ in dead)
    assert codes == ["bad_field", "bad_json", "too_large", "unknown_voice"]
    bodies = {p.headers["x-c2a-error-code"]: b for p, b in dead}
    assert bodies["bad_json"] == b"{oops"  # the original message, untouched
    assert all(p.headers["x-c2a-error-message"] for p, _ in dead)
    st = d.status()
    assert st["totals"]["jobs_dead"] == 4 and st["totals"]["jobs_ok"] == 1


def test_kill9_of_a_busy_worker_loses_nothing(daemon, broker):
    d = daemon(workers={"count": "2"}, speech={"max_chars": "1000000"}).start()
    q = queue_of(d)
    long_text = (TEXT + " ") * 400  # a few seconds of synthesis
    n = 20
    for i in range(n):
        broker.publish(q, {"id": f"k{i}", "text": long_text if i % 4 == 0 else TEXT})
    # Kill whichever worker is busy with a long job, twice.
    killed = 0
    deadline = time.monotonic() + 60
    while killed < 2 and time.monotonic() < deadline:
        for w in d.status()["workers"]:
            if w["state"] == "busy" and w["current_job"] in ("k0", "k4", "k8") and alive(w["pid"]):
                os.kill(w["pid"], signal.SIGKILL)
                killed += 1
                break
        broker.pump(0.05)
    assert killed == 2
    res = broker.wait_results(n, timeout=120)
    assert sorted(res) == sorted(f"k{i}" for i in range(n))
    assert all(r["status"] == "ok" for r in res.values())
    assert len(broker.result_list) == n  # one result per job
    files = sorted(p.name for p in (d.tmp / "audio").iterdir() if p.name != ".c2a-tmp")
    assert files == sorted(f"k{i}.wav" for i in range(n))  # no duplicates
    # Half-written files of the killed workers (if a kill came after synthesis:
    # on a loaded machine it may not) were removed by their replacements;
    # tests/unit/test_encode.c checks that removal itself.
    assert list((d.tmp / "audio" / ".c2a-tmp").iterdir()) == []
    # A lost worker is not the job's fault: no attempt is charged.
    assert max(r["attempts"] for r in res.values()) == 1
    assert d.status()["restarts"]["boot_failed"] == 0


def test_a_job_whose_worker_is_killed_every_time_is_dead_lettered(daemon, broker):
    """kill -9 of the whole worker on every delivery (from outside): no attempt is
    charged for a lost worker, but after 10 such deliveries the job is
    dead-lettered as crashed, so it cannot crash-loop the pool; the job behind it
    still runs."""
    d = daemon(workers={"count": "1"}, broker={"max_attempts": "3"},
               speech={"max_chars": "1000000"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "poison", "text": (TEXT + " ") * 400})
    broker.publish(q, {"id": "after", "text": TEXT})
    kills = 0
    deadline = time.monotonic() + 120
    while "poison" not in broker.results and time.monotonic() < deadline:
        for w in d.status()["workers"]:
            if w["current_job"] == "poison" and alive(w["pid"]):
                os.kill(w["pid"], signal.SIGKILL)
                kills += 1
        broker.pump(0.05)
    res = broker.wait_results(2)
    assert kills == 10
    assert res["poison"]["error"]["code"] == "crashed" and res["poison"]["attempts"] == 1
    assert "lost on every delivery" in res["poison"]["error"]["message"]
    assert res["after"]["status"] == "ok"


def test_a_worker_booting_into_a_redelivered_job(daemon, broker):
    """A redelivered job waiting in the queue reached the pipeline during the
    worker's first connect, before it held its link: every replacement worker
    crashed at boot and the pool went into boot backoff."""
    d = daemon(workers={"count": "1"}, speech={"max_chars": "1000000"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "redo", "text": (TEXT + " ") * 400})
    (w,) = d.worker_pids()
    wait_for(lambda: d.status()["workers"][0]["current_job"] == "redo", what="busy")
    os.kill(w, signal.SIGKILL)
    r = broker.wait_results(1, timeout=60)["redo"]
    assert r["status"] == "ok" and r["attempts"] == 1
    st = d.status()
    assert st["restarts"]["boot_failed"] == 0 and st["restarts"]["killed"] == 1


def test_a_job_that_hangs_its_engine_is_dead_lettered(daemon, broker):
    """A job whose synthesis runs past job_timeout: its worker kills the engine
    child and goes on; the job is charged, and after 2 such attempts it is
    dead-lettered as timeout while other jobs flow, on their first attempt."""
    d = daemon(workers={"count": "2", "job_timeout": "1"},
               broker={"max_attempts": "3"}, speech={"max_chars": "10000000"}).start()
    q = queue_of(d)
    pids = d.worker_pids()
    broker.publish(q, {"id": "poison", "text": (TEXT + " ") * 6000})
    for i in range(30):
        broker.publish(q, {"id": f"ok{i}", "text": TEXT})
    res = broker.wait_results(31, timeout=120)
    assert all(res[f"ok{i}"]["status"] == "ok" and res[f"ok{i}"]["attempts"] == 1
               for i in range(30))
    assert res["poison"]["status"] == "error"
    assert res["poison"]["error"]["code"] == "timeout"
    assert res["poison"]["attempts"] == 2
    # The dead letter follows the result on the worker's channel: wait for it.
    dead = wait_for(lambda: broker.get_all(q + ".dead"), what="dead letter")
    assert [p.headers["x-c2a-error-code"] for p, _ in dead] == ["timeout"]
    st = d.status()
    assert st["restarts"]["job_timeout"] == 0 and d.worker_pids() == pids
    assert st["totals"]["engine_timeouts"] == 2  # one kill of the engine per attempt
    assert d.proc.poll() is None


def test_two_daemons_share_the_work(daemon, broker):
    q = queue_name(daemon("probe").tmp, "shared")
    a = daemon("a", broker={"queues": q})
    b = daemon("b", broker={"queues": q})
    a.start()
    b.start()
    for i in range(100):
        broker.publish(q, {"id": f"s{i}", "text": TEXT})
    res = broker.wait_results(100, timeout=120)
    broker.ch.queue_delete(q)
    broker.ch.queue_delete(q + ".dead")
    assert len(res) == 100 and len(broker.result_list) == 100
    pids_a, pids_b = set(a.worker_pids()), set(b.worker_pids())
    by = {r["worker"] for r in res.values()}
    assert by & pids_a and by & pids_b  # both did some
    assert a.status()["totals"]["jobs_ok"] + b.status()["totals"]["jobs_ok"] == 100


def test_graceful_stop_finishes_the_job_in_hand(daemon, broker):
    d = daemon(workers={"count": "1", "graceful_timeout": "30"},
               broker={"prefetch": "5"}, speech={"max_chars": "1000000"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "long", "text": (TEXT + " ") * 300})
    for i in range(4):
        broker.publish(q, {"id": f"after{i}", "text": TEXT})
    wait_for(lambda: d.status()["workers"][0]["current_job"] == "long", what="busy")
    d.signal(signal.SIGTERM)
    assert d.wait_exit(timeout=60) == 0
    res = broker.wait_results(1, timeout=10)
    assert res["long"]["status"] == "ok"
    broker.pump(0.5)
    assert sorted(res) == ["long"]
    # The jobs it had not started are back in the queue, not counted as attempts.
    left = broker.get_all(q)
    assert sorted(json_id(b) for _, b in left) == [f"after{i}" for i in range(4)]
    assert all((p.headers or {}).get("x-c2a-attempts", 0) == 0 for p, _ in left)


def json_id(body):
    import json
    return json.loads(body)["id"]


def test_pause_stops_deliveries_and_resume_restarts_them(daemon, broker):
    d = daemon(master={"control_token": "s3cret"}).start()
    q = queue_of(d)
    auth = {"Authorization": "Bearer s3cret"}
    r = requests.post(d.url + "/pause", timeout=5)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = requests.post(d.url + "/pause", headers={"Authorization": "Bearer s3cre"}, timeout=5)
    assert r.status_code == 401
    r = requests.post(d.url + "/pause", headers=auth, timeout=5)
    assert r.status_code == 200 and r.json() == {"paused": True, "changed": True}
    wait_for(lambda: all(w["state"] == "paused" for w in d.status()["workers"]),
             what="workers paused")
    assert d.status()["paused"] is True
    for i in range(5):
        broker.publish(q, {"id": f"p{i}", "text": TEXT})
    broker.pump(2)
    assert broker.results == {}
    assert broker.depth(q) == 5
    assert requests.get(d.url + "/pause", timeout=5).status_code == 405
    r = requests.post(d.url + "/resume", headers=auth, timeout=5)
    assert r.status_code == 200 and r.json()["paused"] is False
    res = broker.wait_results(5)
    assert sorted(res) == [f"p{i}" for i in range(5)]
    assert all(w["state"] == "idle" for w in d.status()["workers"])


def test_max_jobs_recycles_workers_without_losing_jobs(daemon, broker):
    d = daemon(workers={"count": "2", "max_jobs": "10", "max_jobs_jitter": "3"}).start()
    q = queue_of(d)
    first = d.worker_pids()
    for i in range(60):
        broker.publish(q, {"id": f"r{i}", "text": TEXT})
    res = broker.wait_results(60, timeout=120)
    assert len(res) == 60 and all(r["status"] == "ok" for r in res.values())
    assert len(broker.result_list) == 60
    assert len({r["worker"] for r in res.values()}) >= 4  # several generations of workers
    st = wait_for(lambda: (lambda s: len(s["workers"]) == 2 and s)(d.status()), what="pool")
    assert st["restarts"]["recycled"] >= 2
    assert not set(first) & set(d.worker_pids())
    assert "recycling after" in d.log()


def test_max_rss_recycles_a_worker_after_its_job(daemon, broker):
    """[workers] max_rss: a worker over the limit finishes its job, takes no
    more, and is replaced; the restart says memory. Measured after a job only,
    so an idle pool under a limit set too low is not replaced in a loop."""
    d = daemon(workers={"count": "1", "max_rss": "1"}).start()
    q = queue_of(d)
    first = d.worker_pids()
    time.sleep(1.5)  # idle heartbeats: no recycling without a job
    assert d.worker_pids() == first and d.status()["restarts"]["memory"] == 0
    for i in range(3):
        broker.publish(q, {"id": f"m{i}", "text": TEXT})
    res = broker.wait_results(3, timeout=60)
    assert all(r["status"] == "ok" for r in res.values())
    assert len({r["worker"] for r in res.values()}) == 3  # one job per worker
    st = wait_for(lambda: (lambda s: s["restarts"]["memory"] >= 2 and s)(d.status()),
                  what="memory restarts")
    assert st["restarts"]["recycled"] == 0
    assert "over max_rss = 1 MB" in d.log()
    m = requests.get(d.url + "/metrics", timeout=5).text
    assert 'c2a_worker_restarts_total{reason="memory"}' in m


def test_a_long_job_keeps_the_broker_connection(daemon, broker):
    """The engine child works while the worker's loop keeps AMQP heartbeats
    going: a job of over ten seconds with heartbeat = 2 (the broker drops a
    connection after two missed beats, 4 s) finishes on its first connection and
    first attempt."""
    d = daemon(workers={"count": "1", "job_timeout": "600"}, broker={"heartbeat": "2"},
               speech={"max_chars": "1000000", "max_duration": "86400"}).start()
    q = queue_of(d)
    # About 25 s of synthesis and Opus encoding here; a sanitizer build is slower.
    repeat = 120 if os.environ.get("C2A_SANITIZE") == "1" else 240
    t0 = time.monotonic()
    broker.publish(q, {"id": "long", "text": (TEXT + " ") * repeat, "format": "opus",
                       "sample_rate": 48000})
    r = broker.wait_results(1, timeout=400)["long"]
    elapsed = time.monotonic() - t0
    assert r["status"] == "ok" and r["attempts"] == 1
    assert elapsed > 10, f"the job took {elapsed:.1f} s: too short to prove anything"
    assert "connection lost" not in d.log() and "closed by the broker" not in d.log()
    assert d.log().count("amqp: connected to") == 1
    os.unlink(r["path"])


def test_ssml_marks_and_caps(daemon, broker):
    d = daemon(workers={"count": "1"}, speech={"max_duration": "2"}).start()
    q = queue_of(d)
    secret = d.tmp / "secret.wav"
    secret.write_bytes(b"RIFF not really")
    broker.publish(q, {"id": "ssml", "ssml": f'<speak>Before <audio src="{secret}"/> after. '
                                            '<break time="500ms"/> Done.</speak>'})
    broker.publish(q, {"id": "marks", "text": "One two. Three four.", "marks": True})
    broker.publish(q, {"id": "long", "text": TEXT * 5})  # well over 2 s of audio
    res = broker.wait_results(3)
    assert res["ssml"]["status"] == "ok"
    marks = res["marks"]["marks"]
    words = [m for m in marks if m["type"] == "word"]
    assert [m["start"] for m in words] == [0, 4, 9, 15]
    assert [m["length"] for m in words] == [3, 3, 5, 4]
    assert all(a["time_ms"] <= b["time_ms"] for a, b in zip(words, words[1:]))
    assert any(m["type"] == "sentence" for m in marks)
    assert res["long"]["error"]["code"] == "too_large"
    assert "longer than 2 s" in res["long"]["error"]["message"]
    assert list((d.tmp / "audio" / ".c2a-tmp").iterdir()) == []


def test_broker_url_failover(daemon, broker):
    """The first URL refuses connections; the worker moves on to the next."""
    d = daemon(workers={"count": "1"})
    text = d.conf.read_text().replace(
        "[broker]\n", "[broker]\nurl = amqp://guest:guest@127.0.0.1:1/%2f\n"
                      "url = amqp://guest:guest@127.0.0.1:5672/%2f\n")
    d.write_config(text)
    d.start()
    broker.publish(queue_of(d), {"id": "f", "text": "failover"})
    assert broker.wait_results(1)["f"]["status"] == "ok"
    assert "connect 127.0.0.1:1" in d.log()


def test_results_exchange(daemon, broker):
    ex = queue_name(daemon("probe").tmp, "results")
    d = daemon(broker={"results_exchange": ex}).start()
    q = queue_of(d)
    tap = broker.ch.queue_declare("", exclusive=True).method.queue
    broker.ch.queue_bind(tap, ex, routing_key="#")
    broker.publish(q, {"id": "rx1", "text": TEXT})  # with reply_to
    broker.ch.basic_publish("", q, '{"id": "rx2", "text": "no reply_to"}')
    broker.wait_results(1)
    got = []  # get_all drains: keep what each try took
    wait_for(lambda: got.extend(broker.get_all(tap)) or len(got) == 2, what="results")
    import json
    docs = {json.loads(b)["id"]: json.loads(b) for _, b in got}
    assert docs["rx1"]["status"] == "ok" and docs["rx2"]["status"] == "ok"
    assert broker.results["rx1"]["path"] == docs["rx1"]["path"]
    broker.ch.exchange_delete(ex)


def test_app_from_a_shared_object_handles_jobs(daemon, broker, test_app):
    d = daemon(workers={"count": "1", "app": test_app("okapp", "ok_app")},
               broker={"max_attempts": "2"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "a1", "payload": "hello"})
    broker.publish(q, {"id": "a2", "payload": "fail-permanent"})
    broker.publish(q, {"id": "a3", "payload": "fail-transient"})
    res = broker.wait_results(3, timeout=30)
    ok = res["a1"]
    assert ok["status"] == "ok" and ok["bytes"] == len('{"id": "a1", "payload": "hello"}')
    body = open(ok["path"]).read()
    assert body == '{"id": "a1", "payload": "hello"}'[::-1]
    assert res["a2"]["error"] == {"code": "bad_field",
                                  "message": "the test app refuses this body"}
    # Transient: retried once through the delay queue, then dead-lettered.
    assert res["a3"]["error"]["code"] == "upstream_down"
    assert res["a3"]["attempts"] == 2
    assert res["a3"]["error"]["message"] == "try again (attempt 2)"
    dead = wait_for(lambda: (lambda m: len(m) == 2 and m)(broker.get_all(q + ".dead")),
                    what="dead letters")
    assert sorted(p.headers["x-c2a-error-code"] for p, _ in dead) == ["bad_field",
                                                                      "upstream_down"]
    st = d.status()
    assert st["totals"]["jobs_ok"] == 1 and st["totals"]["jobs_retried"] == 1
    assert st["totals"]["jobs_dead"] == 2


def test_a_refused_result_does_not_stall_or_lose_the_job(daemon, broker):
    """The broker nacks the result (a reply queue that rejects every message):
    the job is handed back instead of holding the worker's only prefetch slot,
    retried up to max_attempts, then dead-lettered once, while other jobs flow."""
    d = daemon(workers={"count": "1"}, broker={"max_attempts": "2"}).start()
    q = queue_of(d)
    full = queue_name(d.tmp, "full")
    broker.ch.queue_declare(full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    broker.ch.basic_publish("", q, '{"id": "refused", "text": "hello"}',
                            broker.pika.BasicProperties(reply_to=full, correlation_id="refused"))
    broker.publish(q, {"id": "fine", "text": TEXT})
    assert broker.wait_results(1)["fine"]["status"] == "ok"
    dead = wait_for(lambda: broker.get_all(q + ".dead"), what="dead letter")
    assert len(dead) == 1 and dead[0][0].headers["x-c2a-attempts"] == 2
    broker.pump(2)
    assert broker.get_all(q + ".dead") == []  # dead-lettered once, not in a loop
    assert broker.depth(q) == 0
    assert "its error result was refused" in d.log()
    broker.ch.queue_delete(full)


def mapped(pid):
    """The file names a process maps."""
    with open(f"/proc/{pid}/maps") as f:
        return {os.path.basename(line.split()[-1]) for line in f if "/" in line}


def test_audio_stack_only_in_the_engine(daemon, broker):
    """espeak-ng and the codecs are loaded by the engine child alone
    (c2a-engine.so), and espeak-ng's sound output not at all (c2a-noaudio.so
    stands in for libpcaudio): the worker that holds the broker connection maps
    none of them."""
    d = daemon(workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "m", "text": TEXT, "format": "ogg"})
    assert broker.wait_results(1)["m"]["status"] == "ok"
    (w,) = d.status()["workers"]
    worker, engine = mapped(w["pid"]), mapped(w["engine_pid"])
    audio = ("libespeak-ng", "libsndfile", "libvorbis", "libsamplerate", "c2a-engine")
    assert not [m for m in worker if m.startswith(audio)], sorted(worker)
    assert [m for m in engine if m.startswith("libespeak-ng")]
    assert [m for m in engine if m.startswith("libsndfile")]
    assert "c2a-noaudio.so" in engine
    playback = ("libpulse", "libasound", "libX11", "libpcaudio")
    assert not [m for m in engine if m.startswith(playback)], sorted(engine)
