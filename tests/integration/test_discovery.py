# SPDX-License-Identifier: MIT
"""Discovery documents (exact), health, /version and OpenAPI (docs/api.md "Discovery")."""

import json

import pytest

from smtest import CUSTOM_V1, CUSTOM_V2, EXTERNAL, redis_source

V2_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
KUBECTL_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                  "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                  "application/json")
ACCEPTS = {
    "none": None,
    "json": "application/json",
    "aggregated-v2": V2_ACCEPT,
    "kubectl": KUBECTL_ACCEPT,
    "hpa": "application/vnd.kubernetes.protobuf, */*",
}


def gv(group, version):
    return {"groupVersion": f"{group}/{version}", "version": version}


CUSTOM_GROUP = {
    "name": "custom.metrics.k8s.io",
    "versions": [gv("custom.metrics.k8s.io", "v1beta2"), gv("custom.metrics.k8s.io", "v1beta1")],
    "preferredVersion": gv("custom.metrics.k8s.io", "v1beta2"),
}
EXTERNAL_GROUP = {
    "name": "external.metrics.k8s.io",
    "versions": [gv("external.metrics.k8s.io", "v1beta1")],
    "preferredVersion": gv("external.metrics.k8s.io", "v1beta1"),
}


def resource(name, namespaced, kind):
    return {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
            "verbs": ["get"]}


def custom_list(group_version):
    return {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": [
            resource("deployments.apps/worker_queue_length", True, "MetricValueList"),
            resource("namespaces/redis_queue_length", False, "MetricValueList"),
            resource("namespaces/worker_queue_length", False, "MetricValueList"),
        ],
    }


EXPECTED = {
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1",
              "groups": [CUSTOM_GROUP, EXTERNAL_GROUP]},
    "/apis/custom.metrics.k8s.io": dict(kind="APIGroup", apiVersion="v1", **CUSTOM_GROUP),
    "/apis/external.metrics.k8s.io": dict(kind="APIGroup", apiVersion="v1", **EXTERNAL_GROUP),
    CUSTOM_V1: custom_list("custom.metrics.k8s.io/v1beta1"),
    CUSTOM_V2: custom_list("custom.metrics.k8s.io/v1beta2"),
    EXTERNAL: {
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": "external.metrics.k8s.io/v1beta1",
        "resources": [
            resource("redis_queue_length", True, "ExternalMetricValueList"),
            resource("worker_queue_length", True, "ExternalMetricValueList"),
        ],
    },
}


@pytest.fixture(scope="module")
def srv(module_server_factory, redis_server, redis_db):
    redis_server.client(redis_db).lpush("queue:emails", "a")
    queues = [
        {"metric": "redis_queue_length", "keys": ["queue:*"]},
        {"metric": "worker_queue_length", "keys": ["queue:*"],
         "object": {"resource": "deployments.apps", "name": "worker-{queue}"}},
    ]
    return module_server_factory([redis_source(redis_server, redis_db, queues=queues)])


def sorted_resources(doc):
    if "resources" in doc:
        doc = dict(doc, resources=sorted(doc["resources"], key=lambda r: r.get("name", "")))
    return doc


@pytest.mark.parametrize("accept", ACCEPTS.keys())
@pytest.mark.parametrize("query", ["", "?timeout=32s"])
@pytest.mark.parametrize("path", EXPECTED.keys())
def test_discovery_document(srv, path, query, accept):
    headers = {"Accept": ACCEPTS[accept]} if ACCEPTS[accept] else {}
    r = srv.get(path + query, headers=headers)
    assert r.status == 200, r
    assert r.content_type == "application/json", r
    assert sorted_resources(r.json()) == EXPECTED[path]


@pytest.mark.parametrize("path", [CUSTOM_V1, CUSTOM_V2, EXTERNAL])
def test_namespaced_is_a_function_of_the_prefix(srv, path):
    """Inconsistent scopes per parent resource make the aggregator mark the GV Stale
    (docs/api.md "Aggregated discovery and resource scopes")."""
    scope = {}
    for res in srv.json(path)["resources"]:
        prefix = res["name"].split("/")[0]
        assert scope.setdefault(prefix, res["namespaced"]) == res["namespaced"], res
    if path != EXTERNAL:
        assert scope.get("namespaces") is False
        assert scope.get("deployments.apps") is True


def test_trailing_slash_or_not(srv):
    r = srv.get(EXTERNAL + "/")
    # Either the same document or a Status 404; never a 500 or a non-JSON answer.
    assert r.status in (200, 404), r
    assert r.content_type == "application/json", r


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health(srv, path):
    r = srv.get(path)
    assert r.status == 200, r
    assert r.body.strip() == b"ok", r
    head = srv.get(path, method="HEAD")
    assert head.status == 200, head


def test_version(srv):
    doc = srv.json("/version")
    assert isinstance(doc.get("gitVersion"), str) and doc["gitVersion"], doc
    for key in ("major", "minor", "gitCommit", "platform"):
        if key in doc:
            assert isinstance(doc[key], str), doc


@pytest.mark.parametrize("path", ["/openapi/v2", "/openapi/v3"])
def test_openapi(srv, path):
    """200 with an OpenAPI document, or 404 (the aggregator then skips it, docs/api.md
    "OpenAPI, version and health endpoints"): either way valid JSON with Content-Type
    application/json."""
    r = srv.get(path, headers={"Accept": "application/json"})
    assert r.status in (200, 404), r
    assert r.content_type == "application/json", r
    doc = json.loads(r.body)
    if r.status == 200:
        assert isinstance(doc, dict) and doc, doc
    else:
        assert doc["kind"] == "Status" and doc["code"] == 404, doc


def test_discovery_via_kubectl(srv, kubectl):
    for path in (CUSTOM_V2, EXTERNAL, "/apis"):
        p = kubectl(srv, path)
        assert p.returncode == 0, (path, p.stderr)
        assert sorted_resources(json.loads(p.stdout)) == EXPECTED[path]
