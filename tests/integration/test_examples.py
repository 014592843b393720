"""The example producers in examples/ (what README's queue contract tells
another program to do) submit a job to the real daemon and get its result."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BROKER, ROOT, queue_name

EXAMPLES = ROOT / "examples"


def check_result(out, daemon_tmp):
    res = json.loads(out)
    assert res["status"] == "ok", res
    assert res["path"].startswith(str(daemon_tmp / "audio")) and res["path"].endswith(".ogg")
    assert os.path.getsize(res["path"]) == res["bytes"] > 0
    return res


def test_python_producer(daemon):
    d = daemon().start()
    r = subprocess.run([sys.executable, str(EXAMPLES / "python" / "submit.py"), "--url", BROKER,
                        "--queue", queue_name(d.tmp, d.name), "Hello from a Python producer."],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    check_result(r.stdout, d.tmp)
    # A queue no worker declared is an error at once, not a lost job.
    r = subprocess.run([sys.executable, str(EXAMPLES / "python" / "submit.py"), "--url", BROKER,
                        "--queue", "no-such-queue-c2a", "x"],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode != 0 and "NOT_FOUND" in r.stderr


@pytest.mark.skipif(not shutil.which("node") or not shutil.which("npm"),
                    reason="Node.js and npm are not installed")
def test_node_producer(daemon):
    node = EXAMPLES / "node"
    if not (node / "node_modules" / "amqplib").exists():
        # amqplib from the npm registry, at the version package-lock.json pins.
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=node,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    d = daemon().start()
    r = subprocess.run(["node", str(node / "submit.js"), "--url", BROKER,
                        "--queue", queue_name(d.tmp, d.name), "Hello from a Node producer."],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    check_result(r.stdout, d.tmp)
