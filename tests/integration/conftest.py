"""Fixtures that run the real c2a-worker binary: a config in a temporary
directory, the daemon started in the foreground (or with -D), and helpers that
look at it only from outside: /status, the pidfile, the log, /proc."""

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("C2A_BIN", str(ROOT / "build" / "c2a-worker"))
TEST_APPS = os.environ.get("C2A_TEST_APPS", str(ROOT / "build" / "tests"))


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

    def start(self, *args, wait_workers=True, env=None):
        self.proc = subprocess.Popen(
            [BIN, "-c", str(self.conf), *args], env=dict(os.environ, **(env or {})),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.master_pid = self.proc.pid
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
        if self.proc:
            self.proc.stdout.close()
            self.proc.stderr.close()
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


@pytest.fixture(autouse=True)
def sanitizer_reports(tmp_path, monkeypatch):
    """In a sanitizer build, every process the test starts (master, workers,
    re-executed masters) writes its ASan/UBSan/LSan report to a file here; a test
    that leaves one fails, with the report."""
    prefix = tmp_path / "sanitizer"
    monkeypatch.setenv("ASAN_OPTIONS", f"log_path={prefix}:detect_leaks=1")
    monkeypatch.setenv("UBSAN_OPTIONS", f"log_path={prefix}:print_stacktrace=1")
    yield
    reports = sorted(tmp_path.glob("sanitizer.*"))
    if reports:
        text = "\n".join(f"== {p.name}\n{p.read_text()[:4000]}" for p in reports)
        pytest.fail(f"sanitizer reports:\n{text}")


SFINFO = str(Path(TEST_APPS) / "sfinfo")
BROKER = "amqp://guest:guest@127.0.0.1:5672/%2f"


def sfinfo(path):
    """(rate, frames, channels, [rms per 50 ms]) of an audio file, decoded by libsndfile."""
    out = subprocess.run([SFINFO, str(path)], capture_output=True, text=True, check=True).stdout
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

        def on_result(ch, method, props, body):
            doc = json.loads(body)
            self.result_list.append((props.correlation_id, doc))
            self.results[props.correlation_id] = doc

        self.ch.basic_consume(self.reply_to, on_result, auto_ack=True)

    def publish(self, queue, job, correlation_id=None, message_id=None, raw=None):
        body = raw if raw is not None else json.dumps(job)
        props = self.pika.BasicProperties(
            reply_to=self.reply_to, correlation_id=correlation_id or (job or {}).get("id"),
            message_id=message_id, content_type="application/json", delivery_mode=2)
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
