# SPDX-License-Identifier: MIT
"""`forward`: requests for metrics no source of ours declares go to another adapter (the
upstream), over TLS with a bearer token; discovery lists the union; hostile upstreams (slow,
resetting, oversized, wrong JSON, down) give a clean 503 naming them, and never slow our own
metrics. The upstream is a second scalemetrics, or a small Python TLS stand-in that records
the requests it gets and misbehaves on demand."""

import json
import socket
import ssl
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kube_standin import KubeStandin
from smtest import (EXTERNAL, SLOW, Server, assert_status, free_port, redis_source,
                    server_config, wait_until)

EXT_GROUP = "external.metrics.k8s.io"
OURS = "redis_queue_length"
THEIRS = "keda_scaler_value"


# ---------------------------------------------------------------------------------------------
# A TLS stand-in upstream


def ext_list(metric, value):
    return {"kind": "ExternalMetricValueList", "apiVersion": f"{EXT_GROUP}/v1beta1",
            "metadata": {},
            "items": [{"metricName": metric, "metricLabels": {},
                       "timestamp": "2024-01-01T00:00:00Z", "value": value}]}


def resource_list(names):
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{EXT_GROUP}/v1beta1",
            "resources": [{"name": n, "singularName": "", "namespaced": True,
                           "kind": "ExternalMetricValueList", "verbs": ["get"]}
                          for n in names]}


class StandIn:
    """An upstream adapter on 127.0.0.1 over TLS (the test serving certificate). `mode`
    chooses how metric requests are answered: "ok" (an ExternalMetricValueList of value
    "42"), "slow" (the same after `delay` seconds), "hang" (until released), "reset" (the
    connection is reset), "huge" (20 MiB of JSON), "wrong" (JSON of another kind), "garbage"
    (not JSON), "status" (a 403 Status). Requests are recorded as (path, headers)."""

    def __init__(self, certs):
        self.mode = "ok"
        self.delay = 0.0
        self.names = [THEIRS, "shared_metric"]
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, code, body, ctype="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                with standin.lock:
                    standin.requests.append((self.path, dict(self.headers)))
                if self.path == f"/apis/{EXT_GROUP}/v1beta1":
                    return self.send(200, resource_list(standin.names))
                metric = self.path.split("?")[0].rsplit("/", 1)[-1]
                mode = standin.mode
                if mode == "slow":
                    time.sleep(standin.delay)
                elif mode == "hang":
                    standin.release.wait(30)
                elif mode == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return None
                elif mode == "huge":
                    item = ext_list(metric, "1")["items"][0]
                    doc = ext_list(metric, "1")
                    doc["items"] = [item] * 200000  # about 20 MiB
                    return self.send(200, doc)
                elif mode == "wrong":
                    return self.send(200, {"kind": "PodList", "apiVersion": "v1", "items": []})
                elif mode == "garbage":
                    return self.send(200, b"<html>hello</html>", "text/html")
                elif mode == "status":
                    return self.send(403, {"kind": "Status", "apiVersion": "v1",
                                           "metadata": {}, "status": "Failure",
                                           "message": "upstream says no", "reason": "Forbidden",
                                           "code": 403})
                return self.send(200, ext_list(metric, "42"))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # resets are on purpose
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(certs["cert"]), str(certs["key"]))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def metric_requests(self):
        with self.lock:
            return [r for r in self.requests if not r[0].endswith("/v1beta1")]

    def clear(self):
        with self.lock:
            self.requests.clear()


# ---------------------------------------------------------------------------------------------
# fixtures


def start_front(tmp_root, certs, binary, sources, forward, **extra):
    port = free_port()
    cfg = server_config(port, certs, sources)
    cfg["forward"] = forward
    cfg.update(extra)
    d = Path(tempfile.mkdtemp(prefix="fwd-", dir=tmp_root))
    return Server(d, cfg, port, certs, binary).start()


@pytest.fixture
def stopper():
    started = []
    yield started.append
    errors = []
    for s in reversed(started):
        rc = s.stop()
        if rc != 0:
            errors.append(f"exit {rc}:\n{s.log_text()}")
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def token_file(tmp_root):
    p = Path(tempfile.mkdtemp(prefix="fwd-token-", dir=tmp_root)) / "token"
    p.write_text("tok-one\n")
    return p


@pytest.fixture(scope="module")
def standin(certs):
    s = StandIn(certs).start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def reset_standin(request):
    if "standin" in request.fixturenames:
        s = request.getfixturevalue("standin")
        s.mode, s.delay = "ok", 0.0
        s.release.clear()
        s.clear()


def forward_to(url, certs, token_file=None, timeout="1s", **extra):
    e = {"group": EXT_GROUP, "url": url, "ca_file": str(certs["ca"]), "timeout": timeout}
    if token_file:
        e["token_file"] = str(token_file)
    e.update(extra)
    return [e]


@pytest.fixture(scope="module")
def queues(redis_server, redis_db):
    r = redis_server.client(redis_db)
    r.delete("queue:ours", "shared:a", "up:theirs", "up:shared")
    r.rpush("queue:ours", *range(7))
    r.rpush("shared:a", *range(3))
    r.rpush("up:theirs", *range(11))
    r.rpush("up:shared", *range(99))
    return redis_server


def our_source(redis_server, redis_db):
    return redis_source(redis_server, redis_db, queues=[
        {"metric": OURS, "keys": ["queue:*"]},
        {"metric": "shared_metric", "keys": ["shared:*"]}])


@pytest.fixture(scope="module")
def pair(tmp_root, certs, binary, queues, redis_db):
    """A second scalemetrics as the upstream (auth none; serves keda_scaler_value and
    shared_metric), and ours forwarding external metrics to it over TLS."""
    up_port = free_port()
    up_cfg = server_config(up_port, certs, [redis_source(queues, redis_db, name="up", queues=[
        {"metric": THEIRS, "keys": ["up:theirs"]},
        {"metric": "shared_metric", "keys": ["up:shared"]}])])
    upstream = Server(Path(tempfile.mkdtemp(prefix="fwd-up-", dir=tmp_root)), up_cfg, up_port,
                      certs, binary).start()
    front = start_front(tmp_root, certs, binary, [our_source(queues, redis_db)],
                        forward_to(f"https://127.0.0.1:{up_port}", certs))
    wait_until(lambda: front.get(f"{EXTERNAL}/namespaces/default/{OURS}").status == 200, 10,
               what="our first round")
    wait_until(lambda: upstream.get(f"{EXTERNAL}/namespaces/default/{THEIRS}").status == 200,
               10, what="the upstream's first round")
    yield front, upstream
    errors = []
    for s in (front, upstream):
        rc = s.stop()
        if rc != 0:
            errors.append(f"exit {rc}:\n{s.log_text()}")
    assert not errors, "\n".join(errors)


# ---------------------------------------------------------------------------------------------
# with a second scalemetrics as the upstream


def test_unknown_metric_is_answered_by_the_upstream(pair):
    front, upstream = pair
    path = f"{EXTERNAL}/namespaces/default/{THEIRS}"
    r = front.get(path)
    direct = upstream.get(path)
    assert r.status == 200, r
    assert r.content_type == direct.content_type == "application/json"
    assert [i["value"] for i in r.json()["items"]] == ["11"], r
    assert r.json() == direct.json()


def test_query_is_passed_on(pair):
    front, _ = pair
    r = front.get(f"{EXTERNAL}/namespaces/default/{THEIRS}?labelSelector=queue%3Dnope")
    assert r.status == 200 and r.json()["items"] == [], r


def test_ours_answered_here(pair):
    front, _ = pair
    r = front.get(f"{EXTERNAL}/namespaces/default/{OURS}")
    assert r.status == 200 and [i["value"] for i in r.json()["items"]] == ["7"], r


def test_name_clash_ours_wins_and_is_logged_once(pair):
    front, _ = pair
    r = front.get(f"{EXTERNAL}/namespaces/default/shared_metric")
    assert r.status == 200 and [i["value"] for i in r.json()["items"]] == ["3"], r
    wait_until(lambda: "metric 'shared_metric' is served by a source of ours" in front.log_text(),
               5, what="the clash in the log")
    time.sleep(1.5 * SLOW)  # a later refresh (or request) must not log it again
    front.get(f"{EXTERNAL}/namespaces/default/nothing_anywhere")
    assert front.log_text().count("metric 'shared_metric' is served by a source of ours") == 1


def test_discovery_lists_the_union(pair):
    front, _ = pair

    def names():
        doc = front.json(EXTERNAL)
        return sorted(r["name"] for r in doc["resources"])
    assert wait_until(lambda: names() == sorted([OURS, "shared_metric", THEIRS]), 5,
                      what="the union in discovery")
    doc = front.json(EXTERNAL)
    assert doc["groupVersion"] == f"{EXT_GROUP}/v1beta1"
    for res in doc["resources"]:
        assert res["kind"] == "ExternalMetricValueList" and res["verbs"] == ["get"], res


def test_unknown_everywhere_is_the_upstreams_404(pair):
    front, _ = pair
    r = front.get(f"{EXTERNAL}/namespaces/default/nothing_anywhere")
    assert_status(r, 404, "NotFound")
    assert "nothing_anywhere" in r.json()["message"], r


def test_other_group_is_not_forwarded(pair):
    front, _ = pair
    r = front.get(f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/%2A/{THEIRS}")
    assert_status(r, 404, "NotFound")
    assert "could not find the metric" in r.json()["message"], r


def test_kubectl_through_us(pair, kubectl):
    front, _ = pair
    p = kubectl(front, f"{EXTERNAL}/namespaces/default/{THEIRS}")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["items"][0]["value"] == "11"


# ---------------------------------------------------------------------------------------------
# with the stand-in


@pytest.fixture
def front(tmp_root, certs, binary, queues, redis_db, standin, token_file, stopper):
    s = start_front(tmp_root, certs, binary, [our_source(queues, redis_db)],
                    forward_to(standin.url, certs, token_file))
    stopper(s)
    wait_until(lambda: s.get(f"{EXTERNAL}/namespaces/default/{OURS}").status == 200, 10,
               what="our first round")
    return s


def theirs(front, timeout=10):
    return front.get(f"{EXTERNAL}/namespaces/default/{THEIRS}?labelSelector=a%3Db", timeout=timeout)


def test_same_path_query_and_the_token(front, standin, token_file):
    r = theirs(front)
    assert r.status == 200 and r.json()["items"][0]["value"] == "42", r
    path, headers = standin.metric_requests()[-1]
    assert path == f"{EXTERNAL}/namespaces/default/{THEIRS}?labelSelector=a%3Db"
    assert headers.get("Authorization") == "Bearer tok-one"
    assert headers.get("Accept") == "application/json"
    # A rotated token is read again.
    time.sleep(0.05)
    token_file.write_text("tok-two\n")
    assert theirs(front).status == 200
    assert standin.metric_requests()[-1][1].get("Authorization") == "Bearer tok-two"
    token_file.write_text("tok-one\n")


def test_dot_segments_are_not_forwarded(front, standin):
    r = front.get(f"{EXTERNAL}/namespaces/default/%2E%2E")
    assert r.status == 404, r
    r = front.get(f"{EXTERNAL}/namespaces/x%2Fy/{THEIRS}")
    assert r.status == 404, r
    assert standin.metric_requests() == []


def test_upstream_status_passed_through(front, standin):
    standin.mode = "status"
    r = theirs(front)
    assert_status(r, 403, "Forbidden")
    assert r.json()["message"] == "upstream says no"


@pytest.mark.parametrize("mode,why", [
    ("slow", "no answer within 1000ms"),
    ("reset", ""),
    ("huge", "larger than 8 MiB"),
    ("wrong", "with kind 'PodList', not a ExternalMetricValueList"),
    ("garbage", "not a JSON object"),
])
def test_hostile_upstream_is_a_clean_503(front, standin, mode, why):
    standin.mode, standin.delay = mode, 3.0
    t0 = time.monotonic()
    r = theirs(front)
    took = time.monotonic() - t0
    assert_status(r, 503, "ServiceUnavailable")
    msg = r.json()["message"]
    assert standin.url in msg and "forward for external.metrics.k8s.io" in msg, msg
    assert why in msg, msg
    assert took < 2.5 * SLOW, took
    # The failure is logged once, and the recovery.
    standin.mode = "ok"
    assert theirs(front).status == 200
    log = front.log_text()
    assert log.count(f"forwarding to '{standin.url}' failed") == 1, log
    assert "answers forwarded requests again" in log


def test_upstream_down(tmp_root, certs, binary, queues, redis_db, stopper):
    dead = free_port()
    s = start_front(tmp_root, certs, binary, [our_source(queues, redis_db)],
                    forward_to(f"https://127.0.0.1:{dead}", certs))
    stopper(s)
    r = theirs(s)
    assert_status(r, 503, "ServiceUnavailable")
    assert f"127.0.0.1:{dead}" in r.json()["message"], r
    # Discovery still answers, with ours.
    wait_until(lambda: s.get(f"{EXTERNAL}/namespaces/default/{OURS}").status == 200, 10,
               what="our first round")
    names = [x["name"] for x in s.json(EXTERNAL)["resources"]]
    assert OURS in names and THEIRS not in names


def test_wrong_ca_is_refused(tmp_root, certs, binary, queues, redis_db, standin, stopper):
    other = Path(tempfile.mkdtemp(prefix="fwd-ca-", dir=tmp_root)) / "ca.crt"
    other.write_text((certs["dir"] / "front-proxy-ca.crt").read_text())
    s = start_front(tmp_root, certs, binary, [our_source(queues, redis_db)],
                    [{"group": EXT_GROUP, "url": standin.url, "ca_file": str(other)}])
    stopper(s)
    r = theirs(s)
    assert_status(r, 503, "ServiceUnavailable")
    assert standin.metric_requests() == []


def test_insecure_is_logged(tmp_root, certs, binary, queues, redis_db, standin, stopper):
    s = start_front(tmp_root, certs, binary, [our_source(queues, redis_db)],
                    [{"group": EXT_GROUP, "url": standin.url,
                      "insecure_skip_tls_verify": True}])
    stopper(s)
    assert theirs(s).status == 200
    assert "insecure_skip_tls_verify is set" in s.log_text()


def test_our_metrics_stay_fast_while_the_upstream_hangs(front, standin):
    standin.mode = "hang"
    n = 12
    with ThreadPoolExecutor(max_workers=n) as pool:
        hanging = [pool.submit(theirs, front, 20) for _ in range(n)]
        wait_until(lambda: len(standin.metric_requests()) >= 4, 5, what="4 hanging requests")
        worst = 0.0
        for _ in range(20):
            t0 = time.monotonic()
            r = front.get(f"{EXTERNAL}/namespaces/default/{OURS}")
            worst = max(worst, time.monotonic() - t0)
            assert r.status == 200, r
        assert front.get("/readyz").status == 200
        assert worst < 0.5 * SLOW, worst
        results = [f.result() for f in hanging]
    for r in results:
        assert_status(r, 503, "ServiceUnavailable")


def test_full_queue_is_503_at_once(front, standin):
    standin.mode = "hang"
    n = 4 + 64 + 8  # workers, queue, and more

    def timed_theirs():
        t0 = time.monotonic()
        r = theirs(front, 20)
        return r, time.monotonic() - t0

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = [f.result() for f in [pool.submit(timed_theirs) for _ in range(n)]]
    full = [(r, took) for r, took in results
            if r.status == 503 and "too many forwarded requests" in r.json()["message"]]
    assert len(full) >= 8, results
    for r, took in full:
        assert_status(r, 503, "ServiceUnavailable")
        # At once: before the 1 s timeout that ends the requests on the workers.
        assert took < 0.9 * SLOW, (took, r)
    for r, _ in results:
        assert_status(r, 503, "ServiceUnavailable")


def test_sigterm_with_forwarded_requests_in_flight(tmp_root, certs, binary, queues, redis_db,
                                                   standin):
    s = start_front(tmp_root, certs, binary, [our_source(queues, redis_db)],
                    forward_to(standin.url, certs, timeout="5s"))
    standin.mode = "hang"
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(theirs, s, 20) for _ in range(8)]
        wait_until(lambda: len(standin.metric_requests()) >= 4, 5, what="hanging requests")
        t0 = time.monotonic()
        assert s.stop() == 0, s.log_text()
        assert time.monotonic() - t0 < 12 * SLOW
        for f in futures:
            try:
                r = f.result()
                assert r.status == 503, r
            except OSError:
                pass  # closed with the server


# ---------------------------------------------------------------------------------------------
# our access check comes first


def test_access_is_checked_before_forwarding(tmp_root, certs, binary, queues, redis_db,
                                             standin, stopper):
    kube = KubeStandin().start()
    try:
        port = free_port()
        cfg = server_config(port, certs, [our_source(queues, redis_db)])
        cfg["server"]["auth"] = {"mode": "delegated", "cache_ttl": "0s",
                                 "client_ca_file": str(certs["ca"]),
                                 "requestheader_client_ca_file": str(certs["front_proxy_ca"])}
        cfg["kubernetes"] = {"server": kube.url}
        cfg["forward"] = forward_to(standin.url, certs)
        s = Server(Path(tempfile.mkdtemp(prefix="fwd-auth-", dir=tmp_root)), cfg, port, certs,
                   binary).start()
        stopper(s)
        # Anonymous, and no rule allows it: refused here, nothing sent upstream.
        r = theirs(s)
        assert r.status in (401, 403), r
        assert standin.metric_requests() == []
        # Allowed by a SubjectAccessReview (which needs a worker): then forwarded.
        kube.tokens["tok-a"] = {"username": "hpa", "groups": []}
        kube.sar_rules = [{"user": "hpa", "allowed": True}]
        r = s.get(f"{EXTERNAL}/namespaces/default/{THEIRS}",
                  headers={"Authorization": "Bearer tok-a"})
        assert r.status == 200 and r.json()["items"][0]["value"] == "42", r
        assert len(standin.metric_requests()) == 1
        # Our token went upstream, not the requester's.
        assert standin.metric_requests()[0][1].get("Authorization") is None
    finally:
        kube.stop()
