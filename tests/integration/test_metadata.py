"""Tags in the files: a job's "metadata" and [output] metadata_* defaults, as
each format's own tags, read back with ffprobe (Debian's ffmpeg)."""

import json
import shutil
import subprocess

import pytest

from test_pipeline import TEXT, queue_of

FFPROBE = shutil.which("ffprobe")
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
    d = daemon(output={"metadata_artist": "House Voice", "metadata_comment": "default"}).start()
    q = queue_of(d)
    md = {"title": "Ünïcode — the title", "album": "Morning edition", "date": "2026-12-07"}
    formats = ("wav", "flac", "ogg", "opus", "mp3")
    for fmt in formats:
        broker.publish(q, {"id": f"t-{fmt}", "text": TEXT, "format": fmt, "metadata": md})
    # The job's own comment wins; "" leaves the default artist out.
    broker.publish(q, {"id": "own", "text": TEXT, "format": "ogg",
                       "metadata": {"comment": "mine", "artist": ""}})
    broker.publish(q, {"id": "lang", "text": TEXT, "metadata": {"language": "en"}})
    res = broker.wait_results(len(formats) + 2)
    for fmt in formats:
        r = res[f"t-{fmt}"]
        assert r["status"] == "ok", r
        t = tags(r["path"])
        assert t["title"] == md["title"] and t["album"] == md["album"], (fmt, t)
        assert t["artist"] == "House Voice" and t["comment"] == "default", (fmt, t)
        assert t["date"] == ("2026" if fmt == "mp3" else "2026-12-07"), (fmt, t)
    t = tags(res["own"]["path"])
    assert t["comment"] == "mine" and "artist" not in t and "title" not in t, t
    r = res["lang"]
    assert r["status"] == "error" and r["error"]["code"] == "bad_field"
    assert "language is not written" in r["error"]["message"]


def test_tags_from_the_http_engine(daemon, broker, web):
    """The remote engine's audio is re-encoded here: it gets the tags too."""
    from test_tts_http import FakeTTS, http_engine
    FakeTTS(web)
    d = daemon(speech=http_engine(web), workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "h", "text": "Hello from a remote voice.",
                                 "format": "flac", "metadata": {"title": "Remote"}})
    r = broker.wait_results(1)["h"]
    assert r["status"] == "ok" and r["engine"] == "http", r
    assert tags(r["path"])["title"] == "Remote"
