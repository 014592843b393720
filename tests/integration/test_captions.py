"""Captions beside the audio: WebVTT (with word timings) and SRT, read by ffmpeg
(Debian's), cues in order inside the audio, their text the spoken text."""

import html
import os
import re
import shutil
import subprocess

import pytest

from test_pipeline import queue_of

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(not FFMPEG, reason="ffmpeg (Debian: ffmpeg)")

TEXT = ("The lighthouse stood on the rock for a hundred years. Ada climbed its steps "
        "every evening! Did the ships see her lamp? They did, and they came home safe.")
TIME = r"(\d\d):(\d\d):(\d\d)[.,](\d\d\d)"


def ms(h, m, s, f):
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(f)


def cues(path):
    body = open(path, encoding="utf-8").read()
    out = []
    for block in re.split(r"\n\n+", body.strip()):
        lines = block.split("\n")
        for i, line in enumerate(lines):
            m = re.fullmatch(TIME + " --> " + TIME, line)
            if m:
                g = m.groups()
                out.append((ms(*g[:4]), ms(*g[4:]), "\n".join(lines[i + 1:])))
    return body, out


def check(path, other, duration_ms, spoken):
    r = subprocess.run([FFMPEG, "-v", "error", "-i", path, "-f", other, "-"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "-->" in r.stdout, r.stderr
    body, cs = cues(path)
    assert len(cs) >= 4, body  # a cue per sentence
    last_end = 0
    for start, end, _ in cs:
        assert last_end <= start < end <= duration_ms, (start, end, duration_ms)
        last_end = end
    words = " ".join(html.unescape(re.sub(r"<[^>]*>", "", t)) for _, _, t in cs)
    assert "".join(words.split()) == "".join(spoken.split())
    return body, cs


def test_vtt_and_srt_beside_the_audio(daemon, broker):
    d = daemon().start()
    q = queue_of(d)
    broker.publish(q, {"id": "cap", "text": TEXT, "format": "ogg", "sample_rate": 16000,
                       "captions": "both", "include_text": True})
    broker.publish(q, {"id": "srt-only", "text": TEXT, "captions": ["srt"],
                       "output": "named.mp3", "format": "mp3"})
    broker.publish(q, {"id": "none", "text": TEXT})
    broker.publish(q, {"id": "bad", "text": TEXT, "captions": "ttml"})
    broker.publish(q, {"id": "ssml", "ssml": "<speak>Hi</speak>", "captions": "vtt"})
    res = broker.wait_results(5)
    r = res["cap"]
    assert r["status"] == "ok", r
    audio = r["path"]
    base = audio[:-len(".ogg")]
    assert r["captions"] == {"vtt": base + ".vtt", "srt": base + ".srt"}
    spoken = r.get("text", TEXT)
    body, cs = check(base + ".vtt", "srt", r["duration_ms"], spoken)
    assert body.startswith("WEBVTT\n")
    stamps = [ms(*g) for g in re.findall("<" + TIME + ">", body)]
    assert len(stamps) > 10  # word timings inside the cues
    for start, end, text in cs:
        inside = [ms(*g) for g in re.findall("<" + TIME + ">", text)]
        assert inside == sorted(inside) and all(start < t < end for t in inside), text
    check(base + ".srt", "webvtt", r["duration_ms"], spoken)
    assert not os.path.exists(os.path.dirname(audio) + "/.c2a-tmp") or \
        os.listdir(os.path.dirname(audio) + "/.c2a-tmp") == []

    r = res["srt-only"]
    assert r["status"] == "ok" and r["path"].endswith("/named.mp3"), r
    assert r["captions"] == {"srt": r["path"][:-4] + ".srt"}
    assert not os.path.exists(r["path"][:-4] + ".vtt")
    check(r["captions"]["srt"], "webvtt", r["duration_ms"], TEXT)
    assert "captions" not in res["none"]
    for bad, why in (("bad", "captions: expected"), ("ssml", "not for ssml")):
        assert res[bad]["status"] == "error" and why in res[bad]["error"]["message"]


def test_a_cue_per_piece_from_the_http_engine(daemon, broker, web):
    from test_tts_http import FakeTTS, http_engine
    FakeTTS(web, max_input=90)
    d = daemon(speech=http_engine(web, http_max_chars="90"), workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "h", "text": TEXT, "format": "wav",
                                 "captions": "both"})
    r = broker.wait_results(1)["h"]
    assert r["status"] == "ok" and r["engine"] == "http", r
    base = r["path"][:-len(".wav")]
    assert r["captions"] == {"vtt": base + ".vtt", "srt": base + ".srt"}
    for path, other in ((base + ".vtt", "srt"), (base + ".srt", "webvtt")):
        r2 = subprocess.run([FFMPEG, "-v", "error", "-i", path, "-f", other, "-"],
                            capture_output=True, text=True)
        assert r2.returncode == 0, r2.stderr
        _, cs = cues(path)
        assert len(cs) >= 2  # TEXT is cut into pieces of at most 90 characters
        last_end = 0
        for start, end, _ in cs:
            assert last_end <= start < end <= r["duration_ms"], cs
            last_end = end
        words = " ".join(html.unescape(t) for _, _, t in cs)
        assert "".join(words.split()) == "".join(TEXT.split())


def test_captions_uploaded_like_the_audio(daemon, broker, web):
    from test_fetch import LOCAL
    for path in ("/up/a.mp3", "/up/a.vtt", "/up/a.srt", "/up/b.vtt"):
        web.static(path, None, b"", status=201)
    d = daemon(fetch=LOCAL, workers={"count": "1"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "a", "text": TEXT, "format": "mp3", "captions": "both",
                       "upload_url": web.url("/up/a.mp3"), "keep_file": False,
                       "captions_upload_url": {"vtt": web.url("/up/a.vtt"),
                                               "srt": web.url("/up/a.srt")}})
    broker.publish(q, {"id": "b", "text": TEXT, "captions": "vtt",
                       "captions_upload_url": {"vtt": web.url("/up/b.vtt")}})
    broker.publish(q, {"id": "c", "text": TEXT, "captions": "vtt",
                       "captions_upload_url": {"srt": web.url("/up/c.srt")}})
    res = broker.wait_results(3)
    a = res["a"]
    assert a["status"] == "ok", a
    assert a["captions_urls"] == {"vtt": web.url("/up/a.vtt"), "srt": web.url("/up/a.srt")}
    assert a["captions"] == {"vtt": None, "srt": None} and a["path"] is None
    (vtt,) = web.got("/up/a.vtt", "PUT")
    (srt,) = web.got("/up/a.srt", "PUT")
    assert vtt.headers["Content-Type"].startswith("text/vtt") and vtt.body.startswith(b"WEBVTT")
    assert srt.headers["Content-Type"].startswith("application/x-subrip")
    assert srt.body.startswith(b"1\n00:00:00,000 --> ")
    b = res["b"]
    (bput,) = web.got("/up/b.vtt", "PUT")
    assert b["status"] == "ok" and b["captions_urls"] == {"vtt": web.url("/up/b.vtt")}
    assert open(b["captions"]["vtt"], "rb").read() == bput.body  # kept: keep_file's default
    assert res["c"]["status"] == "error" and "not among the captions" in \
        res["c"]["error"]["message"]
