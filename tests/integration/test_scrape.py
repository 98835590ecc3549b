# SPDX-License-Identifier: MIT
"""The scrape source against real exporters: small HTTP apps on loopback that count and time
their requests with Debian's python3-prometheus-client (an exporter no one here wrote), driven
at known request rates; pods discovered through the Kubernetes API stand-in.

Run as a script, this file is the app:  /usr/bin/python3 test_scrape.py app HOST PORT [CERT KEY]
"""

import gzip
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

APP_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5]


# ---------------------------------------------------------------------------------------------
# The app (a separate process, so that a restart really resets its counters)

def run_app(host, port, cert=None, key=None):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    reg = CollectorRegistry()
    requests = Counter("http_requests", "Requests served.", ["code", "method"], registry=reg)
    latency = Histogram("http_request_duration_seconds", "Request latency.", ["method"],
                        buckets=APP_BUCKETS, registry=reg)
    inflight = Gauge("http_inflight_requests", "Requests in flight.", registry=reg)
    scrapes = Counter("app_scrapes", "Scrapes, by content encoding.", ["encoding"],
                      registry=reg)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stalls

        def log_message(self, fmt, *args):
            pass

        def reply(self, status, body, ctype="text/plain; charset=utf-8", extra=()):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            if u.path == "/work":
                requests.labels(q.get("code", "200"), "get").inc()
                latency.labels("get").observe(float(q.get("latency", "0.01")))
                self.reply(200, b"ok\n")
            elif u.path == "/inflight":
                inflight.set(float(q["v"]))
                self.reply(200, b"ok\n")
            elif u.path == "/metrics":
                gz = "gzip" in self.headers.get("Accept-Encoding", "")
                scrapes.labels("gzip" if gz else "identity").inc()
                body = generate_latest(reg)
                if gz:
                    self.reply(200, gzip.compress(body),
                               "text/plain; version=0.0.4; charset=utf-8",
                               [("Content-Encoding", "gzip")])
                else:
                    self.reply(200, body, "text/plain; version=0.0.4; charset=utf-8")
            else:
                self.reply(404, b"not found\n")

    srv = ThreadingHTTPServer((host, port), Handler)
    srv.daemon_threads = True
    if cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) in (4, 6) and sys.argv[1] == "app":
        run_app(sys.argv[2], int(sys.argv[3]), *sys.argv[4:])
        sys.exit(0)
    sys.exit("usage: test_scrape.py app HOST PORT [CERT KEY]")


# ---------------------------------------------------------------------------------------------
# Test side

import re  # noqa: E402

import pytest  # noqa: E402

from kube_standin import KubeStandin, make_pod  # noqa: E402
from smtest import (CLEAN_ENV, CUSTOM_V1, EXTERNAL, SLOW, Server, free_port,  # noqa: E402
                    assert_status, server_config, wait_until)

PY = "/usr/bin/python3"
HERE = Path(__file__).resolve()


def quantity(s):
    """A Kubernetes quantity as the API serves metric values ("20", "19950m", "1500u") ->
    float."""
    suffixes = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                "Ki": 1024.0, "Mi": 1024.0 ** 2, "Gi": 1024.0 ** 3}
    for suf in sorted(suffixes, key=len, reverse=True):
        if s.endswith(suf):
            return float(s[:-len(suf)]) * suffixes[suf]
    return float(s)


class App:
    """One exporter process on host:port; restart() keeps the address (counters reset)."""

    def __init__(self, host="127.0.0.1", port=None, tls=None):
        self.host = host
        self.port = port or free_port()
        self.tls = tls  # (cert, key): serve HTTPS
        self.proc = None

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/metrics"

    def start(self):
        extra = [str(x) for x in self.tls] if self.tls else []
        self.proc = subprocess.Popen([PY, str(HERE), "app", self.host, str(self.port), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, env=CLEAN_ENV, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        self.stop()
        wait_until(lambda: self._bindable(), 10, what="port free")
        return self.start()

    def _bindable(self):
        import socket
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.host, self.port))
                return True
            except OSError:
                return False

    def get(self, path):
        c = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            c.request("GET", path)
            return c.getresponse().read().decode()
        finally:
            c.close()


def latency_of(i):
    """A known latency distribution: uniform over (0, 1) s in steps of 10 ms, in a scrambled
    order that repeats every 100 requests. Its p95 is 0.95 s, in the (0.5, 1] bucket."""
    return ((i * 37) % 100 + 0.5) / 100.0


class Driver(threading.Thread):
    """Sends GET /work to an app at a fixed rate (requests per second), on a schedule of
    absolute times, so the long-run rate is exact. Survives app restarts."""

    def __init__(self, app, rate, code="200"):
        super().__init__(daemon=True)
        self.app = app
        self.rate = rate
        self.code = code
        self.stopped = threading.Event()
        self.sent = 0

    def run(self):
        conn = None
        t0 = time.monotonic()
        i = 0
        while not self.stopped.is_set():
            due = t0 + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.app.host, self.app.port, timeout=2)
                conn.request("GET", f"/work?code={self.code}&latency={latency_of(i)}")
                conn.getresponse().read()
                self.sent += 1
            except (OSError, http.client.HTTPException):
                if conn:
                    conn.close()
                conn = None
            i += 1

    def stop(self):
        self.stopped.set()
        self.join(10)


@pytest.fixture
def apps():
    started = []

    def make(n=1, host="127.0.0.1", port=None):
        out = [App(host=host, port=port).start() for _ in range(n)]
        started.extend(out)
        return out
    yield make
    for a in started:
        a.stop()


@pytest.fixture
def drivers():
    running = []

    def make(app, rate, code="200"):
        d = Driver(app, rate, code)
        d.start()
        running.append(d)
        return d
    yield make
    for d in running:
        d.stop()


def scrape_source(targets=None, pods=None, name="backend", interval="1s", window="10s",
                  **extra):
    src = {"name": name, "type": "scrape", "interval": interval, "timeout": "800ms",
           "max_age": "5s"}
    if targets is not None:
        src["targets"] = targets
    if pods is not None:
        src["pods"] = pods
    src.update({
        "rates": [{"metric": "http_requests_per_second", "counter": "http_requests_total",
                   "window": window}],
        "quantiles": [{"metric": "http_request_duration_p95_seconds",
                       "histogram": "http_request_duration_seconds", "quantile": 0.95,
                       "window": window}],
        "averages": [{"metric": "http_request_duration_avg_seconds",
                      "histogram": "http_request_duration_seconds", "window": window}],
        "gauges": [{"metric": "inflight_requests", "gauge": "http_inflight_requests"}],
    })
    src.update(extra)
    return src


def start_with(start_server, sources, kubernetes=None):
    """Like start_server(sources), with an optional top-level kubernetes: section."""
    if kubernetes is None:
        return start_server(sources)
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="server-", dir=start_server.tmp_root))
    cfg = server_config(port, start_server.certs, sources)
    cfg["kubernetes"] = kubernetes
    s = Server(d, cfg, port, start_server.certs, start_server.binary)
    start_server.servers.append(s)
    return s.start()


def external(srv, metric):
    r = srv.get(f"{EXTERNAL}/namespaces/default/{metric}")
    if r.status != 200:
        return None
    return [(i["metricLabels"], quantity(i["value"])) for i in r.json()["items"]]


def external_value(srv, metric):
    items = external(srv, metric)
    if not items:
        return None
    assert len(items) == 1, items
    return items[0][1]


def pods_values(srv, metric, selector=None, namespace="default"):
    path = f"{CUSTOM_V1}/namespaces/{namespace}/pods/*/{metric}"
    if selector:
        path += "?labelSelector=" + selector
    doc = srv.json(path)
    assert doc["kind"] == "MetricValueList", doc
    out = {}
    for i in doc["items"]:
        assert i["describedObject"]["kind"] == "Pod", i
        assert i["describedObject"]["namespace"] == namespace, i
        out[i["describedObject"]["name"]] = quantity(i["value"])
    return out


def within(value, want, rel=0.05):
    return value is not None and abs(value - want) <= rel * want


# ---------------------------------------------------------------------------------------------


def test_rates_quantiles_static_targets(start_server, apps, drivers):
    a, b, c = apps(3)
    for app, rate in ((a, 10), (b, 20), (c, 30)):
        drivers(app, rate)
    a.get("/inflight?v=2")
    b.get("/inflight?v=3")
    srv = start_server([scrape_source(targets=[a.url, b.url, c.url])])

    # The window (10s) fills; then every reading must be within 5% of the driven 60/s.
    wait_until(lambda: within(external_value(srv, "http_requests_per_second"), 60), 25,
               interval=0.5, what="aggregate rate near 60/s")
    time.sleep(2)
    readings = []
    for _ in range(6):
        readings.append(external_value(srv, "http_requests_per_second"))
        time.sleep(0.5)
    assert all(within(v, 60) for v in readings), readings

    # Static targets are no pods: the metric is external only, the aggregate has no labels.
    items = external(srv, "http_requests_per_second")
    assert items[0][0] == {}, items
    r = srv.get(f"{CUSTOM_V1}/namespaces/default/pods/*/http_requests_per_second")
    assert r.status == 404, r

    # p95 of the uniform (0, 1)s distribution: 0.95, inside the (0.5, 1] bucket.
    p95 = external_value(srv, "http_request_duration_p95_seconds")
    assert p95 is not None and 0.5 <= p95 <= 1.0, p95
    assert abs(p95 - 0.95) < 0.05, p95
    avg = external_value(srv, "http_request_duration_avg_seconds")
    assert avg is not None and abs(avg - 0.5) < 0.05, avg
    assert external_value(srv, "inflight_requests") == 5

    # gzip was asked for and used.
    assert 'app_scrapes_total{encoding="gzip"}' in a.get("/metrics")


def test_counter_reset_causes_no_spike(start_server, apps, drivers):
    a, b = apps(2)
    drivers(a, 20)
    drivers(b, 20)
    srv = start_server([scrape_source(targets=[a.url, b.url])])
    wait_until(lambda: within(external_value(srv, "http_requests_per_second"), 40), 25,
               interval=0.5, what="aggregate rate near 40/s")

    a.restart()  # its counters start again from 0
    readings = []
    deadline = time.monotonic() + 14 * SLOW
    while time.monotonic() < deadline:
        v = external_value(srv, "http_requests_per_second")
        if v is not None:
            readings.append(v)
        time.sleep(0.25)
    # No reading above the driven rate (a spike) nor below 0. While the app was down and
    # its first points after the restart fill the window, the rate may dip; never jump.
    assert readings, "no readings"
    assert max(readings) <= 40 * 1.05, readings
    assert min(readings) >= 0, readings
    # Once the window has moved past the restart, the rate is right again.
    assert within(readings[-1], 40), readings


def test_malformed_and_failing_targets_do_not_poison(start_server, apps, drivers, tmp_path):
    good, = apps(1)
    drivers(good, 20)
    # A target that serves a broken exposition, and one where nothing listens.
    bad_port = free_port()
    bad = subprocess.Popen(
        [PY, "-c", "import http.server as h, sys\n"
         "class H(h.BaseHTTPRequestHandler):\n"
         "  def log_message(self, *a): pass\n"
         "  def do_GET(self):\n"
         "    b = b'# TYPE http_requests_total counter\\nhttp_requests_total{code=\"200} 5\\n'\n"
         "    self.send_response(200); self.send_header('Content-Length', str(len(b)))\n"
         "    self.end_headers(); self.wfile.write(b)\n"
         f"h.HTTPServer(('127.0.0.1', {bad_port}), H).serve_forever()\n"],
        env=CLEAN_ENV, stdin=subprocess.DEVNULL)
    # And one that accepts connections and never answers: the per-target timeout ends it.
    import socket
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    try:
        dead = f"http://127.0.0.1:{free_port()}/metrics"
        hanging = f"http://127.0.0.1:{hang.getsockname()[1]}/metrics"
        srv = start_server([scrape_source(
            targets=[good.url, f"http://127.0.0.1:{bad_port}/metrics", dead, hanging])])
        # The rounds succeed (the source is not stale), but the sum would leave three
        # targets out: a 503 naming what could not be read, not 20.
        path = f"{EXTERNAL}/namespaces/default/http_requests_per_second"
        r = wait_until(lambda: (lambda r: r if r.status == 503 and "could not read" in
                                r.json()["message"] else None)(srv.get(path)), 25,
                       interval=0.5, what="503: the sum leaves failed targets out")
        assert "127.0.0.1" in r.json()["message"], r.json()
        # The log names the broken targets (the broken exporter may start after round 1).
        wait_until(lambda: "unterminated label value" in srv.log_text(), 10,
                   what="the broken exposition logged")
        log = srv.log_text()
        assert "3 of 4 targets failed" in log, log
        assert "line 2: unterminated label value" in log, log
        assert "timed out" in log, log
    finally:
        hang.close()
        bad.kill()
        bad.wait()


def test_more_targets_than_fetched_at_once(start_server, apps):
    """150 targets, more than the 64 transfers a round runs at once: each one is fetched
    every round (the gauge sums over all of them)."""
    app, = apps(1)
    app.get("/inflight?v=2")
    targets = [f"{app.url}?target={i}" for i in range(150)]
    srv = start_server([scrape_source(targets=targets, max_series=10000, interval="2s",
                                      timeout="1500ms")])
    wait_until(lambda: external_value(srv, "inflight_requests") == 300, 30, interval=0.5,
               what="the gauge summed over 150 targets")


def test_round_ends_after_its_interval_when_targets_hang(start_server, apps):
    """Targets that accept and never answer hold the round's transfers until their timeout;
    past the interval the rest are not started, so a round ends one timeout after its
    interval at the latest, and the next round begins with those, so none is left out for
    good."""
    import socket
    good, = apps(1)
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(1024)
    try:
        url = f"http://127.0.0.1:{hang.getsockname()[1]}/metrics"
        targets = [f"{url}?t={i}" for i in range(200)] + [good.url]
        srv = start_server([scrape_source(targets=targets, interval="1s", max_series=10000)])

        # 200 hanging targets, 64 at a time, 800 ms each: the first two waves start before
        # the 1 s interval has passed, the rest are not started. All at once it would take
        # one timeout; waiting for every wave, four.
        def round_s():
            text = srv.get("/metrics").body.decode()
            m = re.search(r'^scalemetrics_source_last_round_duration_seconds'
                          r'\{source="backend"\} (\S+)$', text, re.M)
            return float(m.group(1)) if m and float(m.group(1)) > 0 else None
        took = wait_until(round_s, 15, interval=0.5, what="a round's duration")
        assert 1.4 <= took <= 2.4, took
        # The good target, last in the list, is reached by a later round.
        wait_until(lambda: 'app_scrapes_total{encoding="gzip"}' in good.get("/metrics"), 15,
                   interval=0.5, what="the last target fetched")
        r = srv.get(f"{EXTERNAL}/namespaces/default/http_requests_per_second")
        assert r.status == 503, r
    finally:
        hang.close()


def test_all_targets_failing_fails_the_round(start_server):
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    srv = start_server([scrape_source(targets=[dead])])
    r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(
        srv.get(f"{EXTERNAL}/namespaces/default/http_requests_per_second")), 10,
        what="503 while every target fails")
    assert "refused" in r.json()["message"].lower() or "connect" in r.json()["message"].lower(), \
        r.json()


def test_body_size_limit(start_server, apps, drivers):
    good, = apps(1)
    drivers(good, 10)
    srv = start_server([scrape_source(targets=[good.url], max_body_bytes=1024)])
    r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(
        srv.get(f"{EXTERNAL}/namespaces/default/http_requests_per_second")), 10,
        what="503: the exposition is over max_body_bytes")
    assert "max_body_bytes" in r.json()["message"], r.json()


@pytest.fixture
def pods_setup(start_server, apps, drivers):
    """Three exporter pods on three loopback addresses with one port (as pods have), driven
    at 10, 20 and 40 requests/s, listed by the stand-in with a few pods that must be ignored;
    scalemetrics discovers app=backend through it with a bearer token."""
    port = free_port()
    a, = apps(1, host="127.0.0.2", port=port)
    b, = apps(1, host="127.0.0.3", port=port)
    c, = apps(1, host="127.0.0.4", port=port)
    drivers(a, 10)
    drivers(b, 20)
    drivers(c, 40)
    kube = KubeStandin(token="s3cret").start()
    token_file = Path(tempfile.mkdtemp()) / "token"
    token_file.write_text("s3cret\n")
    kube.set_pods([
        make_pod("backend-a", ip="127.0.0.2", labels={"app": "backend", "track": "stable"}),
        make_pod("backend-b", ip="127.0.0.3", labels={"app": "backend", "track": "canary"}),
        make_pod("other-c", ip="127.0.0.4", labels={"app": "other"}),
        make_pod("backend-pending", ip="", labels={"app": "backend"}, phase="Pending",
                 ready=False),
        make_pod("backend-unready", ip="127.0.0.9", labels={"app": "backend"}, ready=False),
        make_pod("backend-elsewhere", namespace="prod", ip="127.0.0.4",
                 labels={"app": "backend"}),
    ])
    srv = start_with(start_server, [scrape_source(pods={
        "namespace": "default", "selector": "app=backend", "port": port,
        "path": "/metrics", "scheme": "http"})],
        kubernetes={"server": kube.url, "token_file": str(token_file)})

    def both_near():
        v = pods_values(srv, "http_requests_per_second")
        return (set(v) == {"backend-a", "backend-b"} and within(v["backend-a"], 10)
                and within(v["backend-b"], 20)) and v
    wait_until(both_near, 25, interval=0.5, what="per-pod rates 10 and 20")
    yield srv, kube, (a, b, c)
    kube.stop()


def test_pods_discovered_through_the_api(pods_setup):
    srv, kube, (a, b, c) = pods_setup
    # The HPA's selector picks pods by their labels.
    assert set(pods_values(srv, "http_requests_per_second", "track%3Dcanary")) == {"backend-b"}
    # One pod by name.
    doc = srv.json(f"{CUSTOM_V1}/namespaces/default/pods/backend-a/http_requests_per_second")
    assert [i["describedObject"]["name"] for i in doc["items"]] == ["backend-a"], doc
    # p95 per pod.
    p95 = pods_values(srv, "http_request_duration_p95_seconds")
    assert set(p95) == {"backend-a", "backend-b"}, p95
    assert all(0.5 <= v <= 1.0 for v in p95.values()), p95
    # The stand-in saw the selector and our token.
    method, path, auth = kube.requests[-1]
    assert path == "/api/v1/namespaces/default/pods?labelSelector=app%3Dbackend", path
    assert auth == "Bearer s3cret"

    # A pod whose scrape fails is absent from the list (not 0); the others stay. Asked for by
    # name, it is a 503 saying why (docs/configuration.md "Empty queues and failed series").
    b.stop()
    wait_until(lambda: set(pods_values(srv, "http_requests_per_second")) == {"backend-a"},
               10, what="backend-b absent while its scrape fails")
    r = srv.get(f"{CUSTOM_V1}/namespaces/default/pods/backend-b/http_requests_per_second")
    doc = assert_status(r, 503, "ServiceUnavailable")
    assert "http_requests_per_second" in doc["message"] and "pods backend-b" in doc["message"], doc
    # Only the failed pod selected: nothing read answers, so 503 too.
    r = srv.get(f"{CUSTOM_V1}/namespaces/default/pods/%2A/http_requests_per_second"
                "?labelSelector=track%3Dcanary")
    assert_status(r, 503, "ServiceUnavailable")

    # A pod that vanished from the API is no longer served; a new one is.
    kube.set_pods([make_pod("backend-c", ip="127.0.0.4",
                            labels={"app": "backend", "track": "stable"})])
    wait_until(lambda: (lambda v: set(v) == {"backend-c"} and within(v["backend-c"], 40))(
        pods_values(srv, "http_requests_per_second")), 25, interval=0.5,
        what="only backend-c, at 40/s")


def test_pods_aggregate_is_the_external_metric(pods_setup):
    srv, kube, pods = pods_setup
    items = external(srv, "http_requests_per_second")
    assert len(items) == 1, items
    assert within(items[0][1], 30), items


def test_aggregate_without_a_failed_part_is_503(pods_setup):
    """A pod whose scrape fails counts in the sum with its last values for max_age (5s);
    after that the sum would be a smaller number: the external metric and the namespace total
    are a 503 naming the pod's target, while the good pod's own value is still served."""
    srv, kube, (a, b, c) = pods_setup
    b.stop()
    path = f"{EXTERNAL}/namespaces/default/http_requests_per_second"
    r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(srv.get(path)), 15,
                   interval=0.5, what="503 once backend-b's last values are too old")
    doc = assert_status(r, 503, "ServiceUnavailable")
    assert "http_requests_per_second" in doc["message"], doc
    assert "127.0.0.3" in doc["message"] and "'backend'" in doc["message"], doc
    r = srv.get(f"{CUSTOM_V1}/namespaces/default/metrics/http_requests_per_second")
    assert_status(r, 503, "ServiceUnavailable")
    # The good pod, by name and in a list: still 200.
    doc = srv.json(f"{CUSTOM_V1}/namespaces/default/pods/backend-a/http_requests_per_second")
    assert [i["describedObject"]["name"] for i in doc["items"]] == ["backend-a"], doc
    assert set(pods_values(srv, "http_requests_per_second")) == {"backend-a"}
    # Back: the whole sum again.
    b.start()
    wait_until(lambda: within(external_value(srv, "http_requests_per_second"), 30, rel=0.2),
               25, interval=0.5, what="the sum of both pods again")


def test_kube_api_unreachable_fails_the_round(start_server):
    srv = start_with(start_server, [scrape_source(pods={
        "namespace": "default", "selector": "app=backend", "port": 8000})],
        kubernetes={"server": f"http://127.0.0.1:{free_port()}"})
    r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(
        srv.get(f"{EXTERNAL}/namespaces/default/http_requests_per_second")), 10,
        what="503 while the pod list cannot be read")
    assert "/api/v1/namespaces/default/pods" in r.json()["message"], r.json()


def test_https_target_and_api(start_server, certs, drivers):
    """HTTPS both ways: the scrape target and the Kubernetes API, verified with the test CA."""
    app = App(tls=(certs["cert"], certs["key"])).start()
    plain = App().start()
    kube = KubeStandin(certfile=certs["cert"], keyfile=certs["key"]).start()
    try:
        # The HTTPS app is scraped as a static target; the plain one is a pod found over HTTPS.
        kube.set_pods([make_pod("plain-0", ip="127.0.0.1", labels={"app": "plain"})])
        ssl_ctx = __import__("ssl").create_default_context(cafile=str(certs["ca"]))

        def drive(n):
            c = http.client.HTTPSConnection("127.0.0.1", app.port, context=ssl_ctx, timeout=5)
            for i in range(n):
                c.request("GET", f"/work?latency={latency_of(i)}")
                c.getresponse().read()
            c.close()
        drivers(plain, 10)
        srv = start_with(start_server, [
            scrape_source(name="tls", targets=[app.url], ca_file=str(certs["ca"]),
                          rates=[{"metric": "tls_requests_per_second",
                                  "counter": "http_requests_total", "window": "4s"}],
                          quantiles=[], averages=[], gauges=[]),
            scrape_source(name="pods", pods={"namespace": "default", "selector": "app=plain",
                                             "port": plain.port}),
        ], kubernetes={"server": kube.url, "ca_file": str(certs["ca"])})
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                drive(5)
                time.sleep(0.25)
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        try:
            wait_until(lambda: (external_value(srv, "tls_requests_per_second") or 0) > 1, 15,
                       interval=0.5, what="a rate from the HTTPS target")
            wait_until(lambda: within(pods_values(srv, "http_requests_per_second").get(
                "plain-0"), 10), 25, interval=0.5, what="the pod found over HTTPS at 10/s")
        finally:
            stop.set()
            t.join(10)
    finally:
        kube.stop()
        app.stop()
        plain.stop()


def test_rate_by_label(start_server, apps, drivers):
    """by: [code] keeps the code label and sums the rest away (here method)."""
    a, b = apps(2)
    drivers(a, 10, "200")
    drivers(a, 5, "500")
    drivers(b, 10, "200")
    srv = start_server([scrape_source(
        targets=[a.url, b.url], quantiles=[], averages=[], gauges=[],
        rates=[{"metric": "http_requests_per_second", "counter": "http_requests_total",
                "window": "10s", "by": ["code"]}])])

    def by_code():
        got = {labels.get("code"): v for labels, v in external(srv, "http_requests_per_second")}
        return set(got) == {"200", "500"} and within(got["200"], 20) and \
            within(got["500"], 5) and got
    wait_until(by_code, 25, interval=0.5, what="rates by code: 200 -> 20/s, 500 -> 5/s")
    r = srv.get(f"{EXTERNAL}/namespaces/default/http_requests_per_second?labelSelector=code%3D500")
    items = r.json()["items"]
    assert [i["metricLabels"] for i in items] == [{"code": "500"}], items
