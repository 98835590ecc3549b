# SPDX-License-Identifier: MIT
"""external.metrics.k8s.io against a real Redis: values, labels, selectors, kubectl, curl."""

import json
import re
import time
from datetime import datetime, timezone

import pytest

from smtest import SLOW, EXTERNAL, external_items, redis_source, wait_external_value

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
EMAILS = f"{EXTERNAL}/namespaces/default/redis_queue_length?labelSelector=queue%3Demails"


@pytest.fixture(scope="module")
def srv(module_server_factory, redis_server, redis_db):
    r = redis_server.client(redis_db)
    r.lpush("queue:emails", *[f"job-{i}" for i in range(37)])
    r.lpush("queue:sms", *[f"sms-{i}" for i in range(5)])
    r.set("unrelated", "x")  # does not match queue:*
    s = module_server_factory([redis_source(redis_server, redis_db)])
    wait_external_value(s, "redis_queue_length", "queue%3Demails", "37")
    return s


def test_value_and_labels(srv):
    items = external_items(srv, "redis_queue_length", "queue%3Demails")
    assert len(items) == 1, items
    item = items[0]
    assert item["metricName"] == "redis_queue_length"
    assert item["metricLabels"] == {"queue": "emails"}
    assert item["value"] == "37"
    assert RFC3339.match(item["timestamp"]), item
    ts = datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - ts).total_seconds()) < 30, item
    assert not item.get("window"), item  # instantaneous: window absent (or 0)


def test_document_shape(srv):
    doc = srv.json(EMAILS)
    assert doc["kind"] == "ExternalMetricValueList"
    assert doc["apiVersion"] == "external.metrics.k8s.io/v1beta1"
    assert doc["metadata"] == {}
    assert isinstance(doc["items"], list)


def test_no_selector_lists_every_queue(srv):
    items = external_items(srv, "redis_queue_length")
    got = {i["metricLabels"]["queue"]: i["value"] for i in items}
    assert got == {"emails": "37", "sms": "5"}, items


@pytest.mark.parametrize("selector,expect", [
    ("queue%3Dsms", {"sms"}),
    ("queue%3D%3Dsms", {"sms"}),
    ("queue%21%3Demails", {"sms"}),
    ("queue+in+%28emails%2Csms%29", {"emails", "sms"}),
    ("queue+notin+%28emails%29", {"sms"}),
    ("queue", {"emails", "sms"}),
    ("%21queue", set()),
    ("queue%3Dnope", {"nope"}),  # a queue named and absent is empty: 0 (test_absent_series)
    ("other%3Dx", set()),
    ("", {"emails", "sms"}),
])
def test_label_selectors(srv, selector, expect):
    items = external_items(srv, "redis_queue_length", selector)
    assert {i["metricLabels"]["queue"] for i in items} == expect, items


def test_value_follows_redis_within_an_interval(srv, redis_server, redis_db):
    r = redis_server.client(redis_db)
    r.lpush("queue:fresh", *range(12))
    try:
        wait_external_value(srv, "redis_queue_length", "queue%3Dfresh", "12", timeout=3)
        r.rpop("queue:fresh", 2)
        wait_external_value(srv, "redis_queue_length", "queue%3Dfresh", "10", timeout=3)
    finally:
        r.delete("queue:fresh")


def test_kubectl_get_raw(srv, kubectl):
    p = kubectl(srv, EMAILS)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["kind"] == "ExternalMetricValueList"
    assert len(doc["items"]) == 1, doc
    assert doc["items"][0]["value"] == "37"
    assert doc["items"][0]["metricLabels"] == {"queue": "emails"}


def test_kubectl_sees_new_jobs_within_one_interval(srv, kubectl, redis_server, redis_db):
    r = redis_server.client(redis_db)
    r.lpush("queue:kube", *range(37))
    try:
        deadline = time.monotonic() + 3 * SLOW
        while True:
            p = kubectl(srv, f"{EXTERNAL}/namespaces/default/redis_queue_length"
                             "?labelSelector=queue%3Dkube")
            assert p.returncode == 0, p.stderr
            items = json.loads(p.stdout)["items"]
            if len(items) == 1 and items[0]["value"] == "37":
                assert items[0]["metricLabels"] == {"queue": "kube"}
                break
            assert time.monotonic() < deadline, p.stdout
            time.sleep(0.2)
    finally:
        r.delete("queue:kube")


def test_curl_with_ca_verification(srv, curl):
    p = curl(srv, EMAILS)
    assert p.returncode == 0, p.stderr
    body, _, trailer = p.stdout.rpartition("\n")
    assert trailer == "200 application/json", p.stdout
    doc = json.loads(body)
    assert doc["items"][0]["value"] == "37"
    assert doc["items"][0]["metricLabels"] == {"queue": "emails"}


def test_curl_rejects_unknown_ca(srv, curl, tmp_path):
    """The CA really is checked: another CA's bundle makes curl fail verification."""
    from smtest import make_certs
    make_certs(tmp_path / "other")
    p = curl(srv, EMAILS, "--cacert", str(tmp_path / "other" / "ca.crt"))
    assert p.returncode != 0, p.stdout


def test_unknown_query_parameters_are_ignored(srv):
    doc = srv.json(EMAILS + "&timeout=32s&pretty=true&resourceVersion=0&whatever=1")
    assert [i["value"] for i in doc["items"]] == ["37"]


def test_head_is_like_get(srv):
    get = srv.get(EMAILS)
    head = srv.get(EMAILS, method="HEAD")
    assert head.status == 200, head
    assert head.content_type == "application/json"
    assert head.body == b""
    assert get.status == 200


def test_other_namespace_is_not_served(srv):
    from smtest import assert_status
    r = srv.get(f"{EXTERNAL}/namespaces/elsewhere/redis_queue_length")
    assert_status(r, 404, "NotFound")


def test_accept_headers_clients_send(srv):
    for accept in ("application/vnd.kubernetes.protobuf, */*", "application/json", "*/*",
                   "application/*", "application/json, */*;q=0.8"):
        r = srv.get(EMAILS, headers={"Accept": accept})
        assert r.status == 200, (accept, r)
        assert r.content_type == "application/json", (accept, r)


def test_no_matching_keys_gives_an_empty_list(start_server, own_redis):
    """A Redis with no key matching the rule: 200 with no items (not an error), and the
    server keeps collecting (under UBSan an empty round must not trip anything)."""
    own_redis.client().set("unrelated", "x")
    s = start_server([redis_source(own_redis)])
    time.sleep(2 * SLOW)  # two rounds with nothing to report
    assert external_items(s, "redis_queue_length") == []
    own_redis.client().lpush("queue:late", 1, 2)
    wait_external_value(s, "redis_queue_length", "queue%3Dlate", "2")
    assert s.running()
