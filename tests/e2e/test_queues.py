# SPDX-License-Identifier: MIT
"""Queue workers scaled by the real HPA controller through the real aggregator: a Redis list
by glob rule (External), a Celery queue (preset), and a queue served on its worker Deployment
(Object). Each scales up on a backlog and back to minReplicas once the queue is drained and
Redis has deleted the emptied list."""

from conftest import NS
from workloads import deployment, external, hpa, object_metric


def test_glob_queue_scales_up_and_back_down(cluster, scalemetrics, redis):
    r = redis.client()
    r.delete("queue:emails")
    r.rpush("queue:emails", *[f"job-{i}" for i in range(95)])
    cluster.apply(deployment("email-worker", {"role": "worker"}))
    cluster.apply(hpa("email-worker",
                      external("redis_queue_length", "10", {"queue": "emails"})))
    # ceil(95 / 10) = 10
    cluster.wait_replicas(NS, "email-worker", 10, 60)

    # Drained: LPOP empties the list and Redis deletes the key. 0 jobs -> minReplicas.
    while r.lpop("queue:emails"):
        pass
    assert r.exists("queue:emails") == 0
    cluster.wait_replicas(NS, "email-worker", 1, 60)


def test_celery_queue_scales_up_and_back_down(cluster, scalemetrics, redis):
    r = redis.client()
    r.delete("reports")
    # What a Celery worker declares at start (Kombu's binding set): how the preset finds the
    # queue, also once the list is gone.
    r.sadd("_kombu.binding.reports", "reports\x06\x16\x06\x16reports")
    r.rpush("reports", *[f'{{"id": {i}}}' for i in range(45)])
    cluster.apply(deployment("celery-reports", {"role": "worker"}))
    cluster.apply(hpa("celery-reports",
                      external("celery_queue_length", "10", {"queue": "reports"})))
    cluster.wait_replicas(NS, "celery-reports", 5, 60)  # ceil(45 / 10)
    r.delete("reports")
    cluster.wait_replicas(NS, "celery-reports", 1, 60)


def test_object_metric_on_the_worker_deployment(cluster, scalemetrics, redis):
    r = redis.client()
    r.delete("work:thumbnails")
    r.rpush("work:thumbnails", *range(35))
    cluster.apply(deployment("worker-thumbnails", {"role": "worker"}))
    cluster.apply(hpa("worker-thumbnails",
                      object_metric("worker_queue_length", "Deployment", "worker-thumbnails",
                                    "10")))
    cluster.wait_replicas(NS, "worker-thumbnails", 4, 60)  # ceil(35 / 10)
    while r.lpop("work:thumbnails"):
        pass
    cluster.wait_replicas(NS, "worker-thumbnails", 1, 60)
