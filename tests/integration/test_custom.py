# SPDX-License-Identifier: MIT
"""custom.metrics.k8s.io: object metrics from a rule's `object:` template, namespace totals,
wildcards, metricLabelSelector, v1beta1 vs v1beta2 shapes (docs/api.md "Custom metrics paths",
"Metric value documents")."""

import re

import pytest

from smtest import CUSTOM_V1, CUSTOM_V2, assert_status, redis_source, wait_until

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
NS = "namespaces/default"


@pytest.fixture(scope="module")
def srv(module_server_factory, redis_server, redis_db):
    r = redis_server.client(redis_db)
    r.lpush("queue:emails", *range(37))
    r.lpush("queue:sms", *range(5))
    queues = [
        {"metric": "redis_queue_length", "keys": ["queue:*"]},
        {"metric": "worker_queue_length", "keys": ["queue:*"],
         "object": {"resource": "deployments.apps", "name": "worker-{queue}"}},
    ]
    s = module_server_factory([redis_source(redis_server, redis_db, queues=queues)])

    def ready():
        doc = s.json(f"{CUSTOM_V2}/{NS}/deployments.apps/%2A/worker_queue_length")
        return len(doc["items"]) == 2
    wait_until(ready, 5, what="both worker metrics")
    return s


def describes_deployment(item, name):
    assert item["describedObject"] == {"kind": "Deployment", "apiVersion": "apps/v1",
                                       "name": name, "namespace": "default"}, item


def test_object_metric_v1beta2(srv):
    doc = srv.json(f"{CUSTOM_V2}/{NS}/deployments.apps/worker-emails/worker_queue_length")
    assert doc["kind"] == "MetricValueList"
    assert doc["apiVersion"] == "custom.metrics.k8s.io/v1beta2"
    assert doc["metadata"] == {}
    assert len(doc["items"]) == 1, doc
    item = doc["items"][0]
    describes_deployment(item, "worker-emails")
    assert item["metric"]["name"] == "worker_queue_length"
    assert "selector" in item["metric"], item
    assert item["value"] == "37"
    assert RFC3339.match(item["timestamp"]), item
    assert "windowSeconds" not in item, item  # instantaneous
    assert "metricName" not in item and "window" not in item, item


def test_object_metric_v1beta1(srv):
    doc = srv.json(f"{CUSTOM_V1}/{NS}/deployments.apps/worker-sms/worker_queue_length")
    assert doc["kind"] == "MetricValueList"
    assert doc["apiVersion"] == "custom.metrics.k8s.io/v1beta1"
    assert len(doc["items"]) == 1, doc
    item = doc["items"][0]
    describes_deployment(item, "worker-sms")
    assert item["metricName"] == "worker_queue_length"
    assert item["selector"] is None
    assert item["value"] == "5"
    assert RFC3339.match(item["timestamp"]), item
    assert "window" not in item and "metric" not in item, item


@pytest.mark.parametrize("wildcard", ["%2A", "*"])
@pytest.mark.parametrize("base", [CUSTOM_V1, CUSTOM_V2])
def test_wildcard(srv, base, wildcard):
    doc = srv.json(f"{base}/{NS}/deployments.apps/{wildcard}/worker_queue_length")
    got = {i["describedObject"]["name"]: i["value"] for i in doc["items"]}
    assert got == {"worker-emails": "37", "worker-sms": "5"}, doc


@pytest.mark.parametrize("selector,expect", [
    ("queue%3Dsms", {"worker-sms"}),
    ("queue+in+%28emails%2Csms%29", {"worker-emails", "worker-sms"}),
    ("queue%21%3Dsms", {"worker-emails"}),
    ("queue%3Dnone", {"worker-none"}),  # named and absent: an empty queue, 0
])
def test_metric_label_selector_on_wildcard(srv, selector, expect):
    doc = srv.json(f"{CUSTOM_V2}/{NS}/deployments.apps/%2A/worker_queue_length"
                   f"?metricLabelSelector={selector}")
    assert {i["describedObject"]["name"] for i in doc["items"]} == expect, doc


def test_metric_label_selector_is_echoed_v1beta2(srv):
    doc = srv.json(f"{CUSTOM_V2}/{NS}/deployments.apps/worker-sms/worker_queue_length"
                   "?metricLabelSelector=queue%3Dsms")
    assert len(doc["items"]) == 1, doc
    sel = doc["items"][0]["metric"]["selector"]
    assert sel == {"matchLabels": {"queue": "sms"}}, doc


def test_metric_label_selector_excluding_the_object(srv):
    r = srv.get(f"{CUSTOM_V2}/{NS}/deployments.apps/worker-sms/worker_queue_length"
                "?metricLabelSelector=queue%3Demails")
    # No series for worker-sms matches: an empty list or a 404 Status are both honest.
    if r.status == 200:
        assert r.json()["items"] == [], r
    else:
        assert_status(r, 404, "NotFound")


@pytest.mark.parametrize("base,key", [(CUSTOM_V2, "metric"), (CUSTOM_V1, "metricName")])
def test_namespace_total(srv, base, key):
    doc = srv.json(f"{base}/{NS}/metrics/redis_queue_length")
    assert len(doc["items"]) == 1, doc
    item = doc["items"][0]
    assert item["describedObject"] == {"kind": "Namespace", "apiVersion": "v1",
                                       "name": "default"}, item
    assert item["value"] == "42", item  # 37 + 5
    name = item[key]["name"] if key == "metric" else item[key]
    assert name == "redis_queue_length"


def test_namespace_total_with_metric_label_selector(srv):
    doc = srv.json(f"{CUSTOM_V2}/{NS}/metrics/redis_queue_length"
                   "?metricLabelSelector=queue%3Dsms")
    assert [i["value"] for i in doc["items"]] == ["5"], doc


def test_unknown_object_is_404(srv):
    # worker-nope would be queue "nope", empty (0): only a name the template cannot give is
    # unknown.
    r = srv.get(f"{CUSTOM_V2}/{NS}/deployments.apps/nope/worker_queue_length")
    assert_status(r, 404, "NotFound")


def test_metric_not_served_for_that_resource_is_404(srv):
    for path in (f"{CUSTOM_V2}/{NS}/pods/worker-emails/worker_queue_length",
                 f"{CUSTOM_V2}/{NS}/deployments.apps/worker-emails/redis_queue_length",
                 f"{CUSTOM_V2}/{NS}/services/%2A/worker_queue_length",
                 f"{CUSTOM_V2}/namespaces/elsewhere/deployments.apps/worker-emails/"
                 "worker_queue_length"):
        assert_status(srv.get(path), 404, "NotFound")


@pytest.mark.parametrize("path", [
    f"{CUSTOM_V2}/deployments.apps/worker-emails/worker_queue_length",
    f"{CUSTOM_V2}/deployments.apps/%2A/worker_queue_length",
    f"{CUSTOM_V1}/deployments.apps/worker-emails/worker_queue_length",
])
def test_root_scoped_path_for_a_namespaced_resource_is_404(srv, path):
    """Discovery says deployments.apps/... is namespaced: its metrics live only under
    namespaces/NS/ (a Deployment reference without a namespace names nothing)."""
    assert_status(srv.get(path), 404, "NotFound")
