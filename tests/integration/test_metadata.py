"""Tags in the files: a job's "metadata" and [output] metadata_* defaults, as
each format's own tags, read back with ffprobe (Debian's ffmpeg)."""

import json
import shutil
import subprocess

import pytest

from test_pipeline import TEXT, queue_of

FFPROBE = shutil.which("ffprobe")
FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(not FFPROBE, reason="ffprobe (Debian: ffmpeg)")


def tags(path):
    out = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "format_tags:stream_tags",
                          "-of", "json", path], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    found = {}
    for part in [doc.get("format", {})] + doc.get("streams", []):
        for k, v in part.get("tags", {}).items():
            found[k.lower()] = v
    return found


def test_tags_in_every_format(daemon, broker):
    d = daemon(output={"metadata_artist": "House Voice", "metadata_comment": "default",
                       "metadata_language": "en"}).start()
    q = queue_of(d)
    md = {"title": "Ünïcode — the title", "album": "Morning edition", "date": "2026-12-07",
          "language": "en-GB"}
    formats = ("wav", "flac", "ogg", "opus", "mp3")
    for fmt in formats:
        broker.publish(q, {"id": f"t-{fmt}", "text": TEXT, "format": fmt, "metadata": md})
        # The language alone (the default's), in a file with no other tag, at
        # another rate; and the language with long tags (Ogg: header pages anew).
        broker.publish(q, {"id": f"l-{fmt}", "text": TEXT, "format": fmt, "sample_rate": 48000,
                           "metadata": {"artist": "", "comment": ""}})
        broker.publish(q, {"id": f"big-{fmt}", "text": TEXT, "format": fmt,
                           "metadata": {"language": "zh-Hant-TW", "title": "T" * 1024,
                                        "comment": "C" * 1024, "album": "A" * 1024}})
    # The job's own comment wins; "" leaves the default artist and language out.
    broker.publish(q, {"id": "own", "text": TEXT, "format": "ogg",
                       "metadata": {"comment": "mine", "artist": "", "language": ""}})
    broker.publish(q, {"id": "lang", "text": TEXT, "metadata": {"lang": "en"}})
    broker.publish(q, {"id": "bad", "text": TEXT, "metadata": {"language": "en_GB"}})
    res = broker.wait_results(3 * len(formats) + 3)
    for fmt in formats:
        r = res[f"t-{fmt}"]
        assert r["status"] == "ok", r
        t = tags(r["path"])
        assert t["title"] == md["title"] and t["album"] == md["album"], (fmt, t)
        assert t["artist"] == "House Voice" and t["comment"] == "default", (fmt, t)
        assert t["date"] == ("2026" if fmt == "mp3" else "2026-12-07"), (fmt, t)
        assert t["language"] == "en-GB", (fmt, t)
        t = tags(res[f"l-{fmt}"]["path"])
        assert t.get("language") == "en" and "artist" not in t and "title" not in t, (fmt, t)
        t = tags(res[f"big-{fmt}"]["path"])
        assert t["language"] == "zh-Hant-TW" and t["comment"] == "C" * 1024, (fmt, t)
        # Every file decodes whole, as long as its job said.
        for kind in ("t", "l", "big"):
            r = res[f"{kind}-{fmt}"]
            assert r["status"] == "ok", r
            out = subprocess.run([FFMPEG, "-v", "error", "-i", r["path"], "-f", "null", "-"],
                                 capture_output=True, text=True)
            assert out.returncode == 0 and not out.stderr.strip(), (fmt, kind, out.stderr)
            dur = float(subprocess.run(
                [FFPROBE, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                 r["path"]], capture_output=True, text=True, check=True).stdout)
            assert abs(dur * 1000 - r["duration_ms"]) < 120, (fmt, kind, dur, r["duration_ms"])
    t = tags(res["own"]["path"])
    assert t["comment"] == "mine" and "artist" not in t and "title" not in t, t
    assert "language" not in t, t
    for name, why in (("lang", "lang is not a tag"), ("bad", "not a language tag")):
        r = res[name]
        assert r["status"] == "error" and r["error"]["code"] == "bad_field", r
        assert why in r["error"]["message"], r


def test_tags_from_the_http_engine(daemon, broker, web):
    """The remote engine's audio is re-encoded here: it gets the tags too."""
    from test_tts_http import FakeTTS, http_engine
    FakeTTS(web)
    d = daemon(speech=http_engine(web), workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "h", "text": "Hello from a remote voice.",
                                 "format": "flac",
                                 "metadata": {"title": "Remote", "language": "fr"}})
    r = broker.wait_results(1)["h"]
    assert r["status"] == "ok" and r["engine"] == "http", r
    t = tags(r["path"])
    assert t["title"] == "Remote" and t["language"] == "fr", t
