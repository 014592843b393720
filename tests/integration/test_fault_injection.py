"""Fault injection against a private RabbitMQ node.

A producer publishes C2A_FAULT_JOBS speech jobs (persistent, confirmed, every
format, at most C2A_FAULT_BACKLOG ahead of the results) while a fault driver,
seeded (C2A_FAULT_SEED), SIGKILLs workers, sends the master HUP, TTIN, TTOU,
USR1 (with a log rotation) and USR2 (following the new master through the
pidfile), and stops the broker for a few seconds, then starts it again on the
same data, C2A_FAULT_OUTAGES times; for C2A_FAULT_SECONDS, and on while the
producer publishes. Then every job must have an ok result (by reply_to and by
the results exchange) whose file is on disk, matches the result and decodes;
nothing may be left in the work, retry or dead-letter queues; and no worker may
have been killed by the master (a graceful stop that ran out, a heartbeat).

    C2A_FAULT_JOBS=5000 C2A_FAULT_SECONDS=120 C2A_FAULT_SEED=42 \\
        /usr/bin/python3 -m pytest -s tests/integration/test_fault_injection.py
"""

import collections
import hashlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import threading
import time

import pika
import pytest
import requests

from conftest import SFINFO, alive, children_of, queue_name, wait_for
from private_broker import available

# pika logs every refused connection while the broker is down: noise in a report
logging.getLogger("pika").setLevel(logging.CRITICAL)

pytestmark = pytest.mark.skipif(not available(), reason="needs rabbitmq-server")

# Fewer jobs by default on the sanitizer build (several times slower).
JOBS = int(os.environ.get("C2A_FAULT_JOBS") or
           (1000 if os.environ.get("C2A_SANITIZE") == "1" else 3000))
FAULT_SECONDS = float(os.environ.get("C2A_FAULT_SECONDS", "60"))
OUTAGES = int(os.environ.get("C2A_FAULT_OUTAGES", "2"))
SEED = int(os.environ.get("C2A_FAULT_SEED") or random.SystemRandom().randrange(1 << 31))
# After the faults, the workers catch up: the test waits as long as results keep
# coming (a machine busy with other work is slow, not wrong), but fails when none
# came for STALL_SECONDS or when DRAIN_SECONDS have passed.
DRAIN_SECONDS = float(os.environ.get("C2A_FAULT_DRAIN_SECONDS", "600"))
STALL_SECONDS = 90
BACKLOG = int(os.environ.get("C2A_FAULT_BACKLOG", "40"))
GRACEFUL_TIMEOUT = 10
MAX_WORKERS = 4  # TTIN stops here
FORMATS = ["wav", "flac", "ogg", "opus", "mp3"]
PHRASES = ["The broker goes away and comes back.", "Workers die and are replaced.",
           "No job may be lost.", "Every file must decode.", "A result for every job.",
           "Signals arrive at random.", "At least once, never zero times."]


def job_of(i):
    jid = f"job-{i:05d}"
    return {"id": jid, "text": f"Fault test job {i}. {PHRASES[i % len(PHRASES)]}",
            "format": FORMATS[i % len(FORMATS)]}


def ts():
    return time.strftime("%H:%M:%S")


class Events:
    """A timestamped record of what the test did, for the report."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.lines = []
        self.lock = threading.Lock()

    def __call__(self, msg):
        with self.lock:
            self.lines.append(f"{time.monotonic() - self.t0:7.1f}s {ts()} {msg}")


# --- the producer ---------------------------------------------------------------

class Producer(threading.Thread):
    """Publishes the jobs in bursts over `window` seconds, never more than
    BACKLOG ahead of the results (so that a job put back at the tail of the queue
    after an interruption comes back while the faults go on): persistent,
    mandatory, each one confirmed before the next; on any broker error it
    reconnects (with backoff) and publishes again from the first unconfirmed job."""

    def __init__(self, url, queue, reply_to, n, window, rng, events, results):
        super().__init__(daemon=True, name="producer")
        self.url, self.queue, self.reply_to = url, queue, reply_to
        self.n, self.window, self.events, self.results = n, window, events, results
        self.stop = threading.Event()
        self.confirmed = 0  # jobs 0..confirmed-1 are published
        self.errors = collections.Counter()
        self.reconnects = 0
        self.error = None
        self.conn = self.ch = None
        avg = max(1, n // 30)
        self.bursts = []
        left = n
        while left > 0:
            b = min(left, rng.randint(1, 2 * avg))
            self.bursts.append(b)
            left -= b

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the test
            self.error = repr(e)
        finally:
            try:
                self.conn.close()
            except Exception:
                pass

    def _connect(self):
        delay = 0.2
        while not self.stop.is_set():
            try:
                self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
                self.ch = self.conn.channel()
                self.ch.confirm_delivery()
                return
            except Exception as e:  # refused, reset, closed while the node boots
                self.errors[type(e).__name__] += 1
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise RuntimeError(f"stopped at {self.confirmed}/{self.n} jobs confirmed")

    def _reconnect(self):
        try:
            self.conn.close()
        except Exception:
            pass
        self.reconnects += 1
        self._connect()

    def _pause(self, seconds):
        """Sleep, serving the connection (heartbeats), reconnecting if it is lost."""
        try:
            self.conn.sleep(seconds)
        except Exception as e:
            self.errors[type(e).__name__] += 1
            self._reconnect()

    def _ahead(self, i):
        """Too far ahead of the results (unless none came for a long time: then
        the test will report the jobs that have none)."""
        return (i - len(self.results.by_id) >= BACKLOG and
                time.monotonic() - self.results.last_at < STALL_SECONDS)

    def _run(self):
        self._connect()
        start = time.monotonic()
        per_burst = self.window / max(1, len(self.bursts))
        i = 0
        for k, size in enumerate(self.bursts):
            due = start + k * per_burst
            while not self.stop.is_set() and time.monotonic() < due:
                self._pause(min(0.2, max(0.0, due - time.monotonic())))
            end = i + size
            while i < end and not self.stop.is_set():
                if self._ahead(i):
                    self._pause(0.05)
                    continue
                job = job_of(i)
                props = pika.BasicProperties(
                    content_type="application/json", delivery_mode=2,
                    correlation_id=job["id"], message_id=job["id"], reply_to=self.reply_to)
                try:
                    self.ch.basic_publish("", self.queue, json.dumps(job), props,
                                          mandatory=True)
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as e:
                    # The channel stays usable: publish the same job again.
                    self.errors[type(e).__name__] += 1
                    time.sleep(0.2)
                    continue
                except Exception as e:
                    self.errors[type(e).__name__] += 1
                    self._reconnect()
                    continue
                i += 1
                self.confirmed = i
        self.events(f"producer: {self.confirmed} jobs confirmed")


# --- the results consumer ---------------------------------------------------------

class Results(threading.Thread):
    """Consumes the results queue (durable, on the private node) with manual
    acks, reconnecting whenever the broker goes away."""

    def __init__(self, url, queue, events, exchange=None, key=None):
        super().__init__(daemon=True, name=f"results {queue}")
        self.url, self.queue, self.events = url, queue, events
        self.exchange, self.key = exchange, key
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.by_id = collections.defaultdict(list)
        self.count = 0
        self.last_at = time.monotonic()
        self.reconnects = 0
        self.bad = []  # bodies that are not a result

    def declare(self):
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        ch = conn.channel()
        ch.queue_declare(self.queue, durable=True)
        if self.exchange:
            # as the workers declare it: a durable topic exchange
            ch.exchange_declare(self.exchange, "topic", durable=True)
            ch.queue_bind(self.queue, self.exchange, self.key)
        conn.close()

    def _on(self, ch, method, props, body):
        try:
            doc = json.loads(body)
            key = doc.get("id") or props.correlation_id
        except ValueError:
            doc, key = None, None
        with self.lock:
            if doc is None or not key:
                self.bad.append((props.correlation_id, body[:200]))
            else:
                self.by_id[key].append(doc)
            self.count += 1
            self.last_at = time.monotonic()
        ch.basic_ack(method.delivery_tag)

    def run(self):
        while not self.stop.is_set():
            conn = None
            consuming = False
            try:
                conn = pika.BlockingConnection(pika.URLParameters(self.url))
                ch = conn.channel()
                ch.queue_declare(self.queue, durable=True)
                ch.basic_qos(prefetch_count=500)
                ch.basic_consume(self.queue, self._on)
                consuming = True
                while not self.stop.is_set():
                    conn.process_data_events(time_limit=0.2)
            except Exception:
                self.reconnects += consuming  # connections lost, not failed attempts
                time.sleep(0.3)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass

    def snapshot(self):
        with self.lock:
            return {k: list(v) for k, v in self.by_id.items()}


# --- watching the master ----------------------------------------------------------

class Monitor(threading.Thread):
    """Polls /status: the last restart counters each master reported."""

    def __init__(self, url):
        super().__init__(daemon=True, name="monitor")
        self.url = url
        self.stop = threading.Event()
        self.restarts = {}  # master pid -> {reason: n}
        self.max_workers = 0

    def run(self):
        while not self.stop.is_set():
            try:
                st = requests.get(self.url + "/status", timeout=3).json()
                self.restarts[st["pid"]] = dict(st["restarts"])
                self.max_workers = max(self.max_workers, len(st["workers"]))
            except (requests.RequestException, ValueError, KeyError):
                pass
            self.stop.wait(0.5)


def log_text(d):
    """The daemon's log: the rotated pieces (USR1) in order, then the current file."""
    rotated = sorted(d.tmp.glob(f"{d.logfile.name}.*"), key=lambda p: int(p.suffix[1:]))
    return "".join(p.read_text(errors="replace") for p in rotated + [d.logfile]
                   if p.exists())


def metrics(url):
    text = requests.get(url + "/metrics", timeout=5).text
    out = {}
    for m in re.finditer(r'^c2a_worker_restarts_total\{reason="(\w+)"\} (\d+)$', text, re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def queue_table(rb):
    """{queue: (ready, unacked)} on the private node."""
    out = rb.ctl("list_queues", "-q", "--no-table-headers", "name", "messages_ready",
                 "messages_unacknowledged")
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            table[parts[0]] = (int(parts[1]), int(parts[2]))
    return table


# --- faults -------------------------------------------------------------------------

class FaultDriver:
    def __init__(self, d, rb, rng, events):
        self.d, self.rb, self.rng, self.events = d, rb, rng, events
        self.counts = collections.Counter()
        self.rotations = 0
        self.masters = [d.master_pid]
        self.outage_error = None
        self.killed_jobs = set()

    def status(self):
        return requests.get(self.d.url + "/status", timeout=5).json()

    def kill_worker(self):
        st = self.status()
        master = self.d.master_pid
        mine = set(children_of(master))
        ok = [w for w in st["workers"] if w["pid"] in mine and w["state"] in ("idle", "busy")]
        busy = [w for w in ok if w["state"] == "busy"]
        pool = busy if busy and self.rng.random() < 0.75 else ok
        if not pool:
            self.counts["kill_skipped"] += 1
            return
        pid = self.rng.choice(pool)["pid"]
        # Freeze it, then read the job it holds: the master charges that job an
        # attempt when it reaps the worker (it may be the job that killed it), so
        # the test must know it exactly, and never kill the same job twice (or the
        # job could be quarantined as `crashed` by the test's own doing).
        os.kill(pid, signal.SIGSTOP)
        killed = False
        try:
            w = next((x for x in self.status()["workers"] if x["pid"] == pid), None)
            if w and w["state"] in ("idle", "busy") and w["current_job"] not in self.killed_jobs:
                os.kill(pid, signal.SIGKILL)
                killed = True
        finally:
            if not killed:
                os.kill(pid, signal.SIGCONT)
        if not killed:
            self.counts["kill_skipped"] += 1
            return
        if w["current_job"]:
            self.killed_jobs.add(w["current_job"])
        self.counts["kill"] += 1
        self.events(f"SIGKILL worker {pid} ({w['state']}, job {w['current_job']}) "
                    f"of master {master}")

    def signal_master(self, kind):
        master = self.d.master_pid
        if kind in ("ttin", "ttou"):
            target = self.status()["workers_target"]
            if kind == "ttin" and target >= MAX_WORKERS:
                kind = "ttou"
            elif kind == "ttou" and target <= 1:
                kind = "ttin"
        if kind == "usr1":
            # logrotate: move the file away, then ask for a reopen
            self.rotations += 1
            os.rename(self.d.logfile, self.d.tmp / f"{self.d.logfile.name}.{self.rotations}")
        sig = {"hup": signal.SIGHUP, "ttin": signal.SIGTTIN, "ttou": signal.SIGTTOU,
               "usr1": signal.SIGUSR1}[kind]
        os.kill(master, sig)
        self.counts[kind] += 1
        self.events(f"{kind.upper()} to master {master}")

    def usr2(self):
        old = self.d.master_pid
        os.kill(old, signal.SIGUSR2)
        self.counts["usr2"] += 1
        self.events(f"USR2 to master {old}")

        def new_pid():
            try:
                p = int(self.d.pidfile.read_text())
            except (OSError, ValueError):
                return None
            return p if p != old else None
        new = wait_for(new_pid, timeout=60, what=f"a new master after USR2 to {old}")
        self.d.adopted.append(new)
        self.masters.append(new)
        self.d.master_pid = new
        # The old master leaves once the new one's workers are up and its own have
        # stopped (gracefully: at most graceful_timeout).
        wait_for(lambda: not alive(old), timeout=GRACEFUL_TIMEOUT + 60,
                 what=f"old master {old} to exit after USR2")
        if self.d.proc.pid == old:
            self.d.proc.wait(timeout=5)
        self.events(f"master {new} took over from {old}")

    def outage(self, down_s):
        try:
            self.events("broker: stopping")
            t = time.monotonic()
            self.rb.stop()
            self.events(f"broker: stopped in {time.monotonic() - t:.1f}s; "
                        f"down for {down_s:.1f}s more")
            time.sleep(down_s)
            t = time.monotonic()
            self.rb.start()
            self.counts["broker_restart"] += 1
            self.events(f"broker: up again in {time.monotonic() - t:.1f}s")
        except Exception as e:
            self.outage_error = repr(e)
            self.events(f"broker: restart failed: {e!r}")

    def run(self, seconds, outages, busy):
        """Faults for `seconds`, and on as long as busy() (the producer still
        publishes), for at most DRAIN_SECONDS more."""
        t0 = time.monotonic()
        # Broker outages on a thread of their own, so that signals keep coming
        # while the broker is down.
        slot = seconds * 0.75 / max(1, outages)
        plan = [(seconds * 0.1 + k * slot + self.rng.uniform(0, slot * 0.4),
                 self.rng.uniform(2.0, 6.0)) for k in range(outages)]
        self.events("outage plan: " + ", ".join(f"at {a:.1f}s for {b:.1f}s" for a, b in plan))

        def outages_thread():
            up_since = t0
            for at, down in plan:
                # the broker stays up at least 8 s between outages
                delay = max(t0 + at, up_since + 8.0) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.outage(down)
                if self.outage_error:
                    return
                up_since = time.monotonic()
        ot = threading.Thread(target=outages_thread, daemon=True, name="outages")
        ot.start()
        # Every kind at least once, in random order; then at random.
        first = ["kill", "kill", "hup", "ttin", "ttou", "usr1", "usr2"]
        self.rng.shuffle(first)
        kinds, weights = ["kill", "hup", "ttin", "ttou", "usr1", "usr2"], [4, 1, 1, 1, 1, 1]
        try:
            while ((time.monotonic() - t0 < seconds or busy()) and
                   time.monotonic() - t0 < seconds + DRAIN_SECONDS):
                time.sleep(self.rng.uniform(1.0, 4.0))
                kind = first.pop() if first else self.rng.choices(kinds, weights)[0]
                try:
                    if kind == "kill":
                        self.kill_worker()
                    elif kind == "usr2":
                        self.usr2()
                    else:
                        self.signal_master(kind)
                except requests.RequestException as e:
                    self.counts[f"{kind}_skipped"] += 1
                    self.events(f"{kind}: skipped, control socket: {e!r}")
        finally:
            ot.join(timeout=300)
        assert not ot.is_alive(), "the broker outage thread did not finish"
        assert self.outage_error is None, f"broker restart failed: {self.outage_error}"


# --- the test -------------------------------------------------------------------------

def check_files(best, audio_dir, problems):
    """Each id's file: <output dir>/<id>.<format>, there, its size and sha256 are
    those of one of its ok results (a duplicate run may have rewritten it), and
    libsndfile decodes it as the result describes."""
    paths = []
    for jid, oks in sorted(best.items()):
        path = str(audio_dir / f"{jid}.{job_of(int(jid.split('-')[1]))['format']}")
        if any(r["path"] != path for r in oks):
            problems.append(f"{jid}: results name {[r['path'] for r in oks]}, not {path}")
        if not path or not os.path.exists(path):
            problems.append(f"{jid}: file {path} is missing")
            continue
        data = open(path, "rb").read()
        digest = hashlib.sha256(data).hexdigest()
        match = [r for r in oks if r["bytes"] == len(data) and r["sha256"] == digest]
        if not match:
            problems.append(f"{jid}: {path} ({len(data)} bytes, sha256 {digest[:12]}) matches "
                            f"none of its {len(oks)} ok results "
                            f"{[(r['bytes'], r['sha256'][:12]) for r in oks]}")
            continue
        paths.append((jid, path, match[0]))
    for k in range(0, len(paths), 400):
        chunk = paths[k:k + 400]
        r = subprocess.run([SFINFO] + [p for _, p, _ in chunk], capture_output=True, text=True)
        lines = r.stdout.splitlines()
        if len(lines) != len(chunk):
            problems.append(f"sfinfo printed {len(lines)} lines for {len(chunk)} files: "
                            f"{r.stderr[:500]}")
            continue
        for (jid, path, res), line in zip(chunk, lines):
            f = line.split()
            if f[0] == "error" or len(f) != 4:
                problems.append(f"{jid}: {path} does not decode: {line[:200]}")
                continue
            rate, frames, channels = int(f[0]), int(f[1]), int(f[2])
            if (rate != res["sample_rate"] or channels != res["channels"] or frames <= 0
                    or abs(frames * 1000 / rate - res["duration_ms"]) >= 80):
                problems.append(f"{jid}: {path} decodes as {rate} Hz, {channels} ch, {frames} "
                                f"frames; the result says {res['sample_rate']} Hz, "
                                f"{res['channels']} ch, {res['duration_ms']} ms")


def test_faults_lose_no_job(private_broker, daemon, tmp_path):
    rb = private_broker
    rng = random.Random(SEED)
    events = Events()
    print(f"\nfault injection: seed {SEED} (C2A_FAULT_SEED={SEED} replays the schedule), "
          f"{JOBS} jobs, {FAULT_SECONDS:.0f}s of faults, {OUTAGES} broker outages, "
          f"broker {rb.node} on port {rb.port}")
    t_start = time.monotonic()
    queue = queue_name(tmp_path, "c2a")
    results_q, audit_q, exchange = queue + ".results", queue + ".audit", queue + ".events"
    # max_attempts = 2: the spec quarantines a job after at most 2 attempts that
    # crashed it; the driver never kills the same job twice, and the broker going
    # away or a worker killed beside a job is not the job's fault: no job may
    # reach it. A results exchange as well as reply_to: two confirmed publishes
    # per job, to two queues.
    d = daemon(workers={"count": "2", "timeout": "10",
                        "graceful_timeout": str(GRACEFUL_TIMEOUT)},
               broker={"url": rb.url, "prefetch": "4", "heartbeat": "5",
                       "max_attempts": "2", "results_exchange": exchange})
    assert queue_name(d.tmp, d.name) == queue
    d.start()

    results = Results(rb.url, results_q, events)
    results.declare()
    audit = Results(rb.url, audit_q, events, exchange=exchange, key=queue)
    audit.declare()
    producer = Producer(rb.url, queue, results_q, JOBS, FAULT_SECONDS * 0.7, rng, events,
                        results)
    monitor = Monitor(d.url)
    driver = FaultDriver(d, rb, rng, events)
    threads = [results, audit, producer, monitor]
    for t in threads:
        t.start()
    problems = []
    summary = {}
    try:
        # 1. faults while the jobs run
        driver.run(FAULT_SECONDS, OUTAGES, busy=producer.is_alive)
        events(f"faults over: {dict(driver.counts)}")
        # 2. every job published (confirmed) and every id answered
        producer.join(timeout=120)
        assert not producer.is_alive(), f"producer stuck at {producer.confirmed}/{JOBS}"
        assert producer.error is None, f"producer failed: {producer.error}"
        assert producer.confirmed == JOBS
        ids = {job_of(i)["id"] for i in range(JOBS)}
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline:
            if ids <= set(results.snapshot()) and ids <= set(audit.snapshot()):
                break
            if time.monotonic() - max(results.last_at, audit.last_at) > STALL_SECONDS:
                events(f"results: none for {STALL_SECONDS}s")
                break
            time.sleep(0.5)
        events(f"results: {len(results.snapshot())} ids answered")
        # 3. the queues drain: nothing ready or unacked in the work queue, its delay
        # queues and its dead-letter queue (acks trail the results a little)
        mine = lambda t: {q: v for q, v in t.items()
                          if q == queue or q.startswith(queue + ".retry.") or
                          q == queue + ".dead"}
        try:
            table = wait_for(lambda: (lambda t: all(v == (0, 0) for v in t.values()) and t)(
                mine(queue_table(rb))), timeout=30, interval=1, what="queues drained")
        except AssertionError:
            table = mine(queue_table(rb))
            try:
                held = [{k: w.get(k) for k in ("pid", "state", "jobs_in_hand", "current_job",
                                                "broker_connected")}
                        for w in d.status()["workers"]]
            except requests.RequestException as e:
                held = repr(e)
            problems.append(f"queues not drained 30 s after the results ((ready, unacked) "
                            f"by queue): {table}; workers: {held}")
        summary["queues"] = table
        # 4. the last master's counters, then a graceful stop of everything
        final_master = d.master_pid
        try:
            summary["metrics"] = metrics(d.url)
            summary["status_restarts"] = d.status()["restarts"]
        except requests.RequestException as e:
            problems.append(f"control socket at the end: {e!r}")
        t = time.monotonic()
        os.kill(final_master, signal.SIGTERM)
        try:
            wait_for(lambda: not alive(final_master), timeout=GRACEFUL_TIMEOUT + 20,
                     what="final graceful stop")
        except AssertionError:
            problems.append(f"master {final_master} still running "
                            f"{GRACEFUL_TIMEOUT + 20}s after TERM")
        if d.proc.pid == final_master:
            d.proc.wait(timeout=5)
        summary["final_stop_s"] = round(time.monotonic() - t, 1)
        time.sleep(1)  # results published during the stop
    finally:
        for t in threads:
            t.stop.set()
        for t in threads:
            t.join(timeout=10)

    # --- verdicts ---
    by_id = results.snapshot()
    ids = [job_of(i)["id"] for i in range(JOBS)]
    missing = [j for j in ids if j not in by_id]
    unknown = sorted(set(by_id) - set(ids))
    errors = [(j, r) for j in ids for r in by_id.get(j, []) if r.get("status") != "ok"]
    best = {j: [r for r in by_id[j] if r.get("status") == "ok"] for j in ids if j in by_id}
    best = {j: v for j, v in best.items() if v}
    total = sum(len(v) for v in by_id.values())
    if missing:
        problems.append(f"{len(missing)} of {JOBS} jobs have no result: {missing[:20]}")
    audit_ids = audit.snapshot()
    audit_missing = [j for j in ids if j not in audit_ids]
    audit_errors = [r for v in audit_ids.values() for r in v if r.get("status") != "ok"]
    if audit_missing or audit_errors or audit.bad:
        problems.append(f"results exchange: {len(audit_missing)} ids missing "
                        f"{audit_missing[:10]}, {len(audit_errors)} errors, "
                        f"{len(audit.bad)} unreadable")
    if unknown or results.bad:
        problems.append(f"results for unknown ids {unknown[:10]}, unreadable {results.bad[:5]}")
    log = log_text(d)
    if errors:
        codes = collections.Counter(r.get("error", {}).get("code") for _, r in errors)
        story, first = [], {}
        for j, r in errors:
            first.setdefault(j, r)
        for j, r in list(first.items())[:4]:
            killed = "in the engine of a worker the test killed" if j in driver.killed_jobs \
                else "never in the engine of a worker the test killed"
            story.append(f"  {j} ({killed}): {json.dumps(r)}")
            story += [f"    {ln}" for ln in log.splitlines() if f"job {j}:" in ln][:8]
        problems.append(f"{len(errors)} error results {dict(codes)} for {len(first)} jobs:\n"
                        + "\n".join(story))
    for j in ids:
        for r in best.get(j, []):
            want = job_of(int(j.split("-")[1]))["format"]
            if r.get("format") != want:
                problems.append(f"{j}: format {r.get('format')}, asked {want}")
    check_files(best, tmp_path / "audio", problems)

    masters = sorted(set(driver.masters))
    kill_lines = re.findall(r"^.*\] master warn: (?:worker \d+ killed \(|killing worker).*$",
                            log, re.M)
    if kill_lines:
        victims = sorted({int(p) for p in re.findall(r"worker (\d+)", "\n".join(kill_lines))})
        context = []
        for v in victims[:4]:
            mine_lines = [ln for ln in log.splitlines() if f"[{v}]" in ln]
            context += [f"  last lines of worker {v}:"] + [f"    {ln}" for ln in mine_lines[-8:]]
        problems.append("workers killed by the master (a graceful stop ran out, or a "
                        "heartbeat/job timeout):\n  " + "\n  ".join(kill_lines) + "\n"
                        + "\n".join(context))
    crash_lines = re.findall(r"^.*\] master \w+: worker \d+ (?:died unexpectedly|failed to boot)"
                             r".*$", log, re.M)
    if crash_lines:
        problems.append("workers that crashed or failed to boot:\n  " + "\n  ".join(crash_lines))
    outside = collections.Counter(int(m) for m in re.findall(
        r"^.*\[(\d+)\] master warn: worker \d+ was killed from outside", log, re.M))
    for pid, seen in monitor.restarts.items():
        bad = {k: v for k, v in seen.items() if k != "killed" and v}
        if bad or seen.get("killed", 0) > outside[pid]:
            problems.append(f"master {pid}: /status restarts {seen}, "
                            f"{outside[pid]} workers killed from outside")
    if "metrics" in summary:
        m = summary["metrics"]
        want = {r: 0 for r in m}
        want["killed"] = outside[final_master]
        if m != want:
            problems.append(f"/metrics of the last master {final_master}: restarts {m}, "
                            f"expected {want} (killed = our SIGKILLs it saw)")
    if driver.counts["usr2"] and "re-executing" not in log:
        problems.append("USR2 sent but no 're-executing' in the log")
    if driver.counts["usr1"] and log.count("log reopened") < 1:
        problems.append("USR1 sent but no 'log reopened' in the log")

    dups = total - len(by_id)
    attempts = collections.Counter(r.get("attempts") for v in best.values() for r in v)
    leftovers = list((tmp_path / "audio" / ".c2a-tmp").glob("*")) \
        if (tmp_path / "audio" / ".c2a-tmp").exists() else []
    report = [
        f"seed {SEED}: {JOBS} jobs, {total} results ({dups} duplicates), "
        f"{len(missing)} missing, {len(errors)} errors",
        f"faults: {dict(sorted(driver.counts.items()))}; masters {masters}; "
        f"at most {monitor.max_workers} workers",
        f"producer: {producer.reconnects} reconnects, errors {dict(producer.errors)}; "
        f"results consumers: {results.reconnects} and {audit.reconnects} reconnects; "
        f"{sum(len(v) for v in audit_ids.values())} results via the exchange",
        f"attempts of ok results: {dict(sorted(attempts.items()))}; jobs in the engine "
        f"of a killed worker: {sorted(driver.killed_jobs)}",
        f"queues at the end: {summary.get('queues')}",
        f"restarts: /metrics {summary.get('metrics')}, log 'killed from outside' "
        f"{dict(outside)}; final stop took {summary.get('final_stop_s')}s",
        f"log: {log.count('redelivered after an interrupted attempt')} redeliveries of "
        f"interrupted attempts, {log.count('finished after its connection was lost')} jobs "
        f"finished after their connection was lost; {len(leftovers)} temporary files left "
        f"in .c2a-tmp",
        f"elapsed {time.monotonic() - t_start:.1f}s",
    ]
    print("\n".join(report))
    print("events:\n  " + "\n  ".join(events.lines))
    assert not problems, (f"seed {SEED}: {len(problems)} problems:\n"
                          + "\n".join(problems[:40]) + "\n--\n" + "\n".join(report))
