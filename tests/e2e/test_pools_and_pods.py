# SPDX-License-Identifier: MIT
"""Database pools and backends scaled by the real HPA controller: PgBouncer pool utilisation
(External, Value 800m: "above 80 % of the pool"), request rate and p95 latency (Pods metrics
scraped from pods the Kubernetes API lists as Running and Ready)."""

import psycopg2

from conftest import NS
from smtest import wait_until
from workloads import (deployment, external, hpa, mark_running, pods_metric, pods_of)


def run_pods(cluster, app, ips, pod_apps=None):
    """Marks the Deployment's pods Running and Ready at these IPs, each serving /metrics
    when pod_apps is given."""
    pods = wait_until(lambda: len(pods_of(cluster, app)) >= len(ips) and pods_of(cluster, app),
                      30, what=f"{len(ips)} pods of {app}")
    apps = []
    for pod, ip in zip(pods, ips):
        if pod_apps:
            apps.append(pod_apps(ip))
        mark_running(cluster, pod, ip)
    return apps


def test_pgbouncer_pool_utilization_value_target(cluster, scalemetrics, pg):
    _, bouncer = pg
    cluster.apply(deployment("pgbouncer-clients", {"role": "db-client"}, replicas=2))
    # A Value target divides by the Ready pods the HPA counts (ceil(ratio x ready)): two of
    # them, as a kubelet would report.
    run_pods(cluster, "pgbouncer-clients", ["127.0.0.21", "127.0.0.22"])
    cluster.apply(hpa("pgbouncer-clients",
                      external("pgbouncer_pool_utilization", "800m",
                               {"database": "app", "user": "postgres"}, average=False),
                      min_replicas=2, max_replicas=6))
    held = []
    try:
        # Session pooling, pool_size 5: five clients holding a server each = utilisation 1.
        for _ in range(5):
            c = psycopg2.connect(bouncer.dsn())
            c.cursor().execute("SELECT 1")
            held.append(c)
        # ceil(1 / 0.8 x 2 ready pods) = 3; the third pod stays Pending, so 3 holds.
        cluster.wait_replicas(NS, "pgbouncer-clients", 3, 60)
    finally:
        for c in held:
            c.close()
    # Released: utilisation 0 -> minReplicas.
    cluster.wait_replicas(NS, "pgbouncer-clients", 2, 60)


def test_request_rate_pods_metric(cluster, scalemetrics, pod_apps):
    cluster.apply(deployment("backend", {"tier": "web"}, replicas=2))
    apps = run_pods(cluster, "backend", ["127.0.0.11", "127.0.0.12"], pod_apps)
    cluster.apply(hpa("backend", pods_metric("http_requests_per_second", "100"),
                      min_replicas=2, max_replicas=30))
    for a in apps:
        a.set_rate(230.0)
    # Pending pods are left out by the HPA: ceil(230 / 100 x 2) = 5, and it stays there.
    cluster.wait_replicas(NS, "backend", 5, 90)
    for a in apps:
        a.set_rate(0.0)
    cluster.wait_replicas(NS, "backend", 2, 90)


def test_p95_latency_pods_metric(cluster, scalemetrics, pod_apps):
    cluster.apply(deployment("search", {"tier": "web"}, replicas=2))
    apps = run_pods(cluster, "search", ["127.0.0.31", "127.0.0.32"], pod_apps)
    cluster.apply(hpa("search", pods_metric("http_request_duration_p95_seconds", "1"),
                      min_replicas=2, max_replicas=12))
    for a in apps:
        a.set_latency(1.5)
    # Every observation in the (1, 2] bucket: p95 = 1 + 0.95 x 1 = 1.95 s;
    # ceil(1.95 / 1 x 2) = 4.
    cluster.wait_replicas(NS, "search", 4, 90)
    for a in apps:
        a.set_latency(0.01)
    cluster.wait_replicas(NS, "search", 2, 90)
