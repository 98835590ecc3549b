# SPDX-License-Identifier: MIT
"""Every error is a metav1.Status whose code equals the HTTP status (docs/api.md "Errors")."""

import pytest

from smtest import CUSTOM_V2, EXTERNAL, assert_status, redis_source, wait_external_value

METRIC = f"{EXTERNAL}/namespaces/default/redis_queue_length"


@pytest.fixture(scope="module")
def srv(module_server_factory, redis_server, redis_db):
    redis_server.client(redis_db).lpush("queue:emails", "a", "b")
    s = module_server_factory([redis_source(redis_server, redis_db)])
    wait_external_value(s, "redis_queue_length", "queue%3Demails", "2")
    return s


@pytest.mark.parametrize("path", [
    f"{EXTERNAL}/namespaces/default/no_such_metric",
    f"{CUSTOM_V2}/namespaces/default/metrics/no_such_metric",
    f"{CUSTOM_V2}/namespaces/default/pods/%2A/no_such_metric",
])
def test_unknown_metric(srv, path):
    doc = assert_status(srv.get(path), 404, "NotFound")
    assert "no_such_metric" in doc["message"], doc


@pytest.mark.parametrize("path", [
    "/nope",
    "/apis/foo.example.com/v1",
    "/apis/custom.metrics.k8s.io/v1",
    "/apis/external.metrics.k8s.io/v1beta2",
    f"{EXTERNAL}/redis_queue_length",
    f"{EXTERNAL}/namespaces/default",
    f"{EXTERNAL}/namespaces/default/group/redis_queue_length",
    f"{CUSTOM_V2}/namespaces/default/pods/a/b/c",
    f"{CUSTOM_V2}/namespaces/default/pods/name",
])
def test_unknown_route(srv, path):
    assert_status(srv.get(path), 404, "NotFound")


def test_namespace_not_in_sources_namespaces(srv):
    assert_status(srv.get(f"{EXTERNAL}/namespaces/kube-system/redis_queue_length"),
                  404, "NotFound")


@pytest.mark.parametrize("selector", [
    "a%3D%3D%3D",                    # a===
    "x+in+b",                        # x in b
    "a%3Db%2C",                      # a=b,
    "%2Ca",                          # ,a
    "a%3Db+c%3Dd",                   # a=b c=d
    "%21a%3Db",                      # !a=b
    "a+in+%28b",                     # a in (b
    "Example.com%2Fapp%3Dweb",       # uppercase prefix
    "a%2Fb%2Fc%3Dd",                 # two slashes
    "-a%3Db",                        # name must start alphanumeric
    "a%3E1.5",                       # a>1.5
    "k%3D" + "v" * 64,               # value too long
])
def test_bad_label_selector(srv, selector):
    assert_status(srv.get(f"{METRIC}?labelSelector={selector}"), 400, "BadRequest")


def test_bad_metric_label_selector(srv):
    r = srv.get(f"{CUSTOM_V2}/namespaces/default/metrics/redis_queue_length"
                "?metricLabelSelector=x+in+b")
    assert_status(r, 400, "BadRequest")


@pytest.mark.parametrize("target", [
    f"{METRIC}?labelSelector=%ZZ",
    f"{METRIC}?labelSelector=queue%3",
    f"{EXTERNAL}/namespaces/default/redis%ZZqueue_length",
    f"{EXTERNAL}/namespaces/default/redis_queue_length%",
])
def test_bad_percent_encoding(srv, target):
    assert_status(srv.get(target), 400, "BadRequest")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", [METRIC, EXTERNAL, "/apis"])
def test_method_not_allowed(srv, method, path):
    assert_status(srv.get(path, method=method, body=b"{}",
                          headers={"Content-Type": "application/json"}),
                  405, "MethodNotAllowed")


@pytest.mark.parametrize("accept", ["application/xml", "text/html", "application/yaml"])
def test_not_acceptable(srv, accept):
    assert_status(srv.get(METRIC, headers={"Accept": accept}), 406, "NotAcceptable")


def test_errors_leave_the_server_serving(srv):
    r = srv.get(f"{METRIC}?labelSelector=queue%3Demails")
    assert r.status == 200, r
