"""Progress of a long job: messages to reply_to while it is spoken, at most one
a second, monotonic, the last at 100%, then the result."""

import time

from conftest import SANITIZE
from test_pipeline import queue_of

# The sanitizer pass speaks a fifth as much: the same code, in CI's time.
CHARS = 10000 if SANITIZE else 50000

SENTENCE = "The keeper climbed the hundred and twelve steps and lit the lamp at dusk. "


def test_a_50000_character_job_reports_its_progress(daemon, broker):
    d = daemon(workers={"count": "1"}).start()
    text = (SENTENCE * (CHARS // len(SENTENCE) + 1))[:CHARS]
    broker.publish(broker_q := queue_of(d), {"id": "book", "text": text, "format": "wav",
                                             "sample_rate": 8000, "progress": True})
    broker.publish(broker_q, {"id": "quiet", "text": SENTENCE})  # asks for none
    deadline = time.monotonic() + 240
    arrived = []
    while time.monotonic() < deadline:
        broker.pump(0.2)
        while broker.result_list:
            cid, doc = broker.result_list.pop(0)
            arrived.append((time.monotonic(), cid, doc))
        if sum(doc["status"] != "progress" for _, _, doc in arrived) == 2:
            break
    book = [(t, doc) for t, cid, doc in arrived if cid == "book"]
    assert all(cid == "book" for _, cid, doc in arrived if doc["status"] == "progress")
    progress = [(t, doc) for t, doc in book if doc["status"] == "progress"]
    final = [doc for _, doc in book if doc["status"] != "progress"]
    assert len(final) == 1 and final[0]["status"] == "ok", final
    assert book[-1][1] is final[0]  # the result comes last
    # One a second from the first second on, and the last at 100%.
    assert len(progress) >= min(2, final[0]["elapsed_ms"] // 1000), progress
    done = [doc["done_chars"] for _, doc in progress]
    audio = [doc["audio_ms"] for _, doc in progress]
    assert done == sorted(done) and audio == sorted(audio)
    assert all(doc["total_chars"] == CHARS and doc["id"] == "book" for _, doc in progress)
    assert done[-1] == CHARS and 0 < done[0]
    assert audio[-1] == final[0]["duration_ms"]
    # At most one a second, the final one aside (some slack for delivery).
    gaps = [b[0] - a[0] for a, b in zip(progress, progress[1:-1])]
    assert all(g > 0.7 for g in gaps), gaps


def test_the_http_engine_reports_its_progress(daemon, broker, web):
    """Piece by piece as the TTS server answers (in any order), the last at 100%
    with the file's duration."""
    from test_tts_http import LONG, FakeTTS, http_engine

    FakeTTS(web, delay=0.6)
    d = daemon(speech=http_engine(web, http_max_chars="40", http_concurrency="1"),
               workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "remote", "text": LONG, "engine": "http",
                                 "format": "mp3", "progress": True})
    deadline = time.monotonic() + 120
    arrived = []
    while time.monotonic() < deadline and not any(
            doc["status"] != "progress" for _, doc in arrived):
        broker.pump(0.2)
        while broker.result_list:
            cid, doc = broker.result_list.pop(0)
            arrived.append((time.monotonic(), doc))
    final = arrived[-1][1]
    assert final["status"] == "ok", final
    progress = [doc for _, doc in arrived if doc["status"] == "progress"]
    # Six pieces of about 1.2 s each: several messages, at most one a second.
    assert len(progress) >= 3, progress
    total = len(LONG.replace("  ", " "))
    assert all(doc["total_chars"] == progress[-1]["total_chars"] for doc in progress)
    assert abs(progress[-1]["total_chars"] - total) <= 6
    done = [doc["done_chars"] for doc in progress]
    audio = [doc["audio_ms"] for doc in progress]
    assert done == sorted(done) and audio == sorted(audio) and 0 < done[0] < done[-1]
    assert done[-1] == progress[-1]["total_chars"]
    assert audio[-1] == final["duration_ms"]
    # The server's 10 ms a character, as its WAV headers tell.
    for doc in progress[:-1]:
        assert abs(doc["audio_ms"] - 10 * doc["done_chars"]) <= 40, doc
    times = [t for t, doc in arrived if doc["status"] == "progress"]
    gaps = [b - a for a, b in zip(times, times[1:-1])]
    assert all(g > 0.7 for g in gaps), gaps
