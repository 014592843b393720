"""The peer for bench/celery.sh: a Celery app whose task runs the espeak-ng
command line, and a producer that keeps a window of tasks in flight.

Configured from the environment, so the worker and the producer agree:
  CELERY_BENCH_BROKER  broker URL (amqp://guest:guest@127.0.0.1:5672//)
  CELERY_BENCH_QUEUE   the queue (and, Celery's default, the direct exchange of
                       the same name) the tasks go through; the workers'
                       remote-control exchange is QUEUE.pidbox
  CELERY_BENCH_OUT     the directory the WAV files are written to
  CELERY_BENCH_READY   a file created once the worker is ready

The worker, as the peer is run (prefork, -c 2, acks_late, prefetch 1):
  celery -A celery_tasks worker -P prefork -c 2 -Q "$CELERY_BENCH_QUEUE"
The producer prints one line in the format of build/bench/loadgen:
  python3 celery_tasks.py produce speak|noop N WINDOW [TEXT_FILE]
  -> jobs N  errors E  seconds S  jobs/s X  p50_ms Y  p99_ms Z  client_cpu_s C
     client_cpu_pct P   (the producer's own CPU time, and that over the run's
                         wall time in percent of one core)
Delete the queue, its exchange and the pidbox exchange (after the worker has
stopped):
  python3 celery_tasks.py delete
Run with Debian's /usr/bin/python3 (python3-celery).
"""
import os
import socket
import subprocess
import sys
import time

from celery import Celery, signals, uuid

QUEUE = os.environ.get("CELERY_BENCH_QUEUE", "bench.celery")
OUT = os.environ.get("CELERY_BENCH_OUT", "/var/tmp")

app = Celery("celery_tasks")
app.conf.update(
    broker_url=os.environ.get("CELERY_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
    result_backend="rpc://",
    task_default_queue=QUEUE,
    control_exchange=QUEUE,  # the workers' pidbox exchange: QUEUE.pidbox
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)


@app.task
def speak(text):
    """espeak-ng -v en-us -s 175 -w OUTFILE TEXT, no fsync; path and size."""
    path = os.path.join(OUT, speak.request.id + ".wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "175", "-w", path, text], check=True)
    return {"path": path, "bytes": os.path.getsize(path)}


@app.task
def noop():
    return {}


@signals.worker_ready.connect
def _ready(**_):
    path = os.environ.get("CELERY_BENCH_READY")
    if path:
        open(path, "w").close()


def produce(kind, n, window, text):
    """Keep WINDOW tasks in flight until N have a result; latency is from just
    before the publish to the result's arrival, as in loadgen."""
    task, args = (speak, (text,)) if kind == "speak" else (noop, ())
    sent, live, lat = {}, {}, []
    errors = 0

    def done(res):
        nonlocal errors
        lat.append(time.perf_counter() - sent.pop(res.id))
        live.pop(res.id)
        if res.state != "SUCCESS" or (kind == "speak" and not res.result.get("bytes")):
            errors += 1

    # One task first, so that the connections are open and the reply queue is
    # declared and consumed before the clock starts (loadgen's are, too).
    noop.apply_async().get(timeout=30)
    consumer = app.backend.result_consumer
    published = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    while len(lat) < n:
        while published < n and published - len(lat) < window:
            tid = uuid()
            sent[tid] = time.perf_counter()
            r = task.apply_async(args, task_id=tid)
            live[tid] = r  # the promise behind then() holds the result weakly
            r.then(done)
            published += 1
        # What AsyncResult.get() does while it waits: read the reply queue;
        # each result that arrives fires its then() callback.
        try:
            consumer.drain_events(timeout=30)
        except socket.timeout:
            sys.exit("celery_tasks: no result within 30 s")
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    lat.sort()
    print("jobs %d  errors %d  seconds %.2f  jobs/s %.1f  p50_ms %.2f  p99_ms %.2f  client_cpu_s %.2f"
          "  client_cpu_pct %.0f" % (n, errors, elapsed, n / elapsed, lat[n // 2] * 1000,
                                   lat[int(n * 0.99)] * 1000, cpu, 100 * cpu / elapsed))
    return 1 if errors else 0


def delete():
    with app.connection_for_write() as conn:
        ch = conn.default_channel
        ch.queue_delete(QUEUE)
        ch.exchange_delete(QUEUE)
        ch.exchange_delete(QUEUE + ".pidbox")


if __name__ == "__main__":
    if sys.argv[1:2] == ["produce"] and len(sys.argv) in (5, 6):
        text = ""
        if len(sys.argv) == 6:
            with open(sys.argv[5]) as f:
                text = f.read()
        sys.exit(produce(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), text))
    if sys.argv[1:] == ["delete"]:
        sys.exit(delete())
    sys.exit(__doc__)
