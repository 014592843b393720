"""Durability of the audio: with [output] fsync = yes (the default) a job's result
is published, and the job acked, only after its file was flushed, renamed into
place and the directory entry flushed too; with fsync = no nothing is flushed
but the rename stays atomic.

fsynctrace.so (tests/tools/fsynctrace.c), preloaded into every process of the
daemon, records each fsync (with the path of its descriptor) and each rename,
and makes every directory fsync sleep first: a result published before the
flush of its directory returned would reach us before that flush ended."""

import os
from pathlib import Path

from conftest import TEST_APPS, queue_name

TRACE_SO = Path(TEST_APPS) / "fsynctrace.so"
DIR_DELAY_MS = 250
TEXT = "Durable audio: the file and its name are on disk before anyone hears of it."


def run_traced(daemon, broker, tmp_path, fsync, n):
    assert TRACE_SO.exists(), f"{TRACE_SO} is built by 'make integration'"
    trace = tmp_path / "fsync.trace"
    d = daemon(workers={"count": "2"}, broker={"prefetch": "8"}, output={"fsync": fsync})
    d.start(env={"LD_PRELOAD": str(TRACE_SO), "C2A_FSYNC_TRACE": str(trace),
                 "C2A_FSYNC_DIR_DELAY_MS": str(DIR_DELAY_MS)})
    q = queue_name(d.tmp, d.name)
    for i in range(n):
        broker.publish(q, {"id": f"dur-{i}", "text": f"{TEXT} {i}."})
    results = broker.wait_results(n, timeout=60)
    assert len(results) == n
    for r in results.values():
        assert r["status"] == "ok", r
    syncs, renames = [], []
    for line in trace.read_text().splitlines():
        kind, rest = line.split(" ", 1)
        if kind == "fsync":
            start, end, path = rest.split(" ", 2)
            syncs.append((float(start), float(end), path))
        else:
            t, old, new = rest.split(" ", 2)
            renames.append((float(t), old, new))
    return d, results, syncs, renames


def test_result_published_after_file_and_directory_are_flushed(daemon, broker, tmp_path):
    n = 16
    d, results, syncs, renames = run_traced(daemon, broker, tmp_path, "yes", n)
    audio = str(d.tmp / "audio")
    for i in range(n):
        r = results[f"dur-{i}"]
        path = r["path"]
        assert os.path.getsize(path) == r["bytes"]
        (t_rename, tmp, _), = [x for x in renames if x[2] == path]
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
    d, results, syncs, renames = run_traced(daemon, broker, tmp_path, "no", n)
    audio = str(d.tmp / "audio")
    assert not [s for s in syncs if s[2].startswith(audio)], syncs
    for r in results.values():
        # Still complete under their names: written aside, then renamed.
        assert [x for x in renames if x[2] == r["path"]]
        assert os.path.getsize(r["path"]) == r["bytes"]
