"""url jobs: content fetched over HTTP by the worker (libcurl multi on its loop),
made speakable (plain text, HTML article text, SSML), with the guard rails:
private addresses, redirects, size cap, timeouts."""

import json
import os
import signal
import socket
import threading
import time

from conftest import sfinfo, wait_for
from test_pipeline import queue_of

LOCAL = {"allow_private": "127.0.0.1/32"}  # the test servers live on loopback

ARTICLE = """<!doctype html>
<html><head><meta charset="utf-8"><title>News: the lighthouse</title>
<style>body { font-family: serif }</style>
<script>document.write("Subscribe now!")</script></head>
<body>
<header><nav><a href="/">Home</a> | <a href="/world">World</a> | <a href="/login">Log in</a></nav></header>
<main><article>
  <h1>The Last Lighthouse Keeper</h1>
  <p>For forty years, Ada climbed the
     hundred and twelve steps every evening.</p>
  <p>She lit the lamp at dusk&nbsp;&amp; watched the ships pass.</p>
  <aside class="related">Read also: ten facts about lighthouses</aside>
  <p>Now the light runs itself.</p>
</article></main>
<footer>&copy; 2026 The Coastal Times. All rights reserved.</footer>
<script>trackVisit()</script>
</body></html>"""

ARTICLE_TEXT = ("The Last Lighthouse Keeper\n\n"
                "For forty years, Ada climbed the hundred and twelve steps every evening.\n\n"
                "She lit the lamp at dusk & watched the ships pass.\n\n"
                "Now the light runs itself.")


def dead_letters(broker, q, n):
    return wait_for(lambda: (lambda m: len(m) >= n and m)(broker.get_all(q + ".dead")),
                    timeout=30, what="dead letters")


def test_plain_html_and_ssml(daemon, broker, web):
    web.static("/note.txt", "text/plain; charset=utf-8", "Hello from the web. Caf\u00e9 au lait.")
    web.static("/latin1.txt", "text/plain; charset=ISO-8859-1", "Caf\u00e9 cr\u00e8me.".encode("latin-1"))
    web.static("/story.html", "text/html; charset=utf-8", ARTICLE)
    web.static("/hello.ssml", "application/ssml+xml",
               '<?xml version="1.0"?><speak version="1.0" xml:lang="en-US">Hello '
               '<break time="1500ms"/> world.</speak>')
    # A proxy in the daemon's environment is ignored (this one would refuse all).
    proxy = {v: "http://127.0.0.1:9" for v in ("http_proxy", "HTTP_PROXY", "ALL_PROXY")}
    d = daemon(fetch=LOCAL, workers={"count": "1"}).start(env=proxy)
    q = queue_of(d)
    for name, path, fmt in [("plain", "/note.txt", "ogg"), ("latin1", "/latin1.txt", "wav"),
                            ("html", "/story.html", "mp3"), ("ssml", "/hello.ssml", "wav")]:
        broker.publish(q, {"id": name, "url": web.url(path), "format": fmt,
                           "include_text": True})
    res = broker.wait_results(4)
    for name in ("plain", "latin1", "html", "ssml"):
        r = res[name]
        assert r["status"] == "ok", r
        assert r["source_url"].startswith("http://127.0.0.1:")
        rate, frames, _, _ = sfinfo(r["path"])
        assert frames > 0 and abs(frames * 1000 / rate - r["duration_ms"]) < 80
    assert res["plain"]["text"] == "Hello from the web. Caf\u00e9 au lait."
    assert res["latin1"]["text"] == "Caf\u00e9 cr\u00e8me."
    # What a person reads: no menu, scripts, styles, asides or footer.
    assert res["html"]["text"] == ARTICLE_TEXT
    assert res["ssml"]["text"].startswith("<speak")
    # The SSML went through the SSML path: its 1.5 s break is in the audio.
    broker.publish(q, {"id": "nobreak", "text": "Hello world.", "format": "wav"})
    plain = broker.wait_results(5)["nobreak"]
    assert res["ssml"]["duration_ms"] > plain["duration_ms"] + 1000
    assert [r.headers.get("User-Agent") for r in web.got("/note.txt")] == ["c2a-worker/0.1.0"]


def test_bad_content_is_dead_lettered(daemon, broker, web):
    web.static("/doc.pdf", "application/pdf", b"%PDF-1.4 ...")
    web.static("/gone", "text/plain", "gone", status=404)
    web.static("/bad.ssml", "application/ssml+xml", "<speak>never closed")
    d = daemon(fetch=LOCAL, workers={"count": "1"}).start()
    q = queue_of(d)
    for name in ("doc.pdf", "gone", "bad.ssml"):
        broker.publish(q, {"id": name.replace(".", "-"), "url": web.url("/" + name)})
    res = broker.wait_results(3)
    assert res["doc-pdf"]["error"]["code"] == "bad_field"
    assert "application/pdf" in res["doc-pdf"]["error"]["message"]
    assert res["gone"]["error"]["code"] == "fetch_failed"  # a 404 is permanent
    assert "HTTP 404" in res["gone"]["error"]["message"]
    assert res["bad-ssml"]["error"]["code"] == "bad_field"
    assert all(r["attempts"] == 1 for r in res.values())
    dead = dead_letters(broker, q, 3)
    assert sorted(p.headers["x-c2a-error-code"] for p, _ in dead) == [
        "bad_field", "bad_field", "fetch_failed"]


def test_private_addresses_refused(daemon, broker, web):
    """Default policy: loopback refused outright. With 127.0.0.1/32 allowed, a
    redirect to 127.0.0.2 (another loopback address) is refused on the address
    actually connected to, and never reaches a server."""
    web.static("/a.txt", "text/plain", "secret")
    web.route("/redir", lambda h, req: h.reply(
        302, "text/plain", b"moved", [("Location", web.url("/a.txt", host="127.0.0.2"))]))
    d = daemon(name="strict", workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "direct", "url": web.url("/a.txt")})
    r = broker.wait_results(1)["direct"]
    assert r["error"]["code"] == "fetch_failed"
    assert "refused to connect to 127.0.0.1" in r["error"]["message"]
    assert web.got("/a.txt") == []
    d.stop()

    d = daemon(name="loose", fetch=LOCAL, workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "redirected", "url": web.url("/redir")})
    r = broker.wait_results(2)["redirected"]
    assert r["error"]["code"] == "fetch_failed" and r["attempts"] == 1
    assert "refused to connect to 127.0.0.2" in r["error"]["message"]
    assert len(web.got("/redir")) == 1 and web.got("/a.txt") == []


def test_redirects_limited_and_followed(daemon, broker, web):
    web.static("/end.txt", "text/plain", "Arrived.")
    for i in range(7):
        target = "/end.txt" if i == 0 else f"/hop{i - 1}"
        web.route(f"/hop{i}", lambda h, req, t=target: h.reply(
            301, "text/plain", b"", [("Location", web.url(t))]))
    web.route("/to-file", lambda h, req: h.reply(
        302, "text/plain", b"", [("Location", "file:///etc/passwd")]))
    d = daemon(fetch=LOCAL, workers={"count": "1"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "five", "url": web.url("/hop4"), "include_text": True})
    broker.publish(q, {"id": "seven", "url": web.url("/hop6")})
    broker.publish(q, {"id": "file", "url": web.url("/to-file")})
    res = broker.wait_results(3)
    assert res["five"]["status"] == "ok" and res["five"]["text"] == "Arrived."
    assert res["seven"]["error"]["code"] == "fetch_failed"
    assert "redirect" in res["seven"]["error"]["message"].lower()
    assert res["file"]["error"]["code"] == "fetch_failed"


def test_endless_body_stopped_at_the_cap(daemon, broker, web):
    sent = []

    def endless(h, req):
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.end_headers()  # no length: the body ends when the server closes
        chunk = b"words without end " * 4000
        while True:
            h.wfile.write(chunk)
            sent.append(len(chunk))
            if sum(sent) > 200_000_000:
                return

    web.route("/endless", endless)
    web.static("/big.txt", "text/plain", "word " * 50_000)  # announced: 250000 bytes
    d = daemon(fetch={**LOCAL, "max_bytes": "200000"}, workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "endless", "url": web.url("/endless")})
    broker.publish(queue_of(d), {"id": "big", "url": web.url("/big.txt")})
    res = broker.wait_results(2)
    for r in res.values():
        assert r["error"]["code"] == "too_large" and r["attempts"] == 1, r
        assert "200000 bytes" in r["error"]["message"]
    assert sum(sent) < 50_000_000  # the worker hung up; the server did not run dry


def test_silent_server_times_out_and_is_retried(daemon, broker):
    """A server that accepts and never answers: a transient fetch_failed, retried
    through the delay queue, then dead-lettered."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        d = daemon(fetch={**LOCAL, "timeout": "2"}, broker={"max_attempts": "2"},
                   workers={"count": "1"}).start()
        q = queue_of(d)
        t0 = time.monotonic()
        broker.publish(q, {"id": "silent", "url": f"http://127.0.0.1:{srv.getsockname()[1]}/x"})
        r = broker.wait_results(1, timeout=30)["silent"]
        assert r["error"]["code"] == "fetch_failed" and r["attempts"] == 2
        assert "timed out" in r["error"]["message"].lower()
        assert time.monotonic() - t0 >= 4  # two 2 s timeouts
        assert len(held) == 2
        # The worker kept answering its master all along.
        assert d.status()["workers"][0]["state"] == "idle"
    finally:
        stop.set()
        for c in held:
            c.close()
        srv.close()


def test_graceful_stop_hands_back_a_job_still_fetching(daemon, broker, web):
    """Nothing lost: TERM while a url job's content is still coming; the worker
    stops at once and the job is back in its queue, untouched."""
    release = threading.Event()

    def hang(h, req):
        release.wait(30)
        h.reply(200, "text/plain", b"too late")

    web.route("/hang", hang)
    try:
        d = daemon(fetch=LOCAL, workers={"count": "1", "graceful_timeout": "30"}).start()
        q = queue_of(d)
        broker.publish(q, {"id": "held", "url": web.url("/hang")})
        wait_for(lambda: web.got("/hang"), what="the fetch started")
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        d.wait_exit(timeout=25)
        # Well before graceful_timeout: a job not started is handed back, not awaited.
        assert time.monotonic() - t0 < 15
        back = broker.get_all(q)
        assert len(back) == 1
        assert json.loads(back[0][1])["id"] == "held"
        assert back[0][0].headers is None or back[0][0].headers.get("x-c2a-attempts", 0) == 0
    finally:
        release.set()


def test_empty_content_is_bad_field(daemon, broker, web):
    """A 204, a 200 with no body and a page with no text are `bad_field`: the url
    itself must never be spoken in place of the content (it was, with an ok)."""
    web.static("/nothing", "text/plain", b"", status=204)
    web.static("/empty.txt", "text/plain", b"")
    web.static("/blank.html", "text/html", "<html><body>  <script>x()</script> </body></html>")
    d = daemon(fetch=LOCAL, workers={"count": "1"}).start()
    q = queue_of(d)
    for name in ("nothing", "empty.txt", "blank.html"):
        broker.publish(q, {"id": name.replace(".", "-"), "url": web.url("/" + name)})
    res = broker.wait_results(3)
    for name in ("nothing", "empty-txt", "blank-html"):
        r = res[name]
        assert r["status"] == "error" and r["error"]["code"] == "bad_field", r
        assert r["attempts"] == 1
    assert "empty" in res["empty-txt"]["error"]["message"]
