"""The status page: charts of the last 15 minutes drawn by the master as inline
SVG (no script), and the recent failures; checked by parsing the HTML and by
having headless Chromium (Debian's chromium) render it."""

import html.parser
import os
import shutil
import subprocess

import pytest
import requests

from conftest import wait_for


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.svgs, self.series, self.dots, self.scripts = [], {}, {}, 0
        self.failures, self._row, self._in_failures, self._cell = [], None, False, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svgs.append(a)
        elif tag == "polyline":
            pts = [tuple(map(float, p.split(","))) for p in a["points"].split()]
            self.series.setdefault(a["data-series"], []).extend(pts)
        elif tag == "circle":
            self.dots[a["data-series"]] = (float(a["cx"]), float(a["cy"]))
        elif tag == "script":
            self.scripts += 1
        elif tag == "table" and a.get("id") == "failures":
            self._in_failures = True
        elif tag == "tr" and self._in_failures:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_failures = False
        elif tag == "td" and self._row is not None and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row:
            self.failures.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def page(d):
    r = requests.get(d.url + "/", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    p = Page()
    p.feed(r.text)
    return p


def test_charts_and_recent_failures(daemon, broker, tmp_path):
    from test_pipeline import TEXT, queue_of
    d = daemon().start()
    q = queue_of(d)
    for i in range(8):
        broker.publish(q, {"id": f"ok{i}", "text": TEXT})
    broker.publish(q, {"id": "no-such-voice", "text": "x", "voice": "nope"})
    broker.wait_results(9)

    def drawn():
        p = page(d)
        return all(p.series.get(s) for s in ("ok", "failed", "p50", "p99")) and p
    p = wait_for(drawn, timeout=10, what="every series drawn")
    assert len(p.svgs) == 3 and p.scripts == 0
    assert all(s["role"] == "img" for s in p.svgs)
    # Inside the plot area (x from 46 to 346, y from 8 to 118), at the right
    # end: the interval that just ended, with a dot on its value.
    for name, pts in p.series.items():
        assert all(46 <= x <= 346.5 and 8 <= y <= 118 for x, y in pts), (name, pts)
        assert pts[-1][0] > 330 and p.dots[name] == pts[-1]
    # Failures were nonzero: the line is above the baseline; p99 >= p50.
    assert p.series["failed"][-1][1] < 118
    assert p.series["p99"][-1][1] <= p.series["p50"][-1][1]

    [row] = p.failures
    assert row[1:5] == [q, "no-such-voice", "dead-lettered", "unknown_voice"], row
    st = requests.get(d.url + "/status?full", timeout=5).json()
    [f] = st["recent_failures"]
    assert (f["id"], f["queue"], f["outcome"], f["code"]) == ("no-such-voice", q, "failed",
                                                              "unknown_voice")
    assert "nope" in f["message"]

    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium not installed")
    from PIL import Image
    png = tmp_path / "page.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
                    "--hide-scrollbars", "--window-size=1200,1000", f"--screenshot={png}",
                    d.url + "/"], capture_output=True, timeout=60, check=True)
    img = Image.open(png).convert("RGB")
    assert img.size == (1200, 1000)
    px = img.load()
    # The plot areas (their #fafafa background), and in those rows only (the
    # legends are below), the series painted: ok green, failures red, p50 blue.
    def plot_row(y):  # a long run of the plot's background
        run = 0
        for x in range(img.size[0]):
            run = run + 1 if px[x, y] == (250, 250, 250) else 0
            if run > 150:
                return True
        return False
    rows = [y for y in range(img.size[1]) if plot_row(y)]
    assert rows and rows[-1] - rows[0] < 130, rows
    painted = {px[x, y] for y in range(rows[0], rows[-1] + 1) for x in range(img.size[0])}
    for rgb in ((0x17, 0x61, 0x17), (0xb0, 0x00, 0x20), (0x1f, 0x5f, 0xa8)):
        assert any(all(abs(c - w) <= 12 for c, w in zip(p_, rgb)) for p_ in painted), rgb
