"""Durability of the audio: with [output] fsync = yes (the default) a job's result
is published, and the job acked, only after its file was flushed, renamed into
place and the directory entry flushed too; with fsync = no nothing is flushed
but the rename stays atomic. With [output] page_cache = drop (the default) a
flushed file leaves the page cache, unless it is read again (an upload of it,
the output cache); with keep it stays.

fsynctrace.so (tests/tools/fsynctrace.c), preloaded into every process of the
daemon, records each fsync (with the path of its descriptor), each rename and
each posix_fadvise, and makes every directory fsync sleep first: a result
published before the flush of its directory returned would reach us before that
flush ended."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import TEST_APPS, queue_name
from test_fetch import LOCAL

TRACE_SO = Path(TEST_APPS) / "fsynctrace.so"
DIR_DELAY_MS = 250
TEXT = "Durable audio: the file and its name are on disk before anyone hears of it."


def run_traced(daemon, broker, tmp_path, fsync, n, extra=None, **sections):
    """n jobs (each with the fields of extra) through a daemon with the tracer
    preloaded: the daemon, the results, and the trace's fsyncs (start, end,
    path), renames (time, old, new) and fadvises (time, advice, path)."""
    assert TRACE_SO.exists(), f"{TRACE_SO} is built by 'make integration'"
    trace = tmp_path / "fsync.trace"
    output = {"fsync": fsync, **sections.pop("output", {})}
    workers = sections.pop("workers", {"count": "2"})
    d = daemon(workers=workers, broker={"prefetch": "8"}, output=output, **sections)
    d.start(env={"LD_PRELOAD": str(TRACE_SO), "C2A_FSYNC_TRACE": str(trace),
                 "C2A_FSYNC_DIR_DELAY_MS": str(DIR_DELAY_MS)})
    q = queue_name(d.tmp, d.name)
    for i in range(n):
        broker.publish(q, {"id": f"dur-{i}", "text": f"{TEXT} {i}.", **(extra or {})})
    results = broker.wait_results(n, timeout=60)
    assert len(results) == n
    for r in results.values():
        assert r["status"] == "ok", r
    syncs, renames, advice = [], [], []
    for line in trace.read_text().splitlines():
        kind, rest = line.split(" ", 1)
        if kind == "fsync":
            start, end, path = rest.split(" ", 2)
            syncs.append((float(start), float(end), path))
        elif kind == "rename":
            t, old, new = rest.split(" ", 2)
            renames.append((float(t), old, new))
        else:
            assert kind == "fadvise", line
            t, adv, path = rest.split(" ", 2)
            if path.startswith(str(d.tmp / "audio") + "/"):  # not a library's own
                advice.append((float(t), int(adv), path))
    return d, results, syncs, renames, advice


def renamed(renames, path):
    """The time and the temporary name of the rename that made path."""
    (t, tmp, _), = [x for x in renames if x[2] == path]
    return t, tmp


@pytest.fixture
def page_cache(tmp_path):
    """For the tests of [output] page_cache: fincore, and a file system whose
    pages can be dropped (tmpfs keeps its files in them)."""
    if not shutil.which("fincore"):
        pytest.skip("needs fincore (util-linux)")
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(tmp_path)],
                        capture_output=True, text=True).stdout.strip()
    if fs == "tmpfs":
        pytest.skip(f"{tmp_path} is on tmpfs, whose files live in the page cache")


def resident(path):
    """Bytes of the file in the page cache (fincore, from util-linux)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_result_published_after_file_and_directory_are_flushed(daemon, broker, tmp_path):
    n = 16
    d, results, syncs, renames, _ = run_traced(daemon, broker, tmp_path, "yes", n)
    audio = str(d.tmp / "audio")
    for i in range(n):
        r = results[f"dur-{i}"]
        path = r["path"]
        assert os.path.getsize(path) == r["bytes"]
        t_rename, tmp = renamed(renames, path)
        assert os.path.dirname(tmp) == audio + "/.c2a-tmp"
        # The file's data was flushed under its temporary name, before the rename.
        assert any(p == tmp and end <= t_rename for _, end, p in syncs), (tmp, syncs)
        # Then a flush of the directory that began after the rename ended before
        # the result arrived.
        flushes = [end for start, end, p in syncs if p == audio and start >= t_rename]
        assert flushes, f"no fsync of {audio} after the rename of {path}"
        assert min(flushes) <= broker.received_at[f"dur-{i}"], (path, flushes)
    # Group commit: the files that finished while a directory flush was under way
    # (slowed down here) share the next one.
    assert len([s for s in syncs if s[2] == audio]) <= n // 2, syncs
    assert not os.listdir(audio + "/.c2a-tmp")


def test_fsync_no_flushes_nothing(daemon, broker, tmp_path):
    n = 6
    d, results, syncs, renames, advice = run_traced(daemon, broker, tmp_path, "no", n)
    audio = str(d.tmp / "audio")
    assert not [s for s in syncs if s[2].startswith(audio)], syncs
    # Their pages are dirty: nothing is dropped.
    assert not advice, advice
    for r in results.values():
        # Still complete under their names: written aside, then renamed.
        assert [x for x in renames if x[2] == r["path"]]
        assert os.path.getsize(r["path"]) == r["bytes"]


def test_flushed_files_leave_the_page_cache(daemon, broker, tmp_path, page_cache):
    n = 4
    d, results, syncs, renames, advice = run_traced(daemon, broker, tmp_path, "yes", n,
                                                    extra={"captions": "vtt"})
    for i in range(n):
        r = results[f"dur-{i}"]
        assert os.path.getsize(r["path"]) > 4096
        for path in (r["path"], r["captions"]["vtt"]):
            # No one has read it since: none of it is in memory.
            assert resident(path) == 0, path
            t_rename, tmp = renamed(renames, path)
            # Dropped once flushed (clean pages), under its temporary name.
            (t_drop,) = [t for t, adv, p in advice if p == tmp and adv == os.POSIX_FADV_DONTNEED]
            flushed = [end for _, end, p in syncs if p == tmp]
            assert flushed and max(flushed) <= t_drop <= t_rename, (flushed, t_drop, t_rename)


def test_page_cache_keep_leaves_the_files_in_memory(daemon, broker, tmp_path, page_cache):
    n = 4
    d, results, _, _, advice = run_traced(daemon, broker, tmp_path, "yes", n,
                                          output={"page_cache": "keep"})
    assert not advice, advice
    for r in results.values():
        # The kernel may evict a clean page at any time (it did, one of 56, in
        # a sanitizer run): most of the file, where a dropped one has none.
        assert resident(r["path"]) >= os.path.getsize(r["path"]) // 2 > 2048, r["path"]


@pytest.mark.parametrize("why", ["upload", "captions_upload", "cache"])
def test_a_file_read_again_stays_in_the_page_cache(daemon, broker, tmp_path, web, page_cache,
                                                   why):
    """An upload reads its file next (and only that file); a cache entry is the
    file itself, read back for its hash at each hit."""
    web.static("/up", None, b"", status=201)
    sections = {"fetch": LOCAL}
    if why == "upload":
        extra = {"upload_url": web.url("/up"), "keep_file": True, "captions": "vtt"}
    elif why == "captions_upload":
        extra = {"captions": "vtt", "captions_upload_url": {"vtt": web.url("/up")}}
    else:
        # One worker: the second job finds the first one's entry.
        extra = {"cache": True, "text": TEXT, "captions": "vtt"}
        sections["workers"] = {"count": "1"}
    n = 2
    d, results, _, renames, advice = run_traced(daemon, broker, tmp_path, "yes", n, extra=extra,
                                                **sections)
    if why != "cache":
        assert len(web.got("/up", "PUT")) == n
    else:
        assert [results[f"dur-{i}"]["cached"] for i in range(n)] == [False, True]
    dropped = {p for _, adv, p in advice if adv == os.POSIX_FADV_DONTNEED}
    for r in results.values():
        audio, vtt = renamed(renames, r["path"])[1], renamed(renames, r["captions"]["vtt"])[1]
        assert (audio in dropped, vtt in dropped) == {
            "upload": (False, True), "captions_upload": (True, False), "cache": (False, False)}[why]
        if why == "cache":
            assert resident(r["path"]) >= os.path.getsize(r["path"]) // 2, r["path"]
