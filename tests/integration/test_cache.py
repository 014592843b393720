"""The output cache: an identical job reuses the earlier files (hard links, a
rename like any commit), at least 10x faster; anything that changes the file
misses; the size limit evicts the least recently used."""

import hashlib
import os
import subprocess
import time

import requests

from test_pipeline import queue_of

SENTENCE = "The keeper climbed the hundred and twelve steps and lit the lamp at dusk. "
TEXT = SENTENCE * 80  # about 6,000 characters


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_repeated_job_is_served_from_the_cache(daemon, broker):
    d = daemon(output={"cache": "yes"}, workers={"count": "1"}).start()
    q = queue_of(d)
    job = {"text": TEXT, "format": "ogg", "captions": "both", "marks": True}
    broker.publish(q, dict(job, id="first"))
    first = broker.wait_results(1)["first"]
    assert first["status"] == "ok" and first["cached"] is False, first
    broker.publish(q, dict(job, id="again"))
    broker.publish(q, dict(job, id="faster", rate=220))       # another file
    broker.publish(q, dict(job, id="nocache", cache=False))
    res = broker.wait_results(4)
    again = res["again"]
    assert again["status"] == "ok" and again["cached"] is True, again
    assert again["elapsed_ms"] * 10 <= first["elapsed_ms"], (again, first)
    assert again["sha256"] == first["sha256"] == sha(again["path"])
    assert again["path"] != first["path"] and again["duration_ms"] == first["duration_ms"]
    assert again["marks"] == first["marks"]
    for kind in ("vtt", "srt"):
        assert open(again["captions"][kind]).read() == open(first["captions"][kind]).read()
    assert res["faster"]["cached"] is False and res["faster"]["sha256"] != first["sha256"]
    assert "cached" not in res["nocache"]
    st = d.status()
    assert st["totals"]["cache_hits"] == 1 and st["totals"]["cache_misses"] == 2
    metrics = requests.get(d.url + "/metrics", timeout=5).text
    assert 'c2a_cache_lookups_total{result="hit"} 1\n' in metrics


def test_the_cache_keeps_under_its_size(daemon, broker):
    d = daemon(output={"cache": "yes", "cache_max_mb": "1"}, workers={"count": "1"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "j0", "text": "Number 0. " + SENTENCE * 2})
    res = broker.wait_results(1)
    cdir = os.path.join(os.path.dirname(res["j0"]["path"]), ".c2a-cache")
    # What a writer that died between its link and its rename leaves: removed
    # once an hour old, left alone before (another writer may be at it).
    stale, fresh = (os.path.join(cdir, "ab" * 32 + f".wav.{n}.tmp") for n in (99998, 99999))
    for path in (stale, fresh):
        with open(path, "wb") as f:
            f.write(b"x" * 100000)
    os.utime(stale, (time.time() - 3700, time.time() - 3700))
    for i in range(1, 8):  # ~300 kB of WAV each
        broker.publish(q, {"id": f"j{i}", "text": f"Number {i}. " + SENTENCE * 2})
    res = broker.wait_results(8)
    assert all(r["status"] == "ok" for r in res.values())
    assert not os.path.exists(stale) and os.path.exists(fresh)
    os.unlink(fresh)
    used = int(subprocess.run(["du", "-sk", cdir], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    assert 0 < used <= 1024, used
    names = os.listdir(cdir)
    assert not [n for n in names if n.endswith(".tmp")]
    # The newest entry is there, the oldest went first.
    keys = {n.split(".")[0] for n in names}
    assert len(keys) < 8 and all(len(k) == 64 for k in keys)
    broker.publish(q, {"id": "j7-again", "text": "Number 7. " + SENTENCE * 2})
    assert broker.wait_results(9)["j7-again"]["cached"] is True


def test_the_http_engine_is_cached_too(daemon, broker, web):
    """A hit asks the TTS server nothing; another server, model or voice misses."""
    from test_tts_http import LONG, FakeTTS, http_engine

    tts = FakeTTS(web, delay=0.2)
    d = daemon(speech=http_engine(web, http_max_chars="60"), output={"cache": "yes"},
               workers={"count": "1"}).start()
    q = queue_of(d)
    job = {"text": LONG, "format": "opus", "engine": "http", "captions": "vtt",
           "loudness": -20}
    broker.publish(q, dict(job, id="first"))
    first = broker.wait_results(1)["first"]
    assert first["status"] == "ok" and first["cached"] is False, first
    asked = len(tts.inputs)
    assert asked >= 3
    broker.publish(q, dict(job, id="again"))
    broker.publish(q, dict(job, id="voice", voice="echo"))
    res = broker.wait_results(3)
    again = res["again"]
    assert again["status"] == "ok" and again["cached"] is True, again
    assert again["sha256"] == first["sha256"] == sha(again["path"])
    assert again["duration_ms"] == first["duration_ms"]
    assert again["loudness_lufs"] == first["loudness_lufs"]
    assert open(again["captions"]["vtt"]).read() == open(first["captions"]["vtt"]).read()
    assert again["elapsed_ms"] * 10 <= first["elapsed_ms"], (again, first)
    assert res["voice"]["cached"] is False
    # The hit asked nothing; the other voice asked every piece again.
    assert len(tts.inputs) == 2 * asked
    assert {doc["voice"] for doc in tts.inputs[asked:]} == {"echo"}
    assert tts.problems == []
    st = d.status()
    assert st["totals"]["cache_hits"] == 1 and st["totals"]["cache_misses"] == 2
