# SPDX-License-Identifier: MIT
"""The /status page of the real binary over TLS: sources with their health and last error,
series with their value history as sparklines, the server-side and client-side filters,
HTML escaping of what sources send, and the same authorization as the API. The page is also
loaded in headless Chromium (Debian's chromium), which checks the DOM after the inline
script ran and takes a screenshot into the test artifacts (SM_TEST_ARTIFACTS, else
<build dir>/test-artifacts)."""

import base64
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kube_standin import KubeStandin
from smtest import (BINARY, CLEAN_ENV, SLOW, Server, free_port, redis_source, server_config,
                    wait_until)

CHROMIUM = Path("/usr/bin/chromium")
EVIL = "<script>alert(1)</script>"
PY = "/usr/bin/python3"


# ---------------------------------------------------------------------------------------------
# Reading the page


class Page(HTMLParser):
    """The parts of the page the tests look at: source rows, series rows (cells' text, the
    sparkline), the filter input, the #shown count, and every element seen."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.sources, self.series, self.tags = [], [], []
        self.filter_value = None
        self.shown = None
        self._row = None
        self._cell = None
        self._in_title = False
        self._in_shown = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and a.get("class") in ("source", "series"):
            self._row = {"attrs": a, "cells": [], "points": None, "title": "", "polyline": None}
            (self.sources if a["class"] == "source" else self.series).append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "svg" and self._row is not None:
            self._row["points"] = int(a["data-points"])
        elif tag == "polyline" and self._row is not None:
            self._row["polyline"] = a.get("points")
        elif tag == "title" and self._row is not None:
            self._in_title = True
        elif tag == "input" and a.get("id") == "filter":
            self.filter_value = a.get("value")
        elif tag == "span" and a.get("id") == "shown":
            self._in_shown = True

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row["cells"].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "title":
            self._in_title = False
        elif tag == "span":
            self._in_shown = False

    def handle_data(self, data):
        if self._in_title:
            self._row["title"] += data
        elif self._cell is not None:
            self._cell.append(data)
        if self._in_shown:
            self.shown = int(data)

    def source(self, name):
        rows = [r for r in self.sources if r["attrs"]["data-source"] == name]
        assert len(rows) == 1, (name, self.sources)
        return rows[0]

    def series_row(self, labels):
        rows = [r for r in self.series if r["cells"][2] == labels]
        assert len(rows) == 1, (labels, self.series)
        return rows[0]


SOURCE_COLS = ("name", "type", "health", "last_success", "ok", "failed", "series", "error")


def source_cells(row):
    return dict(zip(SOURCE_COLS, row["cells"]))


def status_page(srv, query=""):
    r = srv.get("/status" + query, headers={"Accept": "text/html"})
    assert r.status == 200, r
    assert r.content_type == "text/html; charset=utf-8", r
    text = r.body.decode("utf-8")
    assert text.startswith("<!DOCTYPE html>"), text[:200]
    return text, Page(text)


def title_numbers(title):
    """'min 1, max 4, last 4; 4 points over 3s' -> (1.0, 4.0, 4.0)."""
    m = re.match(r"min (\S+), max (\S+), last (\S+); (\d+) points? over ", title)
    assert m, title
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


# ---------------------------------------------------------------------------------------------
# A server with a working Redis source, a dead one, and a scrape source whose target answers
# markup (so its error carries it)


@pytest.fixture(scope="module")
def evil_target():
    """An exporter that serves a line of HTML: the scrape round fails quoting it."""
    port = free_port()
    body = f"ok_metric 1\n{EVIL} 2\n"
    proc = subprocess.Popen(
        [PY, "-c", "import http.server as h\n"
         "class H(h.BaseHTTPRequestHandler):\n"
         "  def log_message(self, *a): pass\n"
         "  def do_GET(self):\n"
         f"    b = {body!r}.encode()\n"
         "    self.send_response(200); self.send_header('Content-Length', str(len(b)))\n"
         "    self.end_headers(); self.wfile.write(b)\n"
         f"h.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"],
        env=CLEAN_ENV, stdin=subprocess.DEVNULL)
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True,
               10, what="the markup exporter")
    yield f"http://127.0.0.1:{port}/metrics"
    proc.kill()
    proc.wait()


def sources(redis_server, redis_db, evil_url):
    dead = redis_source(redis_server, redis_db, name="gone",
                        queues=[{"metric": "gone_queue_length", "keys": ["queue:*"]}])
    dead["address"] = f"127.0.0.1:{free_port()}"  # nothing listens there
    evil = {"name": "evil", "type": "scrape", "interval": "1s", "timeout": "800ms",
            "max_age": "5s", "targets": [evil_url],
            "gauges": [{"metric": "ok_gauge", "gauge": "ok_metric"}]}
    return [redis_source(redis_server, redis_db, name="jobs"), dead, evil]


@pytest.fixture(scope="module")
def srv(module_server_factory, redis_server, redis_db, evil_target):
    r = redis_server.client(redis_db)
    r.delete("queue:emails", "queue:sms")
    r.rpush("queue:emails", *[f"e{i}" for i in range(3)])
    r.rpush("queue:sms", "s0")
    s = module_server_factory(sources(redis_server, redis_db, evil_target))
    wait_until(lambda: len(status_page(s)[1].series) == 2, 10, what="both queues on /status")
    return s


def test_sources_and_their_health(srv):
    # A round of a loaded machine may time out now and then: wait for a good one.
    page = wait_until(lambda: (lambda p: p if p.source("jobs")["attrs"]["data-health"] == "ok"
                               else None)(status_page(srv)[1]), 5, what="jobs healthy")
    assert [r["attrs"]["data-source"] for r in page.sources] == ["jobs", "gone", "evil"]

    jobs = source_cells(page.source("jobs"))
    assert jobs["type"] == "redis" and jobs["health"] == "ok", jobs
    assert jobs["last_success"].endswith(" ago"), jobs
    assert int(jobs["ok"]) >= 1 and int(jobs["failed"]) >= 0 and jobs["series"] == "2", jobs
    assert jobs["error"] == "", jobs

    gone = source_cells(page.source("gone"))
    assert page.source("gone")["attrs"]["data-health"] == "failing"
    assert gone["health"] == "failing" and gone["last_success"] == "never", gone
    assert gone["ok"] == "0" and int(gone["failed"]) >= 1 and gone["series"] == "0", gone
    assert "refused" in gone["error"].lower() or "connect" in gone["error"].lower(), gone

    evil = source_cells(page.source("evil"))
    assert evil["type"] == "scrape" and evil["health"] == "failing", evil
    assert "<script>alert(1)" in evil["error"], evil  # the text, once unescaped


def test_markup_from_sources_is_escaped(srv):
    text, page = status_page(srv)
    assert "&lt;script&gt;alert(1)" in text
    assert "<script>alert" not in text
    # The page's own script is the only script element.
    assert page.tags.count("script") == 1, page.tags
    # A filter that tries to break out of the input's value attribute.
    text, page = status_page(srv, "?filter=%22%3E%3Cscript%3Ealert(2)%3C%2Fscript%3E")
    assert page.filter_value == '"><script>alert(2)</script>'
    assert "<script>alert(2)" not in text
    assert page.tags.count("script") == 1
    assert page.series == []


def test_history_accumulates_over_rounds(srv, redis_server, redis_db):
    r = redis_server.client(redis_db)
    _, page = status_page(srv)
    start = page.series_row("queue=emails")["points"]
    assert start >= 1
    # Grow the queue round after round; each new length is a point of its own.
    for n in range(4, 8):
        r.rpush("queue:emails", f"e{n - 1}")
        wait_until(lambda: status_page(srv)[1].series_row("queue=emails")["cells"][4] == str(n),
                   5, what=f"emails at {n}")
    row = wait_until(lambda: (lambda row: row if row["points"] >= start + 4 else None)(
        status_page(srv)[1].series_row("queue=emails")), 5, what="four more points")
    lo, hi, last = title_numbers(row["title"])
    assert (lo, hi, last) == (3.0, 7.0, 7.0), row["title"]
    pts = [tuple(map(float, p.split(","))) for p in row["polyline"].split()]
    assert len(pts) == row["points"]
    xs = [x for x, _ in pts]
    assert xs == sorted(xs) and xs[0] == 0.0 and xs[-1] == 120.0, pts
    # Highest value at the top: the last point (7) is the highest one drawn.
    assert pts[-1][1] == min(y for _, y in pts), pts
    # The other queue did not move: a flat line.
    sms = status_page(srv)[1].series_row("queue=sms")
    assert len({y for _, y in (p.split(",") for p in sms["polyline"].split())}) == 1, sms
    assert title_numbers(sms["title"]) == (1.0, 1.0, 1.0)


def test_server_side_filter(srv):
    _, page = status_page(srv, "?filter=emails")
    assert [r["cells"][2] for r in page.series] == ["queue=emails"]
    assert page.filter_value == "emails"
    assert page.shown == 1
    assert len(page.sources) == 3  # sources are not filtered
    # Source names and metric names match too.
    assert len(status_page(srv, "?filter=jobs")[1].series) == 2
    assert len(status_page(srv, "?filter=redis_queue_length")[1].series) == 2
    assert len(status_page(srv, "?filter=queue%3Dsms")[1].series) == 1
    page = status_page(srv, "?filter=nothing-like-this")[1]
    assert page.series == [] and page.shown == 0


def test_content_security_policy_names_exactly_the_pages_own_blocks(srv):
    r = srv.get("/status", headers={"Accept": "text/html"})
    assert r.status == 200, r
    csp = r.headers.get("content-security-policy")
    assert csp, r.headers
    directives = dict((d.split(" ", 1) + [""])[:2] for d in (x.strip() for x in csp.split(";")))
    assert directives["default-src"] == "'none'", csp
    assert directives["base-uri"] == "'none'" and directives["frame-ancestors"] == "'none'", csp
    text = r.body.decode("utf-8")
    for tag in ("style", "script"):
        blocks = re.findall(r"<%s>(.*?)</%s>" % (tag, tag), text, re.S)
        assert len(blocks) == 1, (tag, blocks)
        digest = base64.b64encode(hashlib.sha256(blocks[0].encode("utf-8")).digest()).decode()
        # exactly this block may run/apply, nothing inline besides it
        assert directives[tag + "-src"] == "'sha256-%s'" % digest, (tag, csp)
    # the JSON API answers carry no page policy
    r = srv.get("/apis/external.metrics.k8s.io/v1beta1")
    assert "content-security-policy" not in r.headers, r.headers


def test_head_and_other_methods(srv):
    r = srv.get("/status", method="HEAD")
    assert r.status == 200 and r.content_type == "text/html; charset=utf-8", r
    assert r.body == b""
    r = srv.get("/status", method="POST")
    assert r.status == 405, r


# ---------------------------------------------------------------------------------------------
# Headless Chromium


def artifacts_dir():
    d = Path(os.environ.get("SM_TEST_ARTIFACTS") or BINARY.parent / "test-artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def chromium(tmp_root):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (Debian: apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_root))

    def run(url, *args):
        cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--disable-background-networking", "--no-first-run",
               "--ignore-certificate-errors", f"--user-data-dir={profile}", *args, url]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=90 * SLOW,
                             env=dict(CLEAN_ENV, HOME=str(profile)), stdin=subprocess.DEVNULL)
        assert res.returncode == 0, (cmd, res.returncode, res.stderr[-3000:])
        return res.stdout

    yield run
    shutil.rmtree(profile, ignore_errors=True)


def rendered(chromium, srv, fragment=""):
    dom = chromium(f"https://127.0.0.1:{srv.port}/status{fragment}",
                   "--virtual-time-budget=2000", "--dump-dom")
    assert "scalemetrics status" in dom, dom[:2000]
    return Page(dom)


def test_chromium_renders_the_page(chromium, srv):
    page = rendered(chromium, srv)
    assert [r["attrs"]["data-source"] for r in page.sources] == ["jobs", "gone", "evil"]
    assert sorted(r["cells"][2] for r in page.series) == ["queue=emails", "queue=sms"]
    assert all("hidden" not in r["attrs"] for r in page.series)
    assert all(r["polyline"] for r in page.series)
    assert page.shown == 2
    # The escaped error reached the DOM as text, not as a script element.
    assert page.tags.count("script") == 1
    assert "<script>alert(1)" in source_cells(page.source("evil"))["error"]


def test_chromium_hash_filter_hides_rows(chromium, srv):
    page = rendered(chromium, srv, "#filter=sms")
    assert page.filter_value == ""  # the script sets the property, not the attribute
    shown = [r["cells"][2] for r in page.series if "hidden" not in r["attrs"]]
    hidden = [r["cells"][2] for r in page.series if "hidden" in r["attrs"]]
    assert shown == ["queue=sms"] and hidden == ["queue=emails"], page.series
    assert page.shown == 1
    # Percent-encoded, as the script writes it back.
    page = rendered(chromium, srv, "#filter=queue%3Demails")
    assert [r["cells"][2] for r in page.series if "hidden" not in r["attrs"]] == \
        ["queue=emails"]
    assert page.shown == 1


def test_chromium_screenshot(chromium, srv):
    out = artifacts_dir() / "status-page.png"
    out.unlink(missing_ok=True)
    chromium(f"https://127.0.0.1:{srv.port}/status", "--hide-scrollbars",
             "--virtual-time-budget=2000", f"--screenshot={out}", "--window-size=1280,1000")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    assert len(data) > 20000, len(data)  # a blank 1280x1000 PNG is a few KiB


# ---------------------------------------------------------------------------------------------
# Authorization: the same as the API (delegated mode: a SubjectAccessReview on /status)


def test_status_needs_the_same_authorization(tmp_root, certs, binary, redis_server, redis_db):
    kube = KubeStandin().start()
    port = free_port()
    cfg = server_config(port, certs, [redis_source(redis_server, redis_db, name="jobs")])
    cfg["server"]["auth"] = {"mode": "delegated", "cache_ttl": "0s",
                             "client_ca_file": str(certs["ca"]),
                             "requestheader_client_ca_file": str(certs["front_proxy_ca"]),
                             "requestheader_allowed_names": ["front-proxy-client"]}
    cfg["kubernetes"] = {"server": kube.url}
    s = Server(Path(tempfile.mkdtemp(prefix="status-auth-", dir=tmp_root)), cfg, port, certs,
               binary)
    try:
        s.start()
        kube.tokens["tok-ok"] = {"username": "ops", "groups": ["system:authenticated"]}
        kube.tokens["tok-no"] = {"username": "eve", "groups": ["system:authenticated"]}
        kube.sar_rules = [{"user": "ops", "nonResource": True, "path": "/status",
                           "verb": "get", "allowed": True}]

        r = s.get("/status")
        assert r.status == 403 and r.content_type == "application/json", r
        assert b"jobs" not in r.body and b"<html" not in r.body
        r = s.get("/status", headers={"Authorization": "Bearer nope"})
        assert r.status == 401, r
        r = s.get("/status", headers={"Authorization": "Bearer tok-no"})
        assert r.status == 403 and b"<html" not in r.body, r
        r = s.get("/status?filter=jobs", headers={"Authorization": "Bearer tok-ok"})
        assert r.status == 200 and r.content_type == "text/html; charset=utf-8", r
        assert b'data-source="jobs"' in r.body

        specs = [b["spec"] for b in kube.reviews("SubjectAccessReview")]
        assert specs, "no SubjectAccessReview was sent"
        assert all(sp.get("nonResourceAttributes") == {"path": "/status", "verb": "get"}
                   and "resourceAttributes" not in sp for sp in specs), specs
        assert {sp["user"] for sp in specs} == {"system:anonymous", "eve", "ops"}, specs
    finally:
        rc = s.stop()
        kube.stop()
    assert rc == 0, s.log_text()
