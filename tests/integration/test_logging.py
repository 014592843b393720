"""Logging: ISO 8601 timestamps with the offset, JSON lines, one access line
per finished job, nothing raw from libraries, and start-up failures said on
the terminal whatever log_file is."""

import json
import re
import socket
import subprocess

from conftest import BIN, queue_name, run, wait_for

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d \[\d+\] "
                       r"(master|worker|engine) (debug|info|warn|error): ")


def job_lines(log):
    return [line for line in log.splitlines() if " worker info: job " in line]


def test_text_lines_and_the_job_access_line(daemon, broker):
    d = daemon(master={"log_level": "info"}).start()
    q = queue_name(d.tmp, d.name)
    broker.publish(q, {"id": "ok-1", "text": "Four words are spoken."})
    broker.publish(q, {"id": "bad-1", "text": "x", "voice": "xx-nowhere"})
    broker.wait_results(2)
    wait_for(lambda: len(job_lines(d.log())) == 2, what="two job lines")
    for line in d.log().splitlines():
        assert TEXT_LINE.match(line), line
    ok, bad = sorted(job_lines(d.log()), key=lambda s: "bad-1" in s)
    assert re.search(r"job ok id=ok-1 queue=\S+ status=ok chars=22 audio_ms=[1-9]\d* "
                     r"elapsed_ms=\d+ attempt=1$", ok), ok
    assert re.search(r"job failed id=bad-1 queue=\S+ status=failed code=unknown_voice chars=1 "
                     r"audio_ms=0 elapsed_ms=\d+ attempt=1$", bad), bad


def test_json_lines(daemon, broker):
    d = daemon(master={"log_format": "json", "log_level": "info"}).start()
    q = queue_name(d.tmp, d.name)
    broker.publish(q, {"id": "j-1", "text": 'Quotes " and \\ backslashes.'})
    broker.wait_results(1)
    wait_for(lambda: '"status":"ok"' in d.log(), what="the job line")
    docs = [json.loads(line) for line in d.log().splitlines()]
    for doc in docs:
        assert set(doc) >= {"time", "level", "pid", "role", "message"}, doc
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$", doc["time"])
    job = next(doc for doc in docs if doc.get("id") == "j-1")
    assert job["role"] == "worker" and job["level"] == "info" and job["status"] == "ok"
    assert job["queue"] == q and job["attempt"] == 1 and job["chars"] == 27
    assert job["audio_ms"] > 0 and job["elapsed_ms"] >= 0 and "code" not in job


def test_job_log_off(daemon, broker):
    d = daemon(master={"job_log": "no", "log_level": "info"}).start()
    broker.publish(queue_name(d.tmp, d.name), {"id": "quiet", "text": "Quiet."})
    broker.wait_results(1)
    assert job_lines(d.log()) == []


def test_no_raw_library_output_on_stderr(daemon, tmp_path):
    """Every worker spawn printed libevent's '[warn] Added a signal to event
    base ...' on stderr; nothing may come out there but our own lines."""
    d = daemon(master={"log_file": "-", "log_level": "debug"}, workers={"count": "2"})
    err = tmp_path / "stderr"
    with open(err, "wb") as f:
        d.proc = subprocess.Popen([BIN, "-c", str(d.conf)], stdout=f, stderr=f,
                                  start_new_session=True)
    d.master_pid = d.proc.pid
    wait_for(lambda: d.status(), what="control socket")
    d.wait_workers()
    d.signal(__import__("signal").SIGHUP)  # two more spawns
    wait_for(lambda: d.status()["generation"] == 2, what="reload")
    d.wait_workers()
    lines = err.read_text().splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), \
        [line for line in lines if not TEXT_LINE.match(line)]
    assert not any("[warn]" in line or "event_base" in line for line in lines)


def test_start_errors_are_said_on_stderr_with_a_log_file(daemon, tmp_path):
    """With log_file set, a second start exited 2 and printed nothing."""
    d = daemon().start()
    other = tmp_path / "second.conf"
    other.write_text(d.conf.read_text().replace(str(d.pidfile), str(tmp_path / "second.pid")))
    for args in ([], ["-D"]):
        r = run([BIN, *args, "-c", str(other)], timeout=30)
        assert r.returncode == 2, (args, r.stderr)
        assert "c2a-worker: control socket" in r.stderr and "in use" in r.stderr, r.stderr
    # The pid file held by the running master, on a free control address.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    other.write_text(d.conf.read_text().replace(f"127.0.0.1:{d.port}", f"127.0.0.1:{port}"))
    for args in ([], ["-D"]):
        r = run([BIN, *args, "-c", str(other)], timeout=30)
        assert r.returncode == 2, (args, r.stderr)
        assert f"c2a-worker: pidfile {d.pidfile}" in r.stderr, r.stderr
    assert "control socket" in d.log() or "pidfile" in (tmp_path / f"{d.name}.log").read_text()
    # A configuration error is status 1, said on stderr too.
    other.write_text("[workers]\ncount = many\n")
    r = run([BIN, "-D", "-c", str(other)], timeout=30)
    assert r.returncode == 1 and "count: not an integer" in r.stderr
