# SPDX-License-Identifier: MIT
"""One APIService, two adapters (docs/sharing.md): scalemetrics owns external.metrics.k8s.io
and forwards what it does not serve to the adapter that owned it before (a second
scalemetrics standing in for KEDA, with delegated auth against the same apiserver). Two HPAs,
one on our metric and one on the upstream's, both reach their replica counts."""

import json

from conftest import NS
from workloads import deployment, external, hpa


def test_two_hpas_one_apiservice_ours_and_the_upstreams(cluster, scalemetrics, upstream, redis):
    r = redis.client()
    r.delete("queue:shared", "keda:orders")
    r.rpush("queue:shared", *range(25))   # ours: redis_queue_length{queue=shared}
    r.rpush("keda:orders", *range(65))    # only the upstream: keda_queue_length{queue=orders}
    for name, metric, queue in (("ours-worker", "redis_queue_length", "shared"),
                                ("upstream-worker", "keda_queue_length", "orders")):
        cluster.apply(deployment(name, {"role": "worker"}))
        cluster.apply(hpa(name, external(metric, "10", {"queue": queue})))
    cluster.wait_replicas(NS, "ours-worker", 3, 60)       # ceil(25 / 10)
    cluster.wait_replicas(NS, "upstream-worker", 7, 60)   # ceil(65 / 10)

    # Discovery through the aggregator lists both adapters' metrics.
    doc = json.loads(cluster.raw("/apis/external.metrics.k8s.io/v1beta1").stdout)
    names = {res["name"] for res in doc["resources"]}
    assert {"redis_queue_length", "keda_queue_length"} <= names, names

    # The upstream checked our service account with the cluster (its access log names it).
    text = upstream.log_path.read_text(errors="replace")
    assert "user=system:serviceaccount:scalemetrics:scalemetrics" in text, text[-3000:]

    # Drained on both sides: both HPAs back to minReplicas.
    r.delete("queue:shared", "keda:orders")
    cluster.wait_replicas(NS, "ours-worker", 1, 60)
    cluster.wait_replicas(NS, "upstream-worker", 1, 60)
