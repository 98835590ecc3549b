# SPDX-License-Identifier: MIT
"""Database pools and backends scaled by the real HPA controller: PgBouncer pool utilisation
(External, Value 800m: "above 80 % of the pool"), request rate and p95 latency (Pods metrics
scraped from pods the Kubernetes API lists as Running and Ready)."""

import psycopg2

from conftest import NS
from smtest import wait_until
from workloads import deployment, external, hpa, mark_running, pods_metric, pods_of


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


def scale_on_pods_metric(cluster, pod_apps, app, ips, metric, target, max_replicas, high, low,
                         want):
    """Two Running pods of `app` serving /metrics; `high(pod_app)` drives their metric above
    the target, then `low(pod_app)` below it. Pending pods are left out by the HPA, so the
    count it reaches stays put: ceil(value / target x 2 ready pods) = want, then minReplicas."""
    cluster.apply(deployment(app, {"tier": "web"}, replicas=2))
    apps = run_pods(cluster, app, ips, pod_apps)
    cluster.apply(hpa(app, pods_metric(metric, target), min_replicas=2,
                      max_replicas=max_replicas))
    for a in apps:
        high(a)
    cluster.wait_replicas(NS, app, want, 90)
    for a in apps:
        low(a)
    cluster.wait_replicas(NS, app, 2, 90)


def test_request_rate_pods_metric(cluster, scalemetrics, pod_apps):
    # 230 requests/s per pod against 100: ceil(230 / 100 x 2) = 5.
    scale_on_pods_metric(cluster, pod_apps, "backend", ["127.0.0.11", "127.0.0.12"],
                         "http_requests_per_second", "100", 30,
                         lambda a: a.set_rate(230.0), lambda a: a.set_rate(0.0), want=5)


def test_p95_latency_pods_metric(cluster, scalemetrics, pod_apps):
    # Every observation in the (1, 2] bucket: p95 = 1 + 0.95 x 1 = 1.95 s against 1 s:
    # ceil(1.95 / 1 x 2) = 4.
    scale_on_pods_metric(cluster, pod_apps, "search", ["127.0.0.31", "127.0.0.32"],
                         "http_request_duration_p95_seconds", "1", 12,
                         lambda a: a.set_latency(1.5), lambda a: a.set_latency(0.01), want=4)
