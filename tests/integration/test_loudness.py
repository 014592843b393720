"""Loudness normalisation: every format at two sample rates, measured by
ffmpeg's ebur128 filter (Debian's ffmpeg) within 1 LU of the target and below
the true-peak ceiling; the result reports what was measured after levelling."""

import re
import shutil
import subprocess

import pytest

from test_pipeline import TEXT, queue_of

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(not FFMPEG, reason="ffmpeg (Debian: ffmpeg)")


def measure(path):
    r = subprocess.run([FFMPEG, "-hide_banner", "-nostats", "-i", path, "-af",
                        "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = r.stderr[r.stderr.rindex("Summary:"):]
    lufs = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return lufs, peak


def test_every_format_at_two_rates(daemon, broker):
    d = daemon(output={"loudness": "-16"}).start()
    q = queue_of(d)
    cases = [(fmt, rate) for fmt in ("wav", "flac", "ogg", "mp3") for rate in (16000, 44100)]
    cases += [("opus", 16000), ("opus", 48000)]
    text = TEXT + " " + TEXT  # long enough for a steady measure
    for fmt, rate in cases:
        broker.publish(q, {"id": f"{fmt}-{rate}", "text": text, "format": fmt,
                           "sample_rate": rate})
    # Job fields over the defaults: broadcast loudness, a lower ceiling; and a
    # loud, clipped voice at streaming loudness, which needs the limiter (on the
    # peaks between the samples, with room for the lossy codecs' ringing).
    broker.publish(q, {"id": "ebu", "text": text, "format": "flac", "loudness": -23,
                       "true_peak": -3})
    hot = ("wav", "flac", "ogg", "opus", "mp3")
    for fmt in hot:
        broker.publish(q, {"id": f"hot-{fmt}", "text": text, "format": fmt, "loudness": -14,
                           "true_peak": -1, "volume": 200})
    broker.publish(q, {"id": "off", "text": text, "loudness": "off"})
    broker.publish(q, {"id": "bad", "text": text, "loudness": 3})
    res = broker.wait_results(len(cases) + len(hot) + 3)
    targets = {f"{f}-{r}": (-16, -1) for f, r in cases}
    targets.update({f"hot-{f}": (-14, -1) for f in hot})
    targets["ebu"] = (-23, -3)
    for name, (target, ceiling) in targets.items():
        r = res[name]
        assert r["status"] == "ok", r
        lufs, peak = measure(r["path"])
        assert abs(lufs - target) <= 1.0, (name, lufs)
        assert peak <= ceiling, (name, peak)
        assert abs(r["loudness_lufs"] - target) <= 1.0, (name, r["loudness_lufs"])
        assert r["true_peak_dbtp"] <= ceiling, (name, r["true_peak_dbtp"])
    assert "loudness_lufs" not in res["off"]
    assert res["bad"]["status"] == "error" and "loudness" in res["bad"]["error"]["message"]


def test_the_http_engine_is_levelled_too(daemon, broker, web):
    from test_tts_http import FakeTTS, http_engine
    FakeTTS(web)
    d = daemon(speech=http_engine(web), workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "h", "text": "Hello from a remote voice. " * 8,
                                 "format": "ogg", "loudness": -20, "true_peak": -2})
    r = broker.wait_results(1)["h"]
    assert r["status"] == "ok" and r["engine"] == "http", r
    lufs, peak = measure(r["path"])
    assert abs(lufs + 20) <= 1.0 and peak <= -2, (lufs, peak)
    assert abs(r["loudness_lufs"] + 20) <= 0.5


def test_a_target_out_of_reach_keeps_the_ceiling(daemon, broker):
    """-5 LUFS under -9 dBTP cannot be had from speech: the limiter takes off
    what it may (at most 30 dB a peak), the ceiling holds, and the result says
    how loud the file came out."""
    d = daemon(workers={"count": "1"}).start()
    q = queue_of(d)
    for fmt in ("wav", "mp3"):
        broker.publish(q, {"id": fmt, "text": TEXT + " " + TEXT, "format": fmt,
                           "loudness": -5, "true_peak": -9, "volume": 200})
    res = broker.wait_results(2)
    for fmt, r in res.items():
        assert r["status"] == "ok", r
        lufs, peak = measure(r["path"])
        assert peak <= -9, (fmt, peak)
        assert r["true_peak_dbtp"] <= -9, r
        assert -25 < r["loudness_lufs"] < -5 and abs(lufs - r["loudness_lufs"]) <= 1.0, (fmt, lufs, r)
