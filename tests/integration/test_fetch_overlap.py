"""The worker's loop is never blocked by synthesis: while its one synthesis
thread speaks a long text, 50 fetches for the jobs queued behind it are all in
flight at once. Shown by overlap (a server that answers only once it holds all
50 requests, and the long job still running then), not by a timing threshold."""

import threading
import time

from conftest import wait_for
from test_fetch import LOCAL
from test_pipeline import queue_of

N = 50


def test_fifty_slow_fetches_overlap_a_long_synthesis(daemon, broker, web):
    cond = threading.Condition()
    arrived = []
    all_in = {}

    def slow(h, req):
        with cond:
            arrived.append(time.monotonic())
            if len(arrived) == N:
                all_in["t"] = time.monotonic()
                all_in["status"] = d.status()
                cond.notify_all()
            cond.wait_for(lambda: len(arrived) >= N, timeout=20)
        h.reply(200, "text/plain", f"Fetched text number {req.path[-2:]}.".encode())

    d = None
    for i in range(N):
        web.route(f"/slow/{i:02d}", slow)
    d = daemon(fetch=LOCAL, workers={"count": "1"}, broker={"prefetch": str(N + 5)},
               speech={"max_duration": "86400"}).start()
    q = queue_of(d)
    long_text = "A long text keeps the synthesis thread busy for a while. " * 1400  # ~80k chars
    broker.publish(q, {"id": "long", "text": long_text, "format": "wav"})
    for i in range(N):
        broker.publish(q, {"id": f"u{i:02d}", "url": web.url(f"/slow/{i:02d}")})
    done_at = {}
    deadline = time.monotonic() + 120
    while len(done_at) < N + 1 and time.monotonic() < deadline:
        broker.pump(0.05)
        for cid, _ in broker.result_list:
            done_at.setdefault(cid, time.monotonic())
    res = broker.results
    assert len(res) == N + 1
    assert all(r["status"] == "ok" for r in res.values()), res
    # All 50 were held by the server at the same moment...
    assert web.max_in_flight == N and "t" in all_in
    # ...while the long job was still being synthesized on the same worker.
    assert all_in["t"] < done_at["long"]
    assert res["long"]["duration_ms"] > 60_000
    # The master saw it too: one worker, busy with the long job, 50 transfers and
    # 51 jobs in hand.
    (w,) = all_in["status"]["workers"]
    assert (w["state"], w["current_job"]) == ("busy", "long")
    assert w["transfers"] == N and w["jobs_in_hand"] == N + 1
    wait_for(lambda: (lambda w: w["transfers"] == 0 and w["jobs_in_hand"] == 0)(
        d.status()["workers"][0]), what="all acked")
    pids = {r["worker"] for r in res.values()}
    assert len(pids) == 1
    # And the heartbeat kept flowing: the master never saw a stale worker.
    assert d.status()["totals"]["worker_restarts"] == 0
