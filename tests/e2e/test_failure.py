# SPDX-License-Identifier: MIT
"""Failure as the HPA controller sees it: a dead source gives our 503 message in
`kubectl describe hpa` and the HPA holds its replicas; a dead scalemetrics makes the
APIServices unavailable and the HPA holds; both recover on restart."""

from conftest import NS, wait_apiservices
from smtest import wait_until
from workloads import deployment, describe_hpa, external, hpa, hpa_conditions


def start_worker(cluster, redis, name, queue, jobs):
    r = redis.client()
    r.delete(f"queue:{queue}")
    r.rpush(f"queue:{queue}", *range(jobs))
    cluster.apply(deployment(name, {"role": "worker"}))
    cluster.apply(hpa(name, external("redis_queue_length", "10", {"queue": queue})))
    cluster.wait_replicas(NS, name, -(-jobs // 10), 60)


def scaling_active(cluster, name, status, reason=None):
    c = hpa_conditions(cluster, name).get("ScalingActive")
    return c if c and c["status"] == status and (not reason or c["reason"] == reason) else None


def test_dead_redis_shows_our_503_and_the_hpa_holds(cluster, scalemetrics, redis):
    start_worker(cluster, redis, "failover-worker", "failover", 30)  # 3 replicas
    redis.kill()
    try:
        # After max_age (3s) the source is stale: 503 with the source's name and error,
        # which the HPA controller puts in its condition and events.
        c = wait_until(lambda: scaling_active(cluster, "failover-worker", "False"), 40,
                       interval=0.5, what="ScalingActive False")
        assert c["reason"] == "FailedGetExternalMetric", c
        assert "metric 'redis_queue_length' is unavailable: source 'jobs'" in c["message"], c
        text = describe_hpa(cluster, "failover-worker")
        assert "is unavailable: source 'jobs' has had no successful round" in text, text
        assert cluster.json("get", "deployment", "failover-worker",
                            "-n", NS)["spec"]["replicas"] == 3
    finally:
        redis.start()
    # A restarted Redis without persistence is empty: the jobs come back, the HPA reads
    # them again and keeps 3.
    redis.client().rpush("queue:failover", *range(30))
    wait_until(lambda: scaling_active(cluster, "failover-worker", "True", "ValidMetricFound"),
               40, interval=0.5, what="ScalingActive True ValidMetricFound")
    assert cluster.json("get", "deployment", "failover-worker", "-n", NS)["spec"]["replicas"] == 3


def test_dead_scalemetrics_makes_apiservices_unavailable_and_the_hpa_holds(
        cluster, scalemetrics, redis):
    start_worker(cluster, redis, "outage-worker", "outage", 40)  # 4 replicas
    scalemetrics.stop()
    try:
        conds = wait_apiservices(cluster, False, 90)
        assert all(c["reason"] in ("FailedDiscoveryCheck", "ServiceNotFound", "MissingEndpoints")
                   for c in conds), conds
        wait_until(lambda: scaling_active(cluster, "outage-worker", "False"), 40,
                   interval=0.5, what="ScalingActive False")
        assert cluster.json("get", "deployment", "outage-worker",
                            "-n", NS)["spec"]["replicas"] == 4
    finally:
        scalemetrics.start()
    wait_apiservices(cluster, True, 90)
    wait_until(lambda: scaling_active(cluster, "outage-worker", "True", "ValidMetricFound"), 60,
               interval=0.5, what="ScalingActive True ValidMetricFound")
    assert cluster.json("get", "deployment", "outage-worker", "-n", NS)["spec"]["replicas"] == 4


def test_unreadable_series_shows_why_in_the_hpa(cluster, scalemetrics, redis):
    """A key of the wrong type is not "no metrics returned": the HPA's condition carries our
    503 naming the metric, the source and the key."""
    r = redis.client()
    r.delete("queue:broken")
    r.set("queue:broken", "not a list")
    try:
        cluster.apply(deployment("broken-worker", {"role": "worker"}))
        cluster.apply(hpa("broken-worker",
                          external("redis_queue_length", "10", {"queue": "broken"})))
        c = wait_until(lambda: scaling_active(cluster, "broken-worker", "False"), 40,
                       interval=0.5, what="ScalingActive False")
        assert c["reason"] == "FailedGetExternalMetric", c
        assert ("metric 'redis_queue_length' is unavailable: source 'jobs' could not read "
                "queue=broken: key 'queue:broken' is a string") in c["message"], c
        # Fixed: the same key as a list is read again.
        r.delete("queue:broken")
        r.rpush("queue:broken", *range(25))
        cluster.wait_replicas(NS, "broken-worker", 3, 60)
        assert scaling_active(cluster, "broken-worker", "True", "ValidMetricFound")
    finally:
        r.delete("queue:broken")


def test_unknown_metric_is_named_in_the_hpa(cluster, scalemetrics):
    cluster.apply(deployment("unknown-metric", {"role": "worker"}))
    cluster.apply(hpa("unknown-metric", external("no_such_metric", "10", {"queue": "x"})))
    c = wait_until(lambda: scaling_active(cluster, "unknown-metric", "False"), 40,
                   interval=0.5, what="ScalingActive False")
    assert c["reason"] == "FailedGetExternalMetric", c
    assert "the server could not find the metric no_such_metric for external metrics" in \
        c["message"], c
