"""[speech] engine = http: an OpenAI-style TTS server (POST {base}/audio/speech),
faked by the test. It checks every request; its WAV answers come out in every
format, long text is split at sentences and the audio joined in order."""

import io
import json
import math
import struct
import time
import wave

from conftest import sfinfo
from test_pipeline import FORMATS, queue_of

RATE = 24000
TOKEN = "sk-test-123"
LONG = ("The first sentence is short. The second one is a little longer than that. "
        "Here comes the third! Is this the fourth? And the fifth sentence ends the text.")


def tone(seconds, hz=440.0, channels=1, amp=8000):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(RATE)
        n = int(seconds * RATE)
        frame = []
        for i in range(n):
            v = int(amp * math.sin(2 * math.pi * hz * i / RATE))
            frame.append(struct.pack("<" + "h" * channels, *([v] * channels)))
        w.writeframes(b"".join(frame))
    return buf.getvalue()


class FakeTTS:
    """Answers 10 ms of tone per character of input, so durations add up; in
    mono or stereo, some with the sizes a streaming server leaves unknown."""

    def __init__(self, web, max_input=None, status=None, delay=0):
        self.delay = delay
        self.inputs = []
        self.problems = []
        self.max_input = max_input
        self.status = status
        web.route("/v1/audio/speech", self.handle)

    def handle(self, h, req):
        if self.status:
            return h.reply(self.status, "application/json", b'{"error": {"message": "nope"}}')
        try:
            doc = json.loads(req.body)
            assert req.headers.get("Authorization") == f"Bearer {TOKEN}", "token"
            assert req.headers.get("Content-Type") == "application/json", "content type"
            assert set(doc) == {"model", "input", "voice", "response_format", "speed"}, doc
            assert doc["model"] == "tts-test" and doc["response_format"] == "wav"
            assert isinstance(doc["speed"], float) and 0.25 <= doc["speed"] <= 4.0
            assert doc["input"] and (not self.max_input or len(doc["input"]) <= self.max_input)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.problems.append(repr(e))
            return h.reply(400, "application/json", b'{"error": {"message": "bad request"}}')
        self.inputs.append(doc)
        pos = LONG.find(doc["input"])
        # The earlier a piece stands in LONG, the later its answer: the answers of
        # concurrent requests arrive in reverse order.
        time.sleep(self.delay * (2 - max(pos, 0) / len(LONG)))
        # Louder the later the piece stands in LONG: the joined audio shows its order.
        amp = 8000 if pos < 0 else 1000 + 6 * pos
        wav = tone(0.01 * len(doc["input"]), channels=2 if len(self.inputs) % 2 else 1, amp=amp)
        if len(self.inputs) % 3 == 0:
            # As a streaming server writes it: RIFF and data sizes unknown.
            wav = wav[:4] + b"\xff\xff\xff\xff" + wav[8:40] + b"\xff\xff\xff\xff" + wav[44:]
        h.reply(200, "audio/wav", wav)


def http_engine(web, **speech):
    conf = {"engine": "http", "http_url": web.url("/v1/"), "http_token": TOKEN,
            "http_model": "tts-test", "http_voice": "nova"}
    conf.update(speech)
    return conf


def test_every_format_from_the_tts_server(daemon, broker, web):
    tts = FakeTTS(web)
    d = daemon(speech=http_engine(web), workers={"count": "1"}).start()
    q = queue_of(d)
    for fmt in FORMATS:
        broker.publish(q, {"id": f"h-{fmt}", "text": "Hello from a remote voice.", "format": fmt,
                           "rate": 350})
    res = broker.wait_results(5)
    assert tts.problems == []
    assert len(tts.inputs) == 5
    for doc in tts.inputs:
        assert doc["input"] == "Hello from a remote voice."
        assert doc["voice"] == "nova" and doc["speed"] == 2.0
    expect_rate = {"wav": RATE, "flac": RATE, "ogg": RATE, "opus": RATE, "mp3": RATE}
    for fmt in FORMATS:
        r = res[f"h-{fmt}"]
        assert r["status"] == "ok", r
        assert r["engine"] == "http" and r["format"] == fmt
        rate, frames, channels, env = sfinfo(r["path"])
        assert rate == expect_rate[fmt] and channels == 1
        # 26 characters -> 260 ms of tone, whatever the format
        assert abs(frames * 1000 / rate - 260) < 80, (fmt, frames)
        assert max(env) > 0.1  # the tone, not silence


def test_long_text_split_at_sentences_and_joined(daemon, broker, web):
    tts = FakeTTS(web, max_input=60, delay=0.3)
    d = daemon(speech=http_engine(web, http_max_chars="60", http_concurrency="3"),
               workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "long", "text": LONG, "format": "wav", "voice": "echo"})
    r = broker.wait_results(1)["long"]
    assert r["status"] == "ok", r
    assert tts.problems == []
    pieces = sorted((doc["input"] for doc in tts.inputs), key=LONG.find)
    assert len(pieces) >= 4 and all(len(p) <= 60 for p in pieces)
    assert all(p.rstrip()[-1] in ".!?" for p in pieces)  # cut at sentence ends
    assert " ".join(pieces) == LONG  # nothing lost
    assert {doc["voice"] for doc in tts.inputs} == {"echo"}
    assert web.max_in_flight == 3  # http_concurrency pieces at once, never more
    rate, frames, _, env = sfinfo(r["path"])
    assert abs(frames * 1000 / rate - 10 * sum(len(p) for p in pieces)) < 20
    # Joined in the order of the text, whatever order the answers came in: the
    # middle of each piece's audio is louder than the one before.
    levels, start_ms = [], 0
    for p in pieces:
        length_ms = 10 * len(p)
        levels.append(env[(start_ms + length_ms // 2) // 50])
        start_ms += length_ms
    assert levels == sorted(levels) and len(set(levels)) == len(levels), levels


def test_per_job_engine_and_errors(daemon, broker, web):
    tts = FakeTTS(web)
    # espeak by default; the http engine configured and chosen per job
    web.static("/page.html", "text/html", "<body><nav>Menu</nav><p>From a page.</p></body>")
    d = daemon(speech={"http_url": web.url("/v1"), "http_token": TOKEN,
                       "http_model": "tts-test"},
               fetch={"allow_private": "127.0.0.1/32"}, workers={"count": "1"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "local", "text": "Spoken by espeak."})
    broker.publish(q, {"id": "remote", "text": "Spoken remotely.", "engine": "http"})
    broker.publish(q, {"id": "ssml", "ssml": "<speak>Plain <break time='1s'/> words.</speak>",
                       "engine": "http"})
    broker.publish(q, {"id": "page", "url": web.url("/page.html"), "engine": "http"})
    res = broker.wait_results(4)
    assert res["local"]["engine"] == "espeak" and res["remote"]["engine"] == "http"
    assert res["page"]["status"] == "ok", res["page"]
    assert [doc["input"] for doc in tts.inputs] == ["Spoken remotely.", "Plain words.",
                                                    "From a page."]
    assert tts.inputs[0]["voice"] == "alloy"  # http_voice's default

    tts.status = 401  # a refused token will not get better
    broker.publish(q, {"id": "refused", "text": "x", "engine": "http"})
    r = broker.wait_results(5)["refused"]
    assert r["error"]["code"] == "synth_failed" and r["attempts"] == 1
    assert "HTTP 401" in r["error"]["message"]
