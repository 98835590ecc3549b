# SPDX-License-Identifier: MIT
"""What an HPA sees when a queue is empty or a series cannot be read (docs/configuration.md "Empty queues
and failed series"), against a real redis-server: a drained queue of a glob rule is 0 when the
selector names it (Redis deletes an emptied list, so the key is gone), for presets and object
metrics too; a key of the wrong type is a 503 naming the metric, the source and the error, or
the rule's fallback; a stale source is still a 503."""

import json
import time

import pytest

from smtest import (CUSTOM_V1, EXTERNAL, assert_status, external_items, redis_source,
                    wait_until)
from test_redis_types import L, series, wait_series

NS = "namespaces/default"


@pytest.fixture
def c(redis_server, redis_db):
    """The module's database, empty at the start of each test."""
    cl = redis_server.client(redis_db)
    cl.flushdb()
    return cl


def items_by_queue(server, metric, selector):
    return {i["metricLabels"].get("queue"): i["value"]
            for i in external_items(server, metric, selector)}


def wait_items(server, metric, selector, expect, timeout=5.0):
    def check():
        return items_by_queue(server, metric, selector) == expect
    try:
        wait_until(check, timeout, what=f"{metric}?{selector} == {expect}")
    except AssertionError:
        raise AssertionError(f"{metric}?{selector}: want {expect}, got "
                             f"{items_by_queue(server, metric, selector)}\n{server.log_text()}")


def wait_503(server, path, timeout=5.0):
    r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(server.get(path)),
                   timeout, what=f"503 from {path}")
    return assert_status(r, 503, "ServiceUnavailable")


def test_drained_glob_queue_is_zero(start_server, redis_server, redis_db, c):
    c.rpush("queue:emails", *range(5))
    c.rpush("queue:sms", *range(2))
    s = start_server([redis_source(redis_server, redis_db)])
    wait_items(s, "redis_queue_length", "queue%3Demails", {"emails": "5"})

    while c.lpop("queue:emails") is not None:  # the workers drain it; Redis deletes the key
        pass
    assert not c.exists("queue:emails")
    for sel in ("queue%3Demails", "queue%3D%3Demails", "queue+in+%28emails%29"):
        wait_items(s, "redis_queue_length", sel, {"emails": "0"})
    items = external_items(s, "redis_queue_length", "queue%3Demails")
    assert items[0]["metricLabels"] == {"queue": "emails"}, items
    assert items[0]["metricName"] == "redis_queue_length", items

    # A selector that names no value: only the queues that exist.
    assert items_by_queue(s, "redis_queue_length", None) == {"sms": "2"}
    assert items_by_queue(s, "redis_queue_length", "queue%21%3Dsms") == {}
    assert items_by_queue(s, "redis_queue_length", "queue") == {"sms": "2"}
    # Named values: each one, present or not.
    assert items_by_queue(s, "redis_queue_length", "queue+in+%28emails%2Csms%29") == {
        "emails": "0", "sms": "2"}
    # A queue never seen is as empty as a drained one.
    assert items_by_queue(s, "redis_queue_length", "queue%3Dnever") == {"never": "0"}
    # The per-namespace total is unchanged: 0 + 2.
    doc = s.json(f"/apis/custom.metrics.k8s.io/v1beta2/{NS}/metrics/redis_queue_length")
    assert [i["value"] for i in doc["items"]] == ["2"], doc

    # New jobs: the real value again.
    c.rpush("queue:emails", *range(3))
    wait_items(s, "redis_queue_length", "queue%3Demails", {"emails": "3"})


def test_missing_exact_key_is_zero(start_server, redis_server, redis_db, c):
    """An exact key was always read as 0 when missing (TYPE none, or LLEN of nothing)."""
    s = start_server([redis_source(redis_server, redis_db, queues=[
        {"metric": "exact_auto", "keys": ["work:emails"]},
        {"metric": "exact_list", "keys": ["work:emails"], "type": "list"}])])
    wait_series(s, "exact_auto", {L(queue="work_emails"): 0})
    wait_series(s, "exact_list", {L(queue="work_emails"): 0})
    c.rpush("work:emails", 1, 2)
    wait_series(s, "exact_auto", {L(queue="work_emails"): 2})


def test_object_of_a_drained_queue_is_zero(start_server, redis_server, redis_db, c):
    c.rpush("queue:emails", *range(4))
    c.rpush("queue:sms", 1)
    s = start_server([redis_source(redis_server, redis_db, queues=[
        {"metric": "worker_queue_length", "keys": ["queue:*"],
         "object": {"resource": "deployments.apps", "name": "worker-{queue}"}}])])
    path = f"{CUSTOM_V1}/{NS}/deployments.apps/worker-emails/worker_queue_length"
    wait_until(lambda: s.json(path)["items"][0]["value"] == "4", 5, what="worker-emails == 4")

    c.delete("queue:emails")
    doc = wait_until(lambda: (lambda d: d if d["items"][0]["value"] == "0" else None)(
        s.json(path)), 5, what="worker-emails == 0")
    assert doc["items"][0]["describedObject"]["name"] == "worker-emails", doc
    assert doc["items"][0]["describedObject"]["kind"] == "Deployment", doc
    # Any name the template could give is a queue that may be empty.
    doc = s.json(f"{CUSTOM_V1}/{NS}/deployments.apps/worker-never/worker_queue_length")
    assert [i["value"] for i in doc["items"]] == ["0"], doc
    # A name the template cannot give is no object of this metric.
    for name in ("emails", "worker-", "other-emails"):
        assert_status(s.get(f"{CUSTOM_V1}/{NS}/deployments.apps/{name}/worker_queue_length"),
                      404, "NotFound")
    # Listing objects: the ones that exist, plus the queues the selector names.
    doc = s.json(f"{CUSTOM_V1}/{NS}/deployments.apps/%2A/worker_queue_length")
    assert {i["describedObject"]["name"]: i["value"] for i in doc["items"]} == {
        "worker-sms": "1"}, doc
    doc = s.json(f"{CUSTOM_V1}/{NS}/deployments.apps/%2A/worker_queue_length"
                 "?metricLabelSelector=queue+in+%28emails%2Csms%29")
    assert {i["describedObject"]["name"]: i["value"] for i in doc["items"]} == {
        "worker-emails": "0", "worker-sms": "1"}, doc


def test_preset_queue_named_by_the_selector_is_zero(start_server, redis_server, redis_db, c):
    c.sadd("queues", "default")
    job = json.dumps({"queue": "default", "class": "W", "args": [], "jid": "a1",
                      "enqueued_at": time.time()})
    c.lpush("queue:default", job, job)
    c.set("bull:email:id", 3)
    c.lpush("bull:email:wait", "1")
    s = start_server([redis_source(redis_server, redis_db, queues=[
        {"preset": "sidekiq"}, {"preset": "bullmq"}])])
    wait_items(s, "sidekiq_queue_length", "queue%3Ddefault", {"default": "2"})
    # "critical" was never used: Sidekiq's set does not list it, no key exists.
    wait_items(s, "sidekiq_queue_length", "queue%3Dcritical", {"critical": "0"})
    wait_items(s, "sidekiq_queue_latency_seconds", "queue%3Dcritical", {"critical": "0"})
    wait_items(s, "bullmq_waiting", "queue%3Dreports", {"reports": "0"})
    # Only where a queue has it: absent stays absent.
    wait_items(s, "bullmq_paused", "queue%3Dreports", {})
    assert items_by_queue(s, "sidekiq_queue_length", None) == {"default": "2"}


def test_celery_queue_is_known_by_its_binding(start_server, redis_server, redis_db, c):
    """A Celery list can hold jobs before any worker or producer declared its queue (the Kombu
    binding): a name the preset has not discovered is not known to be empty, so not 0."""
    sep = "\x06\x16"
    c.rpush("reports", *range(3))
    s = start_server([redis_source(redis_server, redis_db, queues=[{"preset": "celery"}])])
    wait_items(s, "celery_queue_length", None, {"celery": "0"})  # the default name
    assert items_by_queue(s, "celery_queue_length", "queue%3Dreports") == {}
    c.sadd("_kombu.binding.reports", "reports" + sep + "" + sep + "reports")
    wait_items(s, "celery_queue_length", "queue%3Dreports", {"reports": "3"})
    # Drained: Redis deletes the list, the binding stays: 0.
    c.delete("reports")
    wait_items(s, "celery_queue_length", "queue%3Dreports", {"reports": "0"})


def test_wrong_key_type_is_503_naming_metric_source_and_error(start_server, redis_server,
                                                              redis_db, c):
    c.set("queue:emails", "not a list")
    c.rpush("queue:sms", *range(2))
    s = start_server([redis_source(redis_server, redis_db, queues=[
        {"metric": "redis_queue_length", "keys": ["queue:*"]},
        {"metric": "typed_length", "keys": ["queue:*"], "type": "list"}])])
    wait_items(s, "redis_queue_length", "queue%3Dsms", {"sms": "2"})

    doc = wait_503(s, f"{EXTERNAL}/{NS}/redis_queue_length?labelSelector=queue%3Demails")
    msg = doc["message"]
    assert "redis_queue_length" in msg and "'jobs'" in msg, msg
    assert "queue:emails" in msg and "string" in msg, msg
    doc = wait_503(s, f"{EXTERNAL}/{NS}/typed_length?labelSelector=queue%3Demails")
    assert "typed_length" in doc["message"], doc
    assert "key 'queue:emails' is not a list" in doc["message"], doc

    # A selector that names no value gets what was read.
    assert series(s, "redis_queue_length") == {L(queue="sms"): 2}
    # Fixed: the value again.
    c.delete("queue:emails")
    c.rpush("queue:emails", 1)
    wait_items(s, "redis_queue_length", "queue%3Demails", {"emails": "1"})
    wait_items(s, "typed_length", "queue%3Demails", {"emails": "1"})


def test_failed_object_named_in_a_list_is_503(start_server, redis_server, redis_db, c):
    """A `*` object list whose selector names a queue that could not be read is a 503, not
    the list without it."""
    c.set("a:bad", "not a list")
    c.rpush("a:emails", 1, 2)
    s = start_server([redis_source(redis_server, redis_db, queues=[
        {"metric": "backlog", "keys": ["a:*"],
         "object": {"resource": "deployments.apps", "name": "worker-{queue}"}}])])
    objs = f"{CUSTOM_V1}/{NS}/deployments.apps/%2A/backlog"
    wait_until(lambda: s.get(f"{objs}?metricLabelSelector=queue%3Demails").status == 200, 5,
               what="worker-emails listed")
    doc = wait_503(s, f"{objs}?metricLabelSelector=queue+in+%28bad%2Cemails%29")
    assert "backlog" in doc["message"] and "a:bad" in doc["message"], doc
    # Named values that failed nowhere, and no value named: what was read.
    for sel in ("?metricLabelSelector=queue%3Demails", ""):
        doc = s.json(objs + sel)
        assert {i["describedObject"]["name"]: i["value"] for i in doc["items"]} == {
            "worker-emails": "2"}, doc


def test_wrong_key_type_with_fallback(start_server, redis_server, redis_db, c):
    c.set("queue:emails", "not a list")
    s = start_server([redis_source(redis_server, redis_db, queues=[
        {"metric": "redis_queue_length", "keys": ["queue:*"], "fallback": 5}])])
    item = wait_until(lambda: external_items(s, "redis_queue_length", "queue%3Demails"), 5,
                      what="the fallback item")
    assert [(i["metricLabels"], i["value"]) for i in item] == [({"queue": "emails"}, "5")]


def test_stale_source_is_still_503_not_zero(start_server, own_redis):
    own_redis.client().rpush("queue:sms", 1)
    s = start_server([redis_source(own_redis)])
    path = f"{EXTERNAL}/{NS}/redis_queue_length?labelSelector=queue%3Demails"
    wait_items(s, "redis_queue_length", "queue%3Demails", {"emails": "0"})
    own_redis.kill()
    doc = wait_503(s, path, timeout=8)
    assert "'jobs'" in doc["message"], doc


def test_unreadable_queue_index_is_503_not_zero(start_server, redis_server, redis_db, c):
    """Sidekiq's `queues` set is the preset's index of queue names: when it cannot be read, a
    queue with jobs is not discovered, so a query that names a queue must not get 0."""
    c.set("queues", "notaset")
    job = json.dumps({"queue": "emails", "class": "W", "args": [], "jid": "a1",
                      "enqueued_at": time.time()})
    c.lpush("queue:emails", job)
    s = start_server([redis_source(redis_server, redis_db, queues=[
        {"preset": "sidekiq",
         "object": {"resource": "deployments.apps", "name": "worker-{queue}"}}])])
    doc = wait_503(s, f"{EXTERNAL}/{NS}/sidekiq_queue_length?labelSelector=queue%3Demails")
    assert "sidekiq_queue_length" in doc["message"] and "'jobs'" in doc["message"], doc
    assert "queues" in doc["message"], doc
    wait_503(s, f"{EXTERNAL}/{NS}/sidekiq_queue_length"
                "?labelSelector=queue+in+%28emails%2Csms%29")
    wait_503(s, f"{CUSTOM_V1}/{NS}/deployments.apps/worker-emails/sidekiq_queue_length")
    wait_503(s, f"{CUSTOM_V1}/{NS}/deployments.apps/%2A/sidekiq_queue_length"
                "?metricLabelSelector=queue%3Demails")
    wait_503(s, f"{CUSTOM_V1}/{NS}/sidekiq_queue_length")

    # The index readable again: the queue's real value.
    c.delete("queues")
    c.sadd("queues", "emails")
    wait_items(s, "sidekiq_queue_length", "queue%3Demails", {"emails": "1"})
