"""Fixtures that run the real c2a-worker binary: a config in a temporary
directory, the daemon started in the foreground (or with -D), and helpers that
look at it only from outside: /status, the pidfile, the log, /proc."""

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("C2A_BIN", str(ROOT / "build" / "c2a-worker"))
TEST_APPS = os.environ.get("C2A_TEST_APPS", str(ROOT / "build" / "tests"))
SANITIZE = os.environ.get("C2A_SANITIZE") == "1"


# Queue names carry a token of this pytest run: the broker outlives a run (and the
# normal and sanitizer passes share it), and durable queues keep their messages.
RUN = uuid.uuid4().hex[:8]


def queue_name(tmp, name):
    return f"t.{RUN}.{tmp.name}.{name}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (requests.RequestException, OSError, ValueError, KeyError):
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d))
    return sorted(out)


def base_config(tmp, port, name="c2a", **sections):
    """A config with test-friendly defaults; sections override keys."""
    conf = {
        "master": {
            "control": f"127.0.0.1:{port}",
            "pidfile": str(tmp / f"{name}.pid"),
            "log_file": str(tmp / f"{name}.log"),
            "log_level": "debug",
        },
        "workers": {"count": "2", "timeout": "5", "graceful_timeout": "5"},
        # every test has queues of its own on the shared broker
        "broker": {"queues": queue_name(tmp, name)},
        "output": {"dir": str(tmp / "audio")},
    }
    for sec, kv in sections.items():
        conf.setdefault(sec, {}).update(kv)
    lines = []
    for sec, kv in conf.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {v}" for k, v in kv.items()]
        lines.append("")
    return "\n".join(lines)


# Sanitizer reports. Where a gcc 12 ASan+UBSan build writes them (found by
# experiment with a small program; test_sanitizer_watch.py keeps it true here):
#  - ASan and LSan honour log_path: <prefix>.<pid>, opened when a report is
#    written, so also by a process whose fd 2 is /dev/null, by forked children,
#    and by workers that dropped privileges (the directory lets them create files).
#  - UBSan ignores log_path (GCC PR 94328: libasan's __sanitizer_set_report_path
#    serves both runtimes) and writes to fd 2. So every program of ours gets a
#    file as stdout and stderr, never a pipe nobody reads (UBSan's report would
#    be lost, and a full pipe blocks the daemon), and keepstderr.so keeps that
#    file as fd 2 after a -D master detaches (it would be /dev/null).
#  - halt_on_error and abort_on_error: the process dies of SIGABRT after its
#    first report, so a bad worker is also seen by the master as a crash.
# The patterns match the first line of every kind of report.
SANITIZER_REPORT = re.compile(
    r"runtime error:|ERROR: \w*Sanitizer|SUMMARY: \w*Sanitizer|\w*Sanitizer:DEADLYSIGNAL"
    r"|Sanitizer has encountered a fatal error|Sanitizer CHECK failed"
    r"|ERROR: Can't open file|runtime does not come first")
KEEPSTDERR = Path(TEST_APPS) / "keepstderr.so"
_watch = None  # the running test's SanitizerWatch


class SanitizerWatch:
    """Everywhere one test's processes may leave a sanitizer report: the log_path
    directory and the files that are their stderr."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.dir = Path(tempfile.mkdtemp(prefix="c2a-san-"))
        os.chmod(self.dir, 0o1777)  # for workers running as another user
        self.prefix = self.dir / "report"
        self.outputs = []
        self.seen = {}  # path -> bytes of it already looked at
        self.count = itertools.count(1)

    def options(self):
        """ASAN_OPTIONS and UBSAN_OPTIONS for every process the test starts."""
        common = f"log_path={self.prefix}:halt_on_error=1:abort_on_error=1"
        # keepstderr.so is preloaded before libasan; it displaces nothing of ASan's.
        return {"ASAN_OPTIONS": f"{common}:detect_leaks=1:verify_asan_link_order=0",
                "UBSAN_OPTIONS": f"{common}:print_stacktrace=1"}

    def env(self, extra=None):
        """The environment for a program of ours (os.environ has the options)."""
        env = dict(os.environ, **(extra or {}))
        if SANITIZE:
            assert KEEPSTDERR.exists(), f"{KEEPSTDERR} is built by 'make integration'"
            env["LD_PRELOAD"] = " ".join(filter(None, [str(KEEPSTDERR), env.get("LD_PRELOAD")]))
        return env

    def output(self, name):
        """A new file to be some process's stderr, looked at by check()."""
        path = self.tmp / f"{name}.{next(self.count)}.stderr"
        self.outputs.append(path)
        return path

    def take(self):
        """Reports not returned before, as [(file name, text)]: every file of the
        log_path directory that is new or has grown, whole (one may be read while
        it is written); of a stderr file, what it gained from the line where a
        report starts."""
        found = []
        for path in sorted(self.dir.iterdir()) + self.outputs:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            start, self.seen[path] = self.seen.get(path, 0), len(data)
            if path.parent == self.dir:
                if len(data) > start:
                    found.append((path.name, data.decode(errors="replace")))
                continue
            text = data[start:].decode(errors="replace")
            m = SANITIZER_REPORT.search(text)
            if m:
                found.append((path.name, text[text.rfind("\n", 0, m.start()) + 1:]))
        return found

    def check(self):
        """Fail with the text of any report not seen before."""
        found = self.take()
        if found:
            pytest.fail(f"sanitizer reports (whole in {self.tmp}):\n" + "\n".join(
                f"== {name}\n{text[:6000]}" for name, text in found), pytrace=False)

    def close(self):
        """Move the log_path files next to the test's other files."""
        for path in self.dir.iterdir():
            shutil.move(path, self.tmp / f"sanitizer-{path.name}")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def sanitizer_reports(tmp_path, monkeypatch):
    """Every process of ours that the test starts (master, workers and what they
    fork, re-executed and daemonized masters, c2actl, tools) leaves its ASan,
    UBSan or LSan report where this looks; a test that leaves one fails, with it.
    Requested by the daemon fixture, so it looks after the daemons have stopped
    (LSan reports at exit)."""
    global _watch
    w = SanitizerWatch(tmp_path)
    for k, v in w.options().items():
        monkeypatch.setenv(k, v)
    _watch = w
    try:
        yield w
    finally:
        _watch = None
        try:
            w.check()
        finally:
            w.close()


def run(argv, timeout=60, env=None, check=False):
    """subprocess.run(argv, capture_output=True, text=True) for a program of ours
    (c2a-worker -t or -D, c2actl, sfinfo, the init script): with the sanitizer
    environment, output through files (a -D master keeps the stderr it is given,
    and a pipe would not reach its end before the daemon does), and its stderr
    checked for reports now and again when the test ends."""
    w = _watch
    err = w.output(Path(argv[0]).name)
    with tempfile.TemporaryFile() as out, open(err, "wb") as errf:
        r = subprocess.run(argv, stdout=out, stderr=errf, env=w.env(env), timeout=timeout)
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    r = subprocess.CompletedProcess(argv, r.returncode, stdout,
                                    err.read_bytes().decode(errors="replace"))
    w.check()
    if check:
        r.check_returncode()
    return r


class Daemon:
    def __init__(self, tmp, name="c2a", **sections):
        self.tmp = tmp
        self.name = name
        self.port = free_port()
        self.conf = tmp / f"{name}.conf"
        self.pidfile = tmp / f"{name}.pid"
        self.logfile = tmp / f"{name}.log"
        self.sections = sections
        self.write_config(**sections)
        self.proc = None
        self.master_pid = None
        self.adopted = []  # masters started by ours (USR2) that the fixture must stop

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, text=None, **sections):
        if text is None:
            text = base_config(self.tmp, self.port, self.name, **sections)
        self.conf.write_text(text)

    def spawn(self, argv=None, env=None):
        """Start a master (argv: the command, by default ours with the config) and
        return at once. Its stdout and stderr go to a file that is checked for
        sanitizer reports."""
        with open(_watch.output(self.name), "wb") as f:
            self.proc = subprocess.Popen(argv or [BIN, "-c", str(self.conf)],
                                         env=_watch.env(env), stdout=f, stderr=f,
                                         start_new_session=True)
        self.master_pid = self.proc.pid
        return self.proc

    def start(self, *args, wait_workers=True, env=None):
        self.spawn([BIN, "-c", str(self.conf), *args], env=env)
        wait_for(lambda: self.status(), what="control socket")
        if wait_workers:
            self.wait_workers()
        return self

    def status(self, full=False):
        r = requests.get(self.url + "/status" + ("?full" if full else ""), timeout=5)
        r.raise_for_status()
        return r.json()

    def worker_pids(self):
        return sorted(w["pid"] for w in self.status()["workers"])

    def wait_workers(self, n=None, timeout=10, exclude=()):
        """Wait until n workers (default: the target) are idle and connected to the
        broker (so their queues exist), and none other remain."""
        def ok():
            st = self.status()
            want = st["workers_target"] if n is None else n
            ws = st["workers"]
            return (len(ws) == want and all(w["state"] == "idle" for w in ws)
                    and all(w["broker_connected"] for w in ws)
                    and not set(w["pid"] for w in ws) & set(exclude)
                    and sorted(w["pid"] for w in ws))
        return wait_for(ok, timeout, what="workers idle")

    def signal(self, sig, pid=None):
        os.kill(pid or self.master_pid, sig)

    def delete_queues(self):
        """Best effort: the test's work, dead-letter and delay queues."""
        q = queue_name(self.tmp, self.name)
        try:
            import pika
            conn = pika.BlockingConnection(pika.URLParameters(BROKER))
            ch = conn.channel()
            for name in [q, q + ".dead"] + [f"{q}.retry.{1000 * 2 ** k}" for k in range(9)]:
                ch.queue_delete(name)
            conn.close()
        except Exception:
            pass

    def log(self):
        return self.logfile.read_text() if self.logfile.exists() else ""

    def wait_exit(self, timeout=15):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            workers = children_of(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for w in workers:
                if alive(w):
                    os.kill(w, signal.SIGKILL)
        self.delete_queues()
        for pid in self.adopted:
            if alive(pid):
                workers = children_of(pid)
                os.kill(pid, signal.SIGTERM)
                try:
                    wait_for(lambda: not alive(pid), timeout=15, what="adopted master")
                except AssertionError:
                    os.kill(pid, signal.SIGKILL)
                for w in workers:
                    if alive(w):
                        os.kill(w, signal.SIGKILL)


@pytest.fixture
def daemon(tmp_path, sanitizer_reports):
    """Factory: daemon(**sections) -> a Daemon not yet started; all are stopped after."""
    made = []

    def make(name="c2a", **sections):
        d = Daemon(tmp_path, name, **sections)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture
def test_app():
    def path(lib, symbol):
        p = Path(TEST_APPS) / f"{lib}.so"
        assert p.exists(), f"{p} is built by 'make integration'"
        return f"{p}:{symbol}"
    return path


def parse_json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


SFINFO = str(Path(TEST_APPS) / "sfinfo")
BROKER = "amqp://guest:guest@127.0.0.1:5672/%2f"


def sfinfo(path):
    """(rate, frames, channels, [rms per 50 ms]) of an audio file, decoded by libsndfile."""
    out = run([SFINFO, str(path)], check=True).stdout
    rate, frames, channels, env = out.split()
    return int(rate), int(frames), int(channels), [float(x) for x in env.split(",")]


class Broker:
    """A pika producer with a private reply queue, talking to the real RabbitMQ."""

    def __init__(self):
        import pika
        self.pika = pika
        self.conn = pika.BlockingConnection(pika.URLParameters(BROKER))
        self.ch = self.conn.channel()
        self.reply_to = self.ch.queue_declare("", exclusive=True).method.queue
        self.results = {}
        self.result_list = []
        self.received_at = {}  # correlation id -> time.monotonic() of its result

        def on_result(ch, method, props, body):
            doc = json.loads(body)
            self.result_list.append((props.correlation_id, doc))
            self.results[props.correlation_id] = doc
            self.received_at[props.correlation_id] = time.monotonic()

        self.ch.basic_consume(self.reply_to, on_result, auto_ack=True)

    def publish(self, queue, job, correlation_id=None, message_id=None, raw=None,
                timestamp=None):
        body = raw if raw is not None else json.dumps(job)
        props = self.pika.BasicProperties(
            reply_to=self.reply_to, correlation_id=correlation_id or (job or {}).get("id"),
            message_id=message_id, content_type="application/json", delivery_mode=2,
            timestamp=timestamp)
        self.ch.basic_publish("", queue, body, props)

    def wait_results(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.result_list) < n and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.2)
        return self.results

    def pump(self, seconds):
        self.conn.process_data_events(time_limit=seconds)

    def get_all(self, queue):
        """Drain a queue: [(properties, body)]."""
        out = []
        while True:
            method, props, body = self.ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))

    def depth(self, queue):
        return self.ch.queue_declare(queue, passive=True).method.message_count

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


@pytest.fixture
def broker():
    b = Broker()
    yield b
    b.close()


@pytest.fixture
def web():
    from webserver import Web
    w = Web()
    yield w
    w.close()


@pytest.fixture
def private_broker(tmp_path):
    """A RabbitMQ node of the test's own (private_broker.py), for tests that stop
    and start their broker: the shared one on 5672 is never touched."""
    from private_broker import PrivateBroker, available
    if not available():
        pytest.skip("needs rabbitmq-server")
    rb = PrivateBroker(tmp_path / "rabbitmq")
    try:
        rb.start()
        yield rb
    finally:
        rb.close()
