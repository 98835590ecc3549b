# SPDX-License-Identifier: MIT
"""Redis presets (docs/configuration.md "Redis presets", docs/redis-presets.md) against a real
redis-server loaded with the keys and payloads Sidekiq, Celery (Kombu), RQ and BullMQ write;
every number is checked."""

import base64
import json
import shutil
import tempfile
import time
import uuid

import pytest

from smtest import RedisServer, external_items, redis_source, wait_until
from test_redis_types import L, q, series, wait_series


@pytest.fixture(scope="module")
def redis(tmp_root):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    r = RedisServer(tempfile.mkdtemp(prefix="redis-presets-", dir=tmp_root)).start()
    yield r
    r.stop()


# ---- Sidekiq ------------------------------------------------------------------------------

def sidekiq_job(queue, klass, args, enqueued_at, v8=False):
    """A job hash as Sidekiq::Client#push writes it (JSON)."""
    job = {"retry": True, "queue": queue, "class": klass, "args": args,
           "jid": uuid.uuid4().hex[:24], "created_at": enqueued_at, "enqueued_at": enqueued_at}
    if v8:  # Sidekiq 8: integer milliseconds
        job["created_at"] = job["enqueued_at"] = int(enqueued_at * 1000)
    return json.dumps(job)


def load_sidekiq(c, p=""):
    now = time.time()
    c.sadd(p + "queues", "default", "critical", "low")
    # Sidekiq LPUSHes: the oldest job is the last element.
    for age in (120.0, 30.0, 5.0):  # Sidekiq <= 7: float seconds
        c.lpush(p + "queue:default", sidekiq_job("default", "HardWorker", [1, 2], now - age))
    for age in (45.0, 2.0):  # Sidekiq 8: integer milliseconds
        c.lpush(p + "queue:critical", sidekiq_job("critical", "PayWorker", ["x"], now - age,
                                                  v8=True))
    # "low" is known (in the set) but empty.
    for i in range(4):
        job = json.loads(sidekiq_job("default", "LaterWorker", [i], now))
        c.zadd(p + "schedule", {json.dumps(job): now + 3600 + i})
    for i in range(2):
        job = json.loads(sidekiq_job("default", "FlakyWorker", [i], now - 600))
        job.update({"error_message": "boom", "error_class": "RuntimeError",
                    "failed_at": now - 500, "retry_count": i})
        c.zadd(p + "retry", {json.dumps(job): now + 60 * (i + 1)})
    job = json.loads(sidekiq_job("default", "DeadWorker", [], now - 9000))
    job.update({"error_message": "gone", "retry_count": 25, "failed_at": now - 8000})
    c.zadd(p + "dead", {json.dumps(job): now - 100})
    # Other Sidekiq keys that must not be counted.
    c.incrby(p + "stat:processed", 1234)
    c.sadd(p + "processes", "host:1:abc")


# ---- Celery (Kombu Redis transport) -------------------------------------------------------

SEP = "\x06\x16"


def kombu_message(task, queue, priority=0):
    tag = str(uuid.uuid4())
    body = base64.b64encode(json.dumps([[1, 2], {}, {"callbacks": None}]).encode()).decode()
    return tag, json.dumps({
        "body": body, "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"lang": "py", "task": task, "id": str(uuid.uuid4()), "eta": None,
                    "retries": 0, "root_id": None, "parent_id": None},
        "properties": {"correlation_id": str(uuid.uuid4()), "reply_to": str(uuid.uuid4()),
                       "delivery_mode": 2, "priority": priority, "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": queue},
                       "delivery_tag": tag}})


def load_celery(c, p=""):
    # Bindings, as Kombu declares them when a worker consumes the queues.
    c.sadd(p + "_kombu.binding.celery", "celery" + SEP + "" + SEP + "celery")
    c.sadd(p + "_kombu.binding.reports", "reports" + SEP + "" + SEP + "reports")
    # Celery's own fan-out queues (remote control, events): not job queues, not served.
    c.sadd(p + "_kombu.binding.celery.pidbox", "" + SEP + "" + SEP + "w1@host.celery.pidbox")
    c.sadd(p + "_kombu.binding.celeryev", "worker.#" + SEP + "" + SEP +
           "celeryev.0b8e6f8c-8f6a-4a43-9d1c-5c8a7d3e2f10")
    # Kombu LPUSHes, priority steps 0 (the bare name), 3, 6, 9.
    for _ in range(4):
        c.lpush(p + "celery", kombu_message("tasks.add", "celery")[1])
    for _ in range(2):
        c.lpush(p + "celery" + SEP + "3", kombu_message("tasks.add", "celery", 3)[1])
    c.lpush(p + "celery" + SEP + "9", kombu_message("tasks.add", "celery", 9)[1])
    for _ in range(3):
        c.lpush(p + "reports", kombu_message("tasks.report", "reports")[1])
    # Delivered, not yet acknowledged: hash unacked + zset unacked_index.
    for _ in range(2):
        tag, msg = kombu_message("tasks.add", "celery")
        c.hset(p + "unacked", tag, json.dumps([json.loads(msg), "", "celery"]))
        c.zadd(p + "unacked_index", {tag: time.time()})


# ---- RQ -----------------------------------------------------------------------------------

def rq_job(c, p, queue, status):
    jid = str(uuid.uuid4())
    c.hset(f"{p}job:{jid}", mapping={"created_at": "2024-01-01T00:00:00.000000Z",
                                      "origin": queue, "status": status,
                                      "description": "app.tasks.work(1)", "timeout": 180})
    return jid


def load_rq(c, p="rq:"):
    now = time.time()
    c.sadd(p + "queues", f"{p}queue:default", f"{p}queue:high")
    for _ in range(3):
        c.rpush(f"{p}queue:default", rq_job(c, p, "default", "queued"))
    c.rpush(f"{p}queue:high", rq_job(c, p, "high", "queued"))
    for _ in range(2):  # StartedJobRegistry: score = expiry
        c.zadd(f"{p}wip:default", {rq_job(c, p, "default", "started"): now + 180})
    c.zadd(f"{p}failed:default", {rq_job(c, p, "default", "failed"): now + 86400})
    for i in range(2):  # ScheduledJobRegistry: score = when
        c.zadd(f"{p}scheduled:high", {rq_job(c, p, "high", "scheduled"): now + 300 + i})
    c.zadd(f"{p}finished:default", {rq_job(c, p, "default", "finished"): now + 500})


# ---- BullMQ -------------------------------------------------------------------------------

def load_bullmq(c, p="bull"):
    now_ms = int(time.time() * 1000)
    c.hset(f"{p}:email:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:5.1.0"})
    c.set(f"{p}:email:id", 12)
    for jid in range(1, 13):
        c.hset(f"{p}:email:{jid}", mapping={"name": "send", "data": json.dumps({"to": "a@b"}),
                                             "opts": "{}", "timestamp": now_ms, "delay": 0,
                                             "priority": 0})
    c.lpush(f"{p}:email:wait", "1", "2", "3")
    c.lpush(f"{p}:email:active", "4")
    # Delayed: score = due_ms * 0x1000 + counter. Two due, one in a minute.
    c.zadd(f"{p}:email:delayed", {"5": (now_ms - 5000) * 4096 + 1,
                                  "6": (now_ms - 1000) * 4096 + 4095,
                                  "7": (now_ms + 60000) * 4096 + 2})
    # Prioritized: score = priority * 2^32 + counter.
    c.zadd(f"{p}:email:prioritized", {"8": 1 * 2**32 + 1, "9": 5 * 2**32 + 2})
    c.xadd(f"{p}:email:events", {"event": "added", "jobId": "9"})
    # An older BullMQ queue that is paused: its jobs moved to the paused list.
    c.hset(f"{p}:legacy:meta", mapping={"paused": 1, "version": "bullmq:4.17.0"})
    c.lpush(f"{p}:legacy:paused", "1", "2")
    # Known only by its id counter.
    c.set(f"{p}:idonly:id", 5)


@pytest.fixture(scope="module")
def srv(module_server_factory, redis):
    c = redis.client(0)
    c.flushdb()
    load_sidekiq(c)
    load_celery(c)
    load_rq(c)
    load_bullmq(c)
    s = module_server_factory([redis_source(redis, db=0, queues=[
        {"preset": "sidekiq"}, {"preset": "celery"}, {"preset": "rq"}, {"preset": "bullmq"}])])
    wait_until(lambda: external_items(s, "sidekiq_queue_length"), 5, what="first round")
    return s


def test_sidekiq_lengths_and_sets(srv):
    wait_series(srv, "sidekiq_queue_length", {L(queue="default"): 3, L(queue="critical"): 2,
                                              L(queue="low"): 0})
    wait_series(srv, "sidekiq_scheduled", {L(): 4})
    wait_series(srv, "sidekiq_retries", {L(): 2})
    wait_series(srv, "sidekiq_dead", {L(): 1})


def test_sidekiq_latency_float_seconds_and_integer_ms(srv):
    got = series(srv, "sidekiq_queue_latency_seconds")
    assert set(got) == {L(queue="default"), L(queue="critical"), L(queue="low")}, got
    assert 119 <= got[L(queue="default")] <= 124, got  # Sidekiq 7 float seconds, oldest 120s
    assert 44 <= got[L(queue="critical")] <= 49, got   # Sidekiq 8 integer ms, oldest 45s
    assert got[L(queue="low")] == 0, got               # empty queue


def test_celery_queues_with_priority_lists_and_unacked(srv):
    wait_series(srv, "celery_queue_length", {L(queue="celery"): 7, L(queue="reports"): 3})
    wait_series(srv, "celery_unacked", {L(): 2})


def test_rq_queues_and_registries(srv):
    wait_series(srv, "rq_queue_length", {L(queue="default"): 3, L(queue="high"): 1})
    wait_series(srv, "rq_started", {L(queue="default"): 2, L(queue="high"): 0})
    wait_series(srv, "rq_failed", {L(queue="default"): 1, L(queue="high"): 0})
    wait_series(srv, "rq_scheduled", {L(queue="default"): 0, L(queue="high"): 2})


def test_bullmq(srv):
    wait_series(srv, "bullmq_waiting", {L(queue="email"): 3, L(queue="legacy"): 0,
                                        L(queue="idonly"): 0})
    wait_series(srv, "bullmq_active", {L(queue="email"): 1, L(queue="legacy"): 0,
                                       L(queue="idonly"): 0})
    wait_series(srv, "bullmq_delayed", {L(queue="email"): 3, L(queue="legacy"): 0,
                                        L(queue="idonly"): 0})
    wait_series(srv, "bullmq_delayed_due", {L(queue="email"): 2, L(queue="legacy"): 0,
                                            L(queue="idonly"): 0})
    wait_series(srv, "bullmq_prioritized", {L(queue="email"): 2, L(queue="legacy"): 0,
                                            L(queue="idonly"): 0})
    # Only where the paused list exists (BullMQ 6 has none).
    wait_series(srv, "bullmq_paused", {L(queue="legacy"): 2})


def test_new_queues_appear_and_vanish_without_restart(srv, redis):
    c = redis.client(0)
    c.sadd("queues", "mailers")
    c.lpush("queue:mailers", sidekiq_job("mailers", "M", [], time.time() - 10))
    c.set("bull:fresh:id", 1)
    c.lpush("bull:fresh:wait", "1")
    wait_series(srv, "sidekiq_queue_length", {L(queue="default"): 3, L(queue="critical"): 2,
                                              L(queue="low"): 0, L(queue="mailers"): 1})
    wait_series(srv, "bullmq_waiting", {L(queue="email"): 3, L(queue="legacy"): 0,
                                        L(queue="idonly"): 0, L(queue="fresh"): 1})
    c.srem("queues", "mailers")
    c.delete("queue:mailers", "bull:fresh:id", "bull:fresh:wait")
    wait_series(srv, "sidekiq_queue_length", {L(queue="default"): 3, L(queue="critical"): 2,
                                              L(queue="low"): 0})
    wait_series(srv, "bullmq_waiting", {L(queue="email"): 3, L(queue="legacy"): 0,
                                        L(queue="idonly"): 0})


@pytest.mark.parametrize("preset,prefix,loader,metric,expect", [
    ("sidekiq", "myapp:", load_sidekiq, "sidekiq_queue_length",
     {L(queue="default"): 3, L(queue="critical"): 2, L(queue="low"): 0}),
    ("celery", "pfx.", load_celery, "celery_queue_length",
     {L(queue="celery"): 7, L(queue="reports"): 3}),
    ("rq", "jobs:", load_rq, "rq_queue_length", {L(queue="default"): 3, L(queue="high"): 1}),
    ("bullmq", "{app}", load_bullmq, "bullmq_waiting",
     {L(queue="email"): 3, L(queue="legacy"): 0, L(queue="idonly"): 0}),
])
def test_prefix_replaces_the_framework_prefix(start_server, redis, preset, prefix, loader,
                                              metric, expect):
    db = 5
    c = redis.client(db)
    c.flushdb()
    loader(c, prefix)
    loader(c)  # the default prefix's keys are there too and must not be read
    c.lpush("queue:default" if preset == "sidekiq" else "unrelated", "x")
    s = start_server([redis_source(redis, db=db, queues=[{"preset": preset,
                                                           "prefix": prefix}])])
    if preset == "sidekiq":
        c.lpush("queue:default", "more")  # default-prefix list grows; myapp: must not
    wait_series(s, metric, expect)


def test_preset_object_mapping(start_server, redis):
    c = redis.client(6)
    c.flushdb()
    load_sidekiq(c)
    s = start_server([redis_source(redis, db=6, queues=[
        {"preset": "sidekiq",
         "object": {"resource": "deployments.apps", "name": "sidekiq-{queue}"}}])])
    path = ("/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/deployments.apps/"
            "sidekiq-default/sidekiq_queue_length")
    doc = wait_until(lambda: s.json(path), 5, what="the object metric")
    assert doc["items"][0]["value"] == "3", doc
    # Unlabelled preset metrics stay external-only.
    assert q(external_items(s, "sidekiq_dead")[0]["value"]) == 1


def test_max_series_never_serves_a_partial_celery_sum(start_server, redis):
    """Each Celery queue is 4 keys (its priority lists): with max_series 6 only one queue fits
    whole; the other is cut entirely, not summed from some of its lists."""
    c = redis.client(7)
    c.flushdb()
    load_celery(c)
    s = start_server([redis_source(redis, db=7, max_series=6, queues=[
        {"preset": "celery", "names": ["celery", "reports"]}])])
    wait_until(lambda: external_items(s, "celery_queue_length"), 5, what="a first round")
    got = series(s, "celery_queue_length")
    assert got in ({L(queue="celery"): 7}, {L(queue="reports"): 3}), got
    wait_until(lambda: "max_series (6) reached" in s.log_text(), 5, what="the log line")
