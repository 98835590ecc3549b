# SPDX-License-Identifier: MIT
"""GET /metrics against the real binary over TLS: the whole body parses as Prometheus text
exposition (prometheus_client's parser), request counters move by exactly the requests sent
(200, 404, 503 from a dead source, fallbacks), the per-source gauges describe a live and a
dead Redis source, and with delegated auth the decision and cache counters move by exactly
what was asked of the Kubernetes stand-in, and /metrics itself needs a SubjectAccessReview
(nonResourceURL /metrics, verb get) like the API does."""

import json
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kube_standin import KubeStandin
from smtest import (EXTERNAL, SOURCE_ROOT, Server, free_port, redis_source, request,
                    server_config, wait_until)

CT_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
MAKE_TEST_CERTS = SOURCE_ROOT / "certs" / "make-test-certs.sh"
EXT = "external.metrics.k8s.io"
METRIC_PATH = f"{EXTERNAL}/namespaces/default/redis_queue_length"


def dead_redis_source(name, metric, **rule):
    """A Redis source whose address nobody listens on: every round fails at connect."""
    return {"name": name, "type": "redis", "address": f"127.0.0.1:{free_port()}",
            "interval": "1s", "timeout": "500ms", "max_age": "3s",
            "queues": [dict({"metric": metric, "keys": ["queue:*"]}, **rule)]}


def parse(body):
    """Every sample of a /metrics body, {(name, ((label, value), ...)): value}; the parser
    raises on anything that is not valid exposition text. Also returns {family: type}."""
    text = body.decode("utf-8")
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples, types


def val(samples, name, **labels):
    """A sample's value, 0 when absent (counters appear on first use)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def requests_total(samples, group, route, code):
    return val(samples, "scalemetrics_http_requests_total", group=group, route=route,
               code=str(code))


def check_histograms(samples):
    """Per route: buckets cumulative (non-decreasing with le), +Inf equal to _count."""
    name = "scalemetrics_http_request_duration_seconds"
    routes = {dict(k[1])["route"] for k in samples if k[0] == name + "_count"}
    assert routes
    for route in routes:
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in samples.items()
                         if k[0] == name + "_bucket" and dict(k[1])["route"] == route)
        assert len(buckets) == 14, buckets
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), (route, buckets)
        assert buckets[-1][0] == float("inf")
        assert buckets[-1][1] == val(samples, name + "_count", route=route)
        assert val(samples, name + "_sum", route=route) >= 0


# ---------------------------------------------------------------------------------------------
# auth mode none


@pytest.fixture(scope="module")
def srv(module_server_factory, redis_server, redis_db):
    r = redis_server.client(redis_db)
    r.delete("queue:a", "queue:b")
    r.rpush("queue:a", 1, 2, 3)
    r.rpush("queue:b", 1)
    sources = [redis_source(redis_server, redis_db),
               dead_redis_source("dead", "dead_queue_length"),
               dead_redis_source("gone", "gone_queue_length", fallback=5)]
    s = module_server_factory(sources)
    wait_until(lambda: len(s.json(METRIC_PATH)["items"]) == 2, 10, what="both queues")
    return s


def scrape(server, **kw):
    r = server.get("/metrics", **kw)
    assert r.status == 200, r
    assert r.content_type == CT_PROMETHEUS, r
    assert r.headers.get("Cache-Control") == "no-store"
    return parse(r.body)


def test_body_is_valid_exposition_with_every_family(srv):
    samples, types = scrape(srv)
    # prometheus_client names counter families without their _total suffix.
    assert types == {
        "scalemetrics_build_info": "gauge",
        "scalemetrics_http_requests": "counter",
        "scalemetrics_http_request_duration_seconds": "histogram",
        "scalemetrics_fallbacks_served": "counter",
        "scalemetrics_auth_decisions": "counter",
        "scalemetrics_auth_cache_lookups": "counter",
        "scalemetrics_answer_cache_lookups": "counter",
        "scalemetrics_config_last_reload_successful": "gauge",
        "scalemetrics_config_last_reload_timestamp_seconds": "gauge",
        "scalemetrics_config_reloads": "counter",
        "scalemetrics_source_series": "gauge",
        "scalemetrics_source_series_dropped": "gauge",
        "scalemetrics_source_rounds": "counter",
        "scalemetrics_source_last_round_duration_seconds": "gauge",
        "scalemetrics_source_last_success_timestamp_seconds": "gauge",
        "scalemetrics_source_sample_age_seconds": "gauge",
        "scalemetrics_source_stale": "gauge",
    }, types
    version = subprocess.run([str(srv.binary), "version"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    build = [k for k in samples if k[0] == "scalemetrics_build_info"]
    assert len(build) == 1 and dict(build[0][1])["version"] == version, build
    check_histograms(samples)


def test_request_counters_move_by_exactly_what_was_sent(srv):
    before, _ = scrape(srv)
    for _ in range(3):
        assert srv.get(METRIC_PATH).status == 200
    for _ in range(2):
        assert srv.get(f"{EXTERNAL}/namespaces/default/no_such_metric").status == 404
    assert srv.get("/no/such/path").status == 404
    assert srv.get(f"{EXTERNAL}/namespaces/default/dead_queue_length").status == 503
    fallback_items = 0
    for _ in range(2):
        doc = srv.json(f"{EXTERNAL}/namespaces/default/gone_queue_length")
        assert [i["value"] for i in doc["items"]] == ["5"], doc
        fallback_items += len(doc["items"])
    after, _ = scrape(srv)

    def delta(group, route, code):
        return requests_total(after, group, route, code) - requests_total(before, group,
                                                                          route, code)

    assert delta(EXT, "external", 200) == 5
    assert delta(EXT, "external", 404) == 2
    assert delta(EXT, "external", 503) == 1
    assert delta("", "other", 404) == 1
    # The first scrape is counted once it is answered, so the second one sees it (not itself).
    assert delta("", "metrics", 200) == 1
    assert delta("", "health", 200) == 0
    changed = {k for k in after if k[0] == "scalemetrics_http_requests_total"
               and after[k] != before.get(k, 0)}
    assert len(changed) == 5, changed
    assert (val(after, "scalemetrics_fallbacks_served_total", group=EXT)
            - val(before, "scalemetrics_fallbacks_served_total", group=EXT)) == fallback_items == 2
    assert val(after, "scalemetrics_fallbacks_served_total", group="custom.metrics.k8s.io") == 0
    name = "scalemetrics_http_request_duration_seconds_count"
    assert val(after, name, route="external") - val(before, name, route="external") == 8
    assert val(after, name, route="metrics") - val(before, name, route="metrics") == 1
    check_histograms(after)
    # Without delegated auth nothing is ever decided.
    for d in ("allowed", "denied", "unauthenticated", "error"):
        assert val(after, "scalemetrics_auth_decisions_total", decision=d) == 0


def test_answer_cache_hits_and_freshness(start_server, redis_server, redis_db):
    """Repeated queries are served from the answer cache (counted as hits, same bytes), and a
    new round's value replaces the cached answer at once: a cached answer never outlives the
    round it came from."""
    r = redis_server.client(redis_db)
    r.delete("cachetest:c")
    r.rpush("cachetest:c", 1, 2)
    path = f"{EXTERNAL}/namespaces/default/cached_queue_length"
    s = start_server([redis_source(redis_server, redis_db, name="cached", interval="2s",
                                   max_age="20s",
                                   queues=[{"metric": "cached_queue_length",
                                            "keys": ["cachetest:c"]}])])
    wait_until(lambda: s.get(path).status == 200, 10, what="first round")
    before, _ = scrape(s)
    bodies = [s.get(path).body for _ in range(5)]
    after, _ = scrape(s)

    def delta(result):
        return (val(after, "scalemetrics_answer_cache_lookups_total", result=result)
                - val(before, "scalemetrics_answer_cache_lookups_total", result=result))

    assert len(set(bodies)) <= 2, bodies  # a round may land in between, once
    assert delta("hit") + delta("miss") == 5
    assert delta("hit") >= 3, (delta("hit"), delta("miss"))
    r.rpush("cachetest:c", 3, 4, 5)
    doc = wait_until(lambda: (d := json.loads(s.get(path).body))["items"][0]["value"] == "5"
                     and d, 6, what="the new length after the next round")
    assert doc["items"][0]["value"] == "5"


def test_source_gauges(srv):
    wait_until(lambda: val(scrape(srv)[0], "scalemetrics_source_rounds_total", source="dead",
                           result="failure") >= 2, 10, what="a second failed round of 'dead'")
    samples, _ = scrape(srv)
    now = time.time()
    assert val(samples, "scalemetrics_source_series", source="jobs") == 2
    assert val(samples, "scalemetrics_source_series", source="dead") == 0
    assert val(samples, "scalemetrics_source_series_dropped", source="jobs") == 0
    assert val(samples, "scalemetrics_source_stale", source="jobs") == 0
    assert val(samples, "scalemetrics_source_stale", source="dead") == 1
    assert val(samples, "scalemetrics_source_stale", source="gone") == 1
    assert val(samples, "scalemetrics_source_rounds_total", source="jobs", result="success") >= 1
    assert val(samples, "scalemetrics_source_rounds_total", source="jobs", result="failure") == 0
    assert val(samples, "scalemetrics_source_rounds_total", source="dead", result="success") == 0
    # A round against a local Redis, or a refused connect, takes well under a second.
    for src in ("jobs", "dead", "gone"):
        d = samples[("scalemetrics_source_last_round_duration_seconds", (("source", src),))]
        assert 0 <= d < 0.5, (src, d)
    # Interval 1s: the last success is at most about a second old.
    age = samples[("scalemetrics_source_sample_age_seconds", (("source", "jobs"),))]
    assert 0 <= age < 2.5, age
    ts = samples[("scalemetrics_source_last_success_timestamp_seconds", (("source", "jobs"),))]
    assert now - 3 < ts <= now + 1, (ts, now)
    # Never succeeded: no age, no timestamp (absent, not a made-up number).
    for src in ("dead", "gone"):
        assert ("scalemetrics_source_sample_age_seconds", (("source", src),)) not in samples
        assert (("scalemetrics_source_last_success_timestamp_seconds", (("source", src),))
                not in samples)


def test_series_dropped_by_max_series(module_server_factory, redis_server, redis_db):
    r = redis_server.client(redis_db)
    r.rpush("queue:c", 1)
    s = module_server_factory([redis_source(redis_server, redis_db, max_series=2)])
    samples, _ = scrape(s)
    assert val(samples, "scalemetrics_source_series", source="jobs") == 2
    assert val(samples, "scalemetrics_source_series_dropped", source="jobs") == 1


# ---------------------------------------------------------------------------------------------
# auth mode delegated


@pytest.fixture(scope="module")
def tcerts(tmp_root):
    d = Path(tempfile.mkdtemp(prefix="metrics-certs-", dir=tmp_root))
    subprocess.run(["bash", str(MAKE_TEST_CERTS), str(d)], check=True, capture_output=True)
    return {"dir": d, "ca": d / "ca.crt", "cert": d / "tls.crt", "key": d / "tls.key",
            "client_cert": d / "client.crt", "client_key": d / "client.key"}


@pytest.fixture(scope="module")
def kube():
    k = KubeStandin().start()
    yield k
    k.stop()


@pytest.fixture(scope="module")
def asrv(tmp_root, tcerts, binary, kube, redis_server, redis_db):
    """Delegated auth with both CAs from files, and decisions cached for a minute."""
    port = free_port()
    cfg = server_config(port, tcerts, [redis_source(redis_server, redis_db)])
    cfg["server"]["auth"] = {
        "mode": "delegated", "cache_ttl": "60s",
        "requestheader_client_ca_file": str(tcerts["dir"] / "front-proxy-ca.crt"),
        "client_ca_file": str(tcerts["dir"] / "client-ca.crt"),
        "requestheader_allowed_names": ["front-proxy-client"]}
    cfg["kubernetes"] = {"server": kube.url}
    s = Server(Path(tempfile.mkdtemp(prefix="metrics-server-", dir=tmp_root)), cfg, port,
               tcerts, binary).start()
    yield s
    assert s.stop() == 0, s.log_text()


def bearer(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def reviews(kube, kind):
    return kube.reviews(kind)


def test_metrics_needs_a_subject_access_review(asrv, kube):
    kube.clear()
    r = asrv.get("/metrics")
    assert r.status == 403, r
    doc = r.json()
    assert doc["kind"] == "Status" and doc["reason"] == "Forbidden", doc
    assert b"scalemetrics_" not in r.body
    sars = reviews(kube, "SubjectAccessReview")
    assert [s["spec"].get("nonResourceAttributes") for s in sars] == [
        {"path": "/metrics", "verb": "get"}], sars
    assert sars[0]["spec"]["user"] == "system:anonymous"


def test_auth_counters_move_by_exactly_what_was_decided(asrv, kube, redis_server, redis_db):
    with kube.lock:
        kube.tokens = {"tok-scraper": {"username": "scraper", "groups": ["monitoring"]},
                       "tok-alice": {"username": "alice", "groups": ["devs"]}}
        kube.sar_rules = [
            {"user": "scraper", "nonResource": True, "path": "/metrics", "verb": "get",
             "allowed": True},
            {"user": "alice", "resource": "redis_queue_length", "verb": "list",
             "allowed": True},
        ]
    before, _ = scrape(asrv, headers=bearer("tok-scraper"))
    kube.clear()

    for _ in range(2):  # review, then both caches
        r = asrv.get(METRIC_PATH, headers=bearer("tok-alice"))
        assert r.status == 200 and r.json()["kind"] == "ExternalMetricValueList", r
    # The token cached, the decision not (another namespace): the request goes to an auth
    # worker, which looks the token up again; its cache hit still counts once.
    asrv.get(f"{EXTERNAL}/namespaces/other/redis_queue_length", headers=bearer("tok-alice"))
    for _ in range(2):  # TokenReview says no, then the cached no
        assert asrv.get(METRIC_PATH, headers=bearer("tok-nobody")).status == 401
    for _ in range(2):  # anonymous: reviewed and denied, then the cached denial
        assert asrv.get(METRIC_PATH).status == 403
    after, _ = scrape(asrv, headers=bearer("tok-scraper"))

    token_reviews = reviews(kube, "TokenReview")
    sars = reviews(kube, "SubjectAccessReview")
    assert sorted(t["spec"]["token"] for t in token_reviews) == ["tok-alice", "tok-nobody"]
    assert sorted(s["spec"]["user"] for s in sars) == ["alice", "alice", "system:anonymous"]

    def delta(name, **labels):
        return val(after, name, **labels) - val(before, name, **labels)

    # The second scrape's own access check happens before it renders: it is included.
    decisions = {d: delta("scalemetrics_auth_decisions_total", decision=d)
                 for d in ("allowed", "denied", "unauthenticated", "error")}
    assert decisions == {"allowed": 4, "denied": 2, "unauthenticated": 2, "error": 0}
    cache = {(c, res): delta("scalemetrics_auth_cache_lookups_total", cache=c, result=res)
             for c in ("tokenreview", "subjectaccessreview") for res in ("hit", "miss")}
    assert cache == {
        ("tokenreview", "miss"): len(token_reviews),          # alice, nobody
        ("tokenreview", "hit"): 4,                            # alice x2, nobody, scraper
        ("subjectaccessreview", "miss"): len(sars),           # alice x2, anonymous
        ("subjectaccessreview", "hit"): 3,                    # alice, anonymous, scraper
    }, cache
    assert len(token_reviews) == 2 and len(sars) == 3

    # Refused requests count under their API group with route "other".
    assert requests_total(after, EXT, "external", 200) - requests_total(before, EXT,
                                                                        "external", 200) == 2
    assert requests_total(after, EXT, "other", 401) - requests_total(before, EXT, "other",
                                                                     401) == 2
    assert requests_total(after, EXT, "other", 403) - requests_total(before, EXT, "other",
                                                                     403) == 2
    # The refused anonymous scrape of the first test is there too.
    assert requests_total(after, "", "other", 403) >= 1
    check_histograms(after)


def test_health_is_not_an_access_decision(asrv, kube):
    with kube.lock:
        kube.tokens = {"tok-scraper": {"username": "scraper"}}
        kube.sar_rules = [{"user": "scraper", "nonResource": True, "path": "/metrics",
                           "allowed": True}]
    before, _ = scrape(asrv, headers=bearer("tok-scraper"))
    for path in ("/healthz", "/livez", "/readyz"):
        assert asrv.get(path).status == 200
    after, _ = scrape(asrv, headers=bearer("tok-scraper"))
    total = lambda s: sum(v for k, v in s.items()  # noqa: E731
                          if k[0] == "scalemetrics_auth_decisions_total")
    assert total(after) - total(before) == 1  # the second scrape only
    assert (requests_total(after, "", "health", 200)
            - requests_total(before, "", "health", 200)) == 3
