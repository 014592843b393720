"""c2a-worker on a real RabbitMQ cluster.

A cluster of three private nodes on this machine (private_broker.PrivateCluster:
own names, ports, data directories, one Erlang cookie, rabbitmqctl
join_cluster), quorum work queues, and two daemons standing for two hosts, each
with its own config, output directory and failover URL list (in different
orders). A few thousand jobs run while the node one daemon is connected to is
stopped and started again: every job must end with an ok result (duplicates
allowed: at-least-once), none may be dead-lettered, and both daemons must be
connected to a live node within 15 s of the stop.

The shared broker on 5672 is never touched; TLS is test_tls.py.

    C2A_CLUSTER_JOBS=10000 /usr/bin/python3 -m pytest -s tests/integration/test_cluster.py
"""

import collections
import datetime
import json
import logging
import os
import re
import threading
import time

import pika
import pytest

from conftest import base_config, queue_name, wait_for
from private_broker import PrivateCluster, available

# pika logs every refused connection while a node is down: noise in a report
logging.getLogger("pika").setLevel(logging.CRITICAL)

pytestmark = pytest.mark.skipif(not available(), reason="needs rabbitmq-server")

SANITIZE = os.environ.get("C2A_SANITIZE") == "1"
JOBS = int(os.environ.get("C2A_CLUSTER_JOBS") or (1000 if SANITIZE else 3000))
# The producer spreads the jobs over this many seconds, so that the node stop
# lands in the middle of a steady stream whatever the machine's speed.
PUBLISH_SECONDS = float(os.environ.get("C2A_CLUSTER_PUBLISH_SECONDS", "20"))
RECONNECT_S = 15  # the daemons must be on a live node this long after the stop
DOWN_S = 5  # the stopped node stays down at least this long
STALL_S = 60  # fail when no result came for this long


# --- fixtures -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def _cluster(tmp_path_factory):
    c = PrivateCluster(tmp_path_factory.mktemp("cluster"))
    t = time.monotonic()
    try:
        c.start()
        print(f"\ncluster of {len(c)} nodes up in {time.monotonic() - t:.1f}s: "
              f"ports {[n.port for n in c.nodes]}")
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster(_cluster):
    """The module's cluster (forming one takes half a minute), every node
    running: a test that stopped one and failed may have left it down."""
    for i in range(len(_cluster)):
        if not _cluster.running(i):
            _cluster.start(i)
    return _cluster


def failover_daemon(daemon, name, urls, **sections):
    """A daemon whose [broker] has one url line per node, in this order (the
    failover list: a dict of sections cannot repeat a key)."""
    d = daemon(name, **sections)
    text = base_config(d.tmp, d.port, d.name, **sections)
    d.write_config(text.replace("[broker]\n",
                                "[broker]\n" + "".join(f"url = {u}\n" for u in urls), 1))
    return d


# --- the fixtures themselves ------------------------------------------------------------
# They run no program of ours: the sanitizer pass (C2A_SANITIZE=1) leaves them
# to the normal one and keeps its time for the daemons.
fixture_only = pytest.mark.skipif(SANITIZE, reason="runs no program of ours")


# test_cluster_failover does all of this with the daemons in CI; this one,
# pika alone, is for changes to PrivateCluster: C2A_FIXTURE_TESTS=1.
@fixture_only
@pytest.mark.skipif(os.environ.get("C2A_FIXTURE_TESTS") != "1",
                    reason="the fixture's own proof: C2A_FIXTURE_TESTS=1")
def test_cluster_fixture(cluster, tmp_path):
    """The cluster is a cluster: a quorum queue declared on node 0 has a member
    on every node, keeps its messages when node 0 (its leader) stops, serves
    them from another node, and node 0 rejoins when started again."""
    names = sorted(n.node for n in cluster.nodes)
    assert cluster.running_nodes() == names
    q = queue_name(tmp_path, "fixture")
    conn = pika.BlockingConnection(pika.URLParameters(cluster.url(0)))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    for i in range(50):
        ch.basic_publish("", q, f"m{i}", pika.BasicProperties(delivery_mode=2),
                         mandatory=True)
    conn.close()
    info = cluster.queues(1)[q]
    assert info["type"] == "quorum" and sorted(info["members"]) == names
    assert info["leader"] == cluster.nodes[0].node

    t = time.monotonic()
    cluster.stop(0)
    stopped = time.monotonic() - t
    assert cluster.running_nodes(1) == names[1:]
    # A new leader is elected among the two that are left; the messages are there.
    conn = pika.BlockingConnection(pika.URLParameters(cluster.url(2)))
    ch = conn.channel()
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 50 and time.monotonic() < deadline:
        method, _, body = ch.basic_get(q, auto_ack=True)
        if method is None:
            time.sleep(0.2)
            continue
        got.append(body.decode())
    conn.close()
    assert got == [f"m{i}" for i in range(50)]

    t = time.monotonic()
    cluster.start(0)
    started = time.monotonic() - t
    assert cluster.running_nodes(0) == names
    conn = pika.BlockingConnection(pika.URLParameters(cluster.url(0)))
    ch = conn.channel()
    ch.queue_delete(q)
    conn.close()
    print(f"\nnode 0 stopped in {stopped:.1f}s, started and rejoined in {started:.1f}s")


# --- the cluster failover test ------------------------------------------------------------

class Producer(threading.Thread):
    """Publishes the jobs spread over `seconds`: persistent, mandatory, each
    confirmed before the next. When its node goes away it moves to the next URL
    and publishes again from the first unconfirmed job (a duplicate at worst)."""

    def __init__(self, urls, queue, reply_to, ids, seconds):
        super().__init__(daemon=True, name="producer")
        self.urls, self.queue, self.reply_to, self.ids = urls, queue, reply_to, ids
        self.seconds = seconds
        self.stop = threading.Event()
        self.confirmed = 0
        self.errors = collections.Counter()
        self.error = None

    def run(self):
        conn, k = None, 0
        t0 = time.monotonic()
        try:
            while self.confirmed < len(self.ids) and not self.stop.is_set():
                try:
                    if conn is None or not conn.is_open:
                        conn = pika.BlockingConnection(
                            pika.URLParameters(self.urls[k % len(self.urls)]))
                        ch = conn.channel()
                        ch.confirm_delivery()
                    due = t0 + self.confirmed * self.seconds / len(self.ids)
                    if time.monotonic() < due:
                        conn.sleep(min(0.2, due - time.monotonic()))
                        continue
                    jid = self.ids[self.confirmed]
                    ch.basic_publish("", self.queue, json.dumps({"id": jid}), pika.BasicProperties(
                        content_type="application/json", delivery_mode=2, message_id=jid,
                        correlation_id=jid, reply_to=self.reply_to), mandatory=True)
                    self.confirmed += 1
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as e:
                    self.errors[type(e).__name__] += 1  # the channel is fine: again
                    time.sleep(0.1)
                except Exception as e:  # the node went away (or is booting): next one
                    self.errors[type(e).__name__] += 1
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn, k = None, k + 1
                    time.sleep(0.2)
        except Exception as e:  # reported by the test
            self.error = repr(e)
        finally:
            try:
                conn.close()
            except Exception:
                pass


class Results(threading.Thread):
    """Consumes the results queue with manual acks, moving to the next URL
    whenever its node goes away."""

    def __init__(self, urls, queue):
        super().__init__(daemon=True, name="results")
        self.urls, self.queue = urls, queue
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.by_id = collections.defaultdict(list)
        self.count = 0
        self.last_at = time.monotonic()
        self.moves = 0

    def _on(self, ch, method, props, body):
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {"unreadable": body[:200].decode(errors="replace")}
        with self.lock:
            self.by_id[doc.get("id") or props.correlation_id].append(doc)
            self.count += 1
            self.last_at = time.monotonic()
        ch.basic_ack(method.delivery_tag)

    def run(self):
        k = 0
        while not self.stop.is_set():
            conn = None
            try:
                conn = pika.BlockingConnection(pika.URLParameters(self.urls[k % len(self.urls)]))
                ch = conn.channel()
                ch.basic_qos(prefetch_count=500)
                ch.basic_consume(self.queue, self._on)
                while not self.stop.is_set():
                    conn.process_data_events(time_limit=0.2)
            except Exception:
                k += 1
                self.moves += 1
                time.sleep(0.2)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass

    def snapshot(self):
        with self.lock:
            return {k: list(v) for k, v in self.by_id.items()}


def worker_nodes(cluster, daemons, live=None):
    """{daemon name: {worker pid: index of the node its AMQP connection is on}}
    for the daemons' workers, found by the connection_name they give the
    broker (c2a-worker@<host>:<pid>); a worker without a connection is left out."""
    pids = {w["pid"]: d.name for d in daemons for w in d.status()["workers"]}
    out = {d.name: {} for d in daemons}
    for c in cluster.connections(live):
        name = c["connection_name"] or ""
        tail = name.rsplit(":", 1)[-1]
        if name.startswith("c2a-worker@") and tail.isdigit():  # not the ...:master probe
            pid = int(tail)
            if pid in pids:
                out[pids[pid]][pid] = c["node"]
    return out


def all_connected(d):
    ws = d.status()["workers"]
    return bool(ws) and all(w["broker_connected"] for w in ws)


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d) \[(\d+)\] worker \w+: "
                      r"amqp: "
                      r"(connection lost|connected to)")


def reconnect_gaps(log):
    """Seconds from each worker's 'connection lost' to its next 'connected to',
    by the daemon's own clock (its log)."""
    lost, gaps = {}, []
    for m in map(LOG_LINE.match, log.splitlines()):
        if not m:
            continue
        t = datetime.datetime.fromisoformat(m.group(1)).timestamp()
        if m.group(3) == "connection lost":
            lost.setdefault(m.group(2), t)
        elif m.group(2) in lost:
            gaps.append(round(t - lost.pop(m.group(2)), 2))
    return gaps


# The sanitizer pass has the workers' reconnections under ASan from
# test_fault_injection.py and test_broker_restart.py; a cluster adds the
# broker's side, not ours, and a minute of CI.
@pytest.mark.skipif(SANITIZE, reason="reconnections under ASan: test_fault_injection.py")
def test_cluster_failover(cluster, daemon, tmp_path):
    t_start = time.monotonic()
    q = queue_name(tmp_path, "jobs")
    results_q = q + ".results"
    urls = cluster.urls
    # The results queue is a quorum queue as well: the daemons publish to it
    # through whichever node they are on, and it must outlive a node.
    conn = pika.BlockingConnection(pika.URLParameters(urls[2]))
    conn.channel().queue_declare(results_q, durable=True, arguments={"x-queue-type": "quorum"})
    conn.close()
    # builtin:noop answers every job at once, so the test measures the broker
    # path (consume, confirmed publish, ack) and not the synthesizer, and its
    # length is the producer's, whatever the machine's speed.
    sections = dict(workers={"count": "2", "app": "builtin:noop"},
                    broker={"queues": q, "queue_type": "quorum", "prefetch": "4",
                            "heartbeat": "5"})
    a = failover_daemon(daemon, "a", [urls[0], urls[1], urls[2]],
                        output={"dir": str(tmp_path / "audio-a")}, **sections)
    b = failover_daemon(daemon, "b", [urls[1], urls[2], urls[0]],
                        output={"dir": str(tmp_path / "audio-b")}, **sections)
    a.start()
    b.start()
    info = cluster.queues()
    assert info[q]["type"] == "quorum" and len(info[q]["members"]) == 3, info[q]
    assert info[q + ".dead"]["type"] == "quorum", info[q + ".dead"]
    leaders = {name: cluster.index_of_node(info[name]["leader"]) for name in (q, results_q)}

    ids = [f"c{i:05d}" for i in range(JOBS)]
    results = Results([urls[2], urls[1], urls[0]], results_q)
    producer = Producer([urls[1], urls[2], urls[0]], q, results_q, ids, PUBLISH_SECONDS)
    results.start()
    producer.start()
    report = []
    try:
        wait_for(lambda: results.count >= JOBS // 5, timeout=PUBLISH_SECONDS + 60,
                 interval=0.1, what=f"{JOBS // 5} results before the stop")
        on = worker_nodes(cluster, (a, b))
        assert len(on["a"]) == 2, f"daemon a's workers not found among the connections: {on}"
        victim = next(iter(on["a"].values()))
        report.append(f"before the stop: workers on nodes {on}, queue leaders on nodes "
                      f"{leaders}; {results.count} results")

        # Stop the node daemon a is on. The clock runs from the stop command; the
        # daemons are watched through /status (cheap: rabbitmqctl takes a second
        # or more a call, which would blur the measure), where the stopped node
        # can hold no connection once it is down; rabbitmqctl confirms after.
        seen_down = set()
        stopper = threading.Thread(target=cluster.stop, args=(victim,), daemon=True)
        t_stop = time.monotonic()
        stopper.start()
        while stopper.is_alive():
            seen_down |= {d.name for d in (a, b) if not all_connected(d)}
            time.sleep(0.05)
        stopper.join()
        t_down = time.monotonic() - t_stop
        assert not cluster.running(victim)

        def reconnected():
            down = {d.name for d in (a, b) if not all_connected(d)}
            seen_down.update(down)
            return not down
        wait_for(reconnected, timeout=max(0.1, RECONNECT_S - (time.monotonic() - t_stop)),
                 interval=0.05, what=f"both daemons connected {RECONNECT_S}s after node "
                                     f"{victim} was stopped")
        t_back = time.monotonic() - t_stop
        live = next(i for i in range(len(cluster)) if i != victim)

        def listed():
            o = worker_nodes(cluster, (a, b), live)
            return all(len(o[d.name]) == len(d.status()["workers"]) for d in (a, b)) and o
        on = wait_for(listed, timeout=30, interval=0.5, what="every worker's connection listed")
        assert victim not in on["a"].values() and victim not in on["b"].values(), on
        report.append(f"node {victim} stopped in {t_down:.1f}s; both daemons connected "
                      f"{t_back:.1f}s after the stop, workers on nodes {on}; seen "
                      f"disconnected: {sorted(seen_down)}; {results.count} results")
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - t_stop)))
        t = time.monotonic()
        cluster.start(victim)
        report.append(f"node {victim} started and rejoined in {time.monotonic() - t:.1f}s; "
                      f"{results.count} results")

        # Every id answered: as long as results keep coming.
        producer.join(timeout=PUBLISH_SECONDS + 120)
        assert not producer.is_alive(), f"producer stuck at {producer.confirmed}/{JOBS}"
        assert producer.error is None, producer.error
        while not set(ids) <= set(results.snapshot()):
            assert time.monotonic() - results.last_at < STALL_S, \
                f"no result for {STALL_S}s; {len(results.snapshot())} of {JOBS} ids answered"
            time.sleep(0.2)
        # Nothing left behind: the work queue drained (acks trail the results a
        # little), nothing dead-lettered, and the restarted node is a member of
        # the work queue's quorum again.
        table = wait_for(lambda: (lambda t: t[q]["messages_ready"] == 0 and
                                  t[q]["messages_unacknowledged"] == 0 and
                                  len(t[q]["online"]) == 3 and t)(cluster.queues()),
                         timeout=30, interval=0.5, what="the work queue drained, 3 members")
        dead = table[q + ".dead"]
        assert dead["messages_ready"] == 0 and dead["messages_unacknowledged"] == 0, dead
        for d in (a, b):
            st = d.status()
            assert st["broker"]["connected"] and st["totals"]["jobs_dead"] == 0, st["totals"]
            assert st["totals"]["worker_restarts"] == 0, st["totals"]
    finally:
        producer.stop.set()
        results.stop.set()
        producer.join(timeout=10)
        results.join(timeout=10)

    by_id = results.snapshot()
    missing = [j for j in ids if j not in by_id]
    unknown = sorted(set(by_id) - set(ids))
    not_ok = [(j, r) for j, rs in by_id.items() for r in rs if r.get("status") != "ok"]
    total = sum(len(v) for v in by_id.values())
    report.append(f"reconnections by the daemons' logs (s): a {reconnect_gaps(a.log())}, "
                  f"b {reconnect_gaps(b.log())}")
    report.append(f"{JOBS} jobs, {total} results ({total - len(by_id)} duplicates); producer "
                  f"errors {dict(producer.errors)}; results consumer moved {results.moves} "
                  f"times; elapsed {time.monotonic() - t_start:.1f}s")
    print("\n" + "\n".join(report))
    assert not missing, f"{len(missing)} jobs without a result: {missing[:20]}"
    assert not not_ok, f"{len(not_ok)} results not ok: {not_ok[:5]}"
    assert not unknown, f"results for unknown ids: {unknown[:10]}"
