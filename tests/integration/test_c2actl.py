"""c2actl against a running daemon and the real broker."""

import json
import os

import requests

from conftest import BIN, queue_name, run, sfinfo, wait_for

CTL = os.path.join(os.path.dirname(BIN), "c2actl")


def ctl(d, *args, timeout=90):
    r = run([CTL, "-c", str(d.conf), *args], timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def test_submit_wait_prints_the_audio_path(daemon):
    d = daemon().start()
    rc, out, err = ctl(d, "submit", "--text", "Hello from c2actl", "--format", "ogg", "--wait")
    assert rc == 0, err
    path = out.strip()
    assert path.startswith(str(d.tmp / "audio")) and path.endswith(".ogg")
    assert sfinfo(path)[0] == 22050
    rc, out, err = ctl(d, "--json", "submit", "--id", "j1", "--text", "x", "--voice", "nope",
                       "--wait")
    assert rc == 1
    res = json.loads(out)
    assert res["id"] == "j1" and res["error"]["code"] == "unknown_voice"
    text = d.tmp / "in.txt"
    text.write_text("Read from a file.")
    rc, out, err = ctl(d, "submit", "--file", str(text), "--id", "f1", "--format", "mp3",
                       "--sample-rate", "16000", "--wait")
    assert rc == 0 and out.strip().endswith("f1.mp3")
    assert sfinfo(out.strip())[0] == 16000


def test_submit_without_wait_and_errors(daemon, broker):
    d = daemon().start()
    rc, out, _ = ctl(d, "submit", "--text", "fire and forget", "--id", "ff")
    assert rc == 0 and out.strip() == "ff"
    assert ctl(d, "submit")[0] == 2
    assert ctl(d, "submit", "--text", "a", "--ssml", "b")[0] == 2
    assert ctl(d, "bogus")[0] == 2
    # Numbers are numbers (atoi took "abc" as the default); errors as JSON.
    rc, _, err = ctl(d, "submit", "--text", "a", "--sample-rate", "abc")
    assert rc == 2 and "--sample-rate: abc is not a rate" in err
    rc, out, err = ctl(d, "--json", "submit", "--text", "a", "--timeout", "10s", "--wait")
    assert rc == 2 and err == "" and json.loads(out)["error"]["code"] == "usage"
    rc, out, _ = ctl(d, "--json", "submit", "--text", "a", "--id", "j\"1")
    assert rc == 0 and json.loads(out)["id"] == 'j"1'
    rc, _, err = ctl(d, "submit", "--text", "a", "--url", "bogus")
    assert rc == 1 and "not an AMQP URL" in err
    rc, out, _ = ctl(d, "--json", "submit", "--text", "a", "--queue", "no-such-queue-c2a")
    assert rc == 1 and json.loads(out)["error"]["code"] == "unroutable"
    rc, _, err = ctl(d, "submit", "--text", "a", "--queue", "no-such-queue-c2a", "--wait")
    assert rc == 1 and "no queue named no-such-queue-c2a" in err
    idle = f"idle-{d.tmp.name}"
    broker.ch.queue_declare(idle, auto_delete=True)
    rc, _, err = ctl(d, "submit", "--text", "a", "--queue", idle, "--wait", "--timeout", "2")
    assert rc == 3 and "no result within 2 s" in err


def test_version():
    r = run([CTL, "--version"])
    assert r.returncode == 0 and r.stdout.startswith("c2actl ")


def test_status(daemon):
    d = daemon().start()
    rc, out, err = ctl(d, "status")
    assert rc == 0, err
    assert f"master {d.master_pid}  running" in out
    for pid in d.worker_pids():
        assert str(pid) in out
    q = queue_name(d.tmp, d.name)
    wait_for(lambda: f"         0          2  work        {q}\n" in ctl(d, "status")[1],
             what="the queue line")
    assert f"dead-letter {q}.dead" in ctl(d, "status")[1]
    assert "health: ok" in out
    rc, out, _ = ctl(d, "--json", "status")
    assert rc == 0 and json.loads(out)["pid"] == d.master_pid
    assert json.loads(out)["health"] == "healthy"
    # Down: exit 3 and a hint; with --json the error is JSON too.
    rc, _, err = ctl(d, "-s", "127.0.0.1:1", "status")
    assert rc == 3 and "127.0.0.1:1" in err and "is c2a-worker running?" in err
    rc, out, err = ctl(d, "--json", "-s", "127.0.0.1:1", "status")
    assert rc == 3 and err == ""
    assert json.loads(out)["error"]["code"] == "daemon_down"


def test_status_exit_says_degraded(daemon):
    """status used to exit 0 with no worker consuming: now 1, with the reason."""
    d = daemon().start()
    requests.post(d.url + "/pause", timeout=5).raise_for_status()
    rc, out, _ = ctl(d, "status")
    assert rc == 1 and "health: DEGRADED: paused" in out
    rc, out, _ = ctl(d, "--json", "status")
    assert rc == 1 and json.loads(out)["health"] == "degraded"


def test_control_verbs(daemon, monkeypatch):
    d = daemon(master={"control_token": "t0k"}).start()
    # The token comes from the configuration c2actl reads (it used to be
    # ignored: HTTP 401); a wrong one given is refused with a hint.
    rc, out, err = ctl(d, "--token", "wrong", "pause")
    assert rc == 1 and "HTTP 401" in err and "control_token" in err
    rc, out, _ = ctl(d, "--json", "--token", "wrong", "pause")
    assert rc == 1 and json.loads(out)["error"]["code"] == "unauthorized"
    rc, out, _ = ctl(d, "pause")
    assert rc == 0 and d.status()["paused"] is True
    assert ctl(d, "resume")[0] == 0
    monkeypatch.setenv("C2A_CONTROL_TOKEN", "t0k")
    rc, out, _ = ctl(d, "pause")
    assert rc == 0 and out.strip() == "paused: workers stop consuming"
    assert d.status()["paused"] is True
    assert ctl(d, "resume")[0] == 0 and d.status()["paused"] is False
    old = d.worker_pids()
    rc, out, _ = ctl(d, "--json", "reload")
    assert rc == 0 and json.loads(out)["generation"] == 2
    d.wait_workers(2, exclude=old)
    rc, out, _ = ctl(d, "scale", "3")
    assert rc == 0 and out.strip() == "scaling to 3 workers"
    d.wait_workers(3)
    assert ctl(d, "scale", "0")[0] == 2
    assert ctl(d, "scale")[0] == 2
    rc, out, _ = ctl(d, "--token", "t0k", "stop")
    assert rc == 0 and out.strip() == "stopping gracefully"
    assert d.wait_exit() == 0


def test_submit_fetch_upload_callback(daemon, web):
    web.static("/page.html", "text/html", "<body><nav>x</nav><p>Fetched by the worker.</p></body>")
    web.static("/up/c.wav", None, b"", status=201)
    web.static("/cb", "text/plain", "ok")
    d = daemon(fetch={"allow_private": "127.0.0.1/32"}, output={"keep_uploaded": "no"}).start()
    rc, out, err = ctl(d, "--json", "submit", "--fetch", web.url("/page.html"), "--id", "c",
                       "--upload-url", web.url("/up/c.wav"), "--callback-url", web.url("/cb"),
                       "--engine", "espeak", "--wait")
    assert rc == 0, err
    res = json.loads(out)
    assert res["path"] is None and res["url"] == web.url("/up/c.wav")
    assert res["source_url"] == web.url("/page.html") and res["engine"] == "espeak"
    assert len(web.got("/up/c.wav", "PUT")[0].body) == res["bytes"]
    assert json.loads(web.got("/cb", "POST")[0].body) == res
    rc, out, err = ctl(d, "submit", "--fetch", web.url("/page.html"), "--id", "c2",
                       "--upload-url", web.url("/up/c.wav"), "--wait")
    assert rc == 0 and out.strip() == web.url("/up/c.wav")
    assert ctl(d, "submit", "--fetch", "x", "--text", "y")[0] == 2
