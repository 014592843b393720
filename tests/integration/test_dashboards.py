"""contrib/: the Grafana dashboard and the Prometheus alerting rules are built
on names the daemon really exports, and promtool (Debian's prometheus) accepts
every query they hold."""

import json
import os
import re
import shutil
import subprocess

import pytest
import requests

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DASHBOARD = os.path.join(ROOT, "contrib", "grafana", "c2a-worker.json")
ALERTS = os.path.join(ROOT, "contrib", "prometheus", "c2a-worker-alerts.yml")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(not PROMTOOL, reason="promtool (Debian: prometheus)")
NAME = re.compile(r"\b((?:c2a|process)_[a-z_]+)\b")


def exported(d, broker):
    from test_pipeline import TEXT, queue_of
    broker.publish(queue_of(d), {"id": "one", "text": TEXT})
    broker.wait_results(1)
    text = requests.get(d.url + "/metrics", timeout=5).text
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def family(name):
    return re.sub(r"_(bucket|sum|count)$", "", name)


def dashboard_exprs():
    doc = json.load(open(DASHBOARD))
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


@needs_promtool
def test_dashboard_and_alerts_use_real_names_and_valid_queries(daemon, broker, tmp_path):
    d = daemon().start()
    names = exported(d, broker)
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    used = {family(n) for e in exprs for n in NAME.findall(e)}
    assert used and used <= names, used - names
    # Every stage the daemon times and every job family appears on a panel.
    assert {"c2a_jobs_total", "c2a_job_errors_total", "c2a_job_duration_seconds",
            "c2a_job_stage_seconds", "c2a_queue_messages", "c2a_jobs_in_hand",
            "process_cpu_seconds_total"} <= used
    alerts = open(ALERTS).read()
    used = {family(n) for n in NAME.findall(alerts)}
    assert used <= names, used - names

    # promtool checks PromQL in rule files: each dashboard query, its Grafana
    # variables given values, as a recording rule.
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        e = (e.replace("$__rate_interval", "5m").replace('"$queue"', '".*"')
             .replace('"$instance"', '".*"').replace('"$job"', '".*"'))
        assert "$" not in e, e
        rules += [f"      - record: c2a:dashboard_{i}", f"        expr: {json.dumps(e)}"]
    f = tmp_path / "dashboard-rules.yml"
    f.write_text("\n".join(rules) + "\n")
    for path in (f, ALERTS):
        out = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stdout + out.stderr
