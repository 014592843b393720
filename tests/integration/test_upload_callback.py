"""upload_url (PUT of the audio) and callback_url (POST of the result), received
byte for byte by local servers, retried after a 503, dead-lettered as
upload_failed when the upload never succeeds."""

import hashlib
import json
import os

from conftest import wait_for
from test_fetch import LOCAL
from test_pipeline import TEXT, queue_of


def test_upload_and_callback_byte_for_byte(daemon, broker, web):
    web.static("/up/a.ogg", None, b"", status=201)
    web.static("/up/b.mp3", None, b"", status=204)
    web.static("/cb", "application/json", b'{"thanks": true}')
    d = daemon(fetch=LOCAL, workers={"count": "1"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "a", "text": TEXT, "format": "ogg", "upload_url": web.url("/up/a.ogg"),
                       "callback_url": web.url("/cb")})
    broker.publish(q, {"id": "b", "text": TEXT, "format": "mp3", "upload_url": web.url("/up/b.mp3"),
                       "keep_file": False})
    res = broker.wait_results(2)
    a, b = res["a"], res["b"]
    assert a["status"] == "ok" and b["status"] == "ok", res
    (put_a,) = web.got("/up/a.ogg", "PUT")
    data = open(a["path"], "rb").read()
    assert put_a.body == data and hashlib.sha256(data).hexdigest() == a["sha256"]
    assert put_a.headers["Content-Type"] == "audio/ogg"
    assert a["url"] == web.url("/up/a.ogg")
    # The callback carries the same result the reply queue got.
    (cb,) = web.got("/cb", "POST")
    assert cb.headers["Content-Type"] == "application/json"
    assert json.loads(cb.body) == a
    # keep_file false: uploaded, then removed locally.
    (put_b,) = web.got("/up/b.mp3", "PUT")
    assert put_b.headers["Content-Type"] == "audio/mpeg"
    assert hashlib.sha256(put_b.body).hexdigest() == b["sha256"] and len(put_b.body) == b["bytes"]
    assert b["path"] is None and b["url"] == web.url("/up/b.mp3")
    assert not os.path.exists(d.tmp / "audio" / "b.mp3")


def flaky(web, path, failures, status=503):
    """A route that answers `status` `failures` times, then 200."""
    count = []

    def route(h, req):
        count.append(1)
        if len(count) <= failures:
            h.reply(status, "text/plain", b"busy, come back later")
        else:
            h.reply(200, "text/plain", b"ok")

    web.route(path, route)


def test_retried_after_503(daemon, broker, web):
    flaky(web, "/up/r.wav", 1)
    flaky(web, "/cb", 1)
    d = daemon(fetch=LOCAL, workers={"count": "1"}).start()
    broker.publish(queue_of(d), {"id": "r", "text": TEXT, "upload_url": web.url("/up/r.wav"),
                                 "callback_url": web.url("/cb")})
    r = broker.wait_results(1, timeout=60)["r"]
    assert r["status"] == "ok", r
    # attempt 1: upload 503; attempt 2: upload ok, callback 503; attempt 3: both ok.
    assert r["attempts"] == 3
    puts = web.got("/up/r.wav", "PUT")
    assert len(puts) == 3
    assert puts[-1].body == open(r["path"], "rb").read()
    cbs = web.got("/cb", "POST")
    assert len(cbs) == 2 and json.loads(cbs[-1].body) == r
    assert d.status()["totals"]["jobs_retried"] == 2
    assert "upload_failed: upload_url: HTTP 503: busy, come back later; retry 2 of 5" in d.log()


def test_upload_that_never_succeeds_is_dead_lettered(daemon, broker, web):
    flaky(web, "/up/never.wav", 100, status=500)
    web.static("/up/forbidden.wav", "text/plain", "signature expired", status=403)
    d = daemon(fetch=LOCAL, broker={"max_attempts": "2"}, workers={"count": "1"}).start()
    q = queue_of(d)
    broker.publish(q, {"id": "never", "text": TEXT, "upload_url": web.url("/up/never.wav")})
    broker.publish(q, {"id": "forbidden", "text": TEXT,
                       "upload_url": web.url("/up/forbidden.wav")})
    res = broker.wait_results(2, timeout=60)
    assert res["never"]["error"]["code"] == "upload_failed"
    assert res["never"]["attempts"] == 2 and len(web.got("/up/never.wav")) == 2
    # A 403 will not get better: no retry.
    assert res["forbidden"]["error"]["code"] == "upload_failed"
    assert res["forbidden"]["attempts"] == 1
    assert "HTTP 403: signature expired" in res["forbidden"]["error"]["message"]
    dead = wait_for(lambda: (lambda m: len(m) == 2 and m)(broker.get_all(q + ".dead")),
                    what="dead letters")
    assert {p.headers["x-c2a-error-code"] for p, _ in dead} == {"upload_failed"}


def test_upload_to_private_address_refused(daemon, broker, web):
    web.static("/up/x.wav", None, b"", status=201)
    d = daemon(workers={"count": "1"}).start()  # allow_private = no
    broker.publish(queue_of(d), {"id": "x", "text": TEXT, "upload_url": web.url("/up/x.wav")})
    r = broker.wait_results(1)["x"]
    assert r["error"]["code"] == "upload_failed" and r["attempts"] == 1
    assert "private address" in r["error"]["message"]
    assert web.got("/up/x.wav") == []
