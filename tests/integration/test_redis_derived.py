# SPDX-License-Identifier: MIT
"""Derived queue metrics (docs/configuration.md "Derived queue metrics"): M_growth_per_second and
M_drain_seconds, with real producers and consumers at known rates against a real Redis."""

import shutil
import tempfile
import threading
import time

import pytest

from smtest import SLOW, RedisServer, external_items, redis_source, wait_until
from test_redis_types import L, q, series

WINDOW = 4  # seconds; rounds every 1s


@pytest.fixture(scope="module")
def redis(tmp_root):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    r = RedisServer(tempfile.mkdtemp(prefix="redis-derived-", dir=tmp_root)).start()
    yield r
    r.stop()


class Worker(threading.Thread):
    """Calls step(client) `rate` times a second, evenly, until stopped."""

    def __init__(self, redis, rate, step):
        super().__init__(daemon=True)
        self.client = redis.client()
        self.rate = rate
        self.step = step
        self.halt = threading.Event()

        self.done = [(time.monotonic(), 0)]  # (when, steps so far)

    def run(self):
        due = time.monotonic()
        n = 0
        while not self.halt.is_set():
            n += 1
            self.step(self.client)
            now = time.monotonic()
            self.done.append((now, n))
            # Steady pacing; after a stall (a loaded machine) no burst to catch up, which
            # would make the rate over one window differ from the next.
            due = max(due + 1 / self.rate, now)
            if due > now:
                self.halt.wait(due - now)

    def measured_rate(self, seconds=WINDOW):
        """Steps per second actually made over the last `seconds` (a loaded machine may not
        keep up with `rate`)."""
        t_end, n_end = self.done[-1]
        since = [(t, n) for t, n in self.done if t <= t_end - seconds] or self.done[:1]
        t0, n0 = since[-1]
        return (n_end - n0) / (t_end - t0)

    def stop(self):
        self.halt.set()
        self.join(5)


def value(server, metric, queue):
    items = external_items(server, metric, f"queue%3D{queue}")
    return q(items[0]["value"]) if items else None


def settle():
    time.sleep((WINDOW + 2.5) * SLOW)


@pytest.fixture
def rules():
    return [{"metric": "d_len", "keys": ["dq:*"], "derived": True, "window": f"{WINDOW}s",
             "drain_cap": 500},
            {"metric": "dc_len", "keys": ["dq:*"], "derived": True, "window": f"{WINDOW}s",
             "drain_cap": 500, "dequeue_counter": "done:{queue}"}]


def test_metrics_declared_and_absent_until_two_samples(start_server, redis, rules):
    c = redis.client()
    c.flushall()
    c.rpush("dq:idle", *range(10))
    s = start_server([redis_source(redis, queues=rules)])
    wait_until(lambda: value(s, "d_len", "idle") == 10, 5, what="d_len")
    wait_until(lambda: value(s, "d_len_growth_per_second", "idle") is not None, 5,
               what="growth after a second round")
    assert value(s, "d_len_growth_per_second", "idle") == 0
    assert value(s, "d_len_drain_seconds", "idle") == 500  # backlog, not draining: the cap
    items = external_items(s, "d_len_drain_seconds")
    assert items[0].get("window") in (None, WINDOW), items


def test_consumer_only(start_server, redis, rules):
    """20 items/s popped from a backlog: growth -20/s, drain = backlog / 20."""
    c = redis.client()
    c.flushall()
    c.rpush("dq:drain", *range(2000))
    s = start_server([redis_source(redis, queues=rules)])
    w = Worker(redis, 20, lambda cl: (cl.lpop("dq:drain"), cl.incr("done:drain")))
    w.start()
    try:
        settle()
        growth = value(s, "d_len_growth_per_second", "drain")
        drain = value(s, "d_len_drain_seconds", "drain")
        backlog = value(s, "d_len", "drain")
        cdrain = value(s, "dc_len_drain_seconds", "drain")
        rate = w.measured_rate()
    finally:
        w.stop()
    assert rate > 5, rate
    assert -1.3 * rate <= growth <= -0.7 * rate, (growth, rate)
    assert 0.7 * backlog / rate <= drain <= 1.3 * backlog / rate, (drain, backlog, rate)
    assert 0.7 * backlog / rate <= cdrain <= 1.3 * backlog / rate, (cdrain, backlog, rate)


def test_producer_only_is_capped(start_server, redis, rules):
    """10 items/s pushed, nothing popped: growth +10/s, drain = the cap (not Inf, not an
    error)."""
    c = redis.client()
    c.flushall()
    c.rpush("dq:grow", "seed")
    s = start_server([redis_source(redis, queues=rules)])
    w = Worker(redis, 10, lambda cl: cl.rpush("dq:grow", "x"))
    w.start()
    try:
        settle()
        growth = value(s, "d_len_growth_per_second", "grow")
        drain = value(s, "d_len_drain_seconds", "grow")
        rate = w.measured_rate()
    finally:
        w.stop()
    assert 0.7 * rate <= growth <= 1.3 * rate, (growth, rate)
    assert drain == 500, drain


def test_producer_and_consumer_with_counter(start_server, redis, rules):
    """30/s in, 10/s out: growth +20/s. Lengths alone never see a decrease (the lower bound
    is 0: drain = cap); with the consumer's counter, drain = backlog / 10."""
    c = redis.client()
    c.flushall()
    c.rpush("dq:both", *range(100))
    s = start_server([redis_source(redis, queues=rules)])
    prod = Worker(redis, 30, lambda cl: cl.rpush("dq:both", "x"))
    cons = Worker(redis, 10, lambda cl: (cl.lpop("dq:both"), cl.incr("done:both")))
    prod.start()
    cons.start()
    try:
        settle()
        growth = value(s, "d_len_growth_per_second", "both")
        drain = value(s, "d_len_drain_seconds", "both")
        cdrain = value(s, "dc_len_drain_seconds", "both")
        backlog = value(s, "dc_len", "both")
        pin, pout = prod.measured_rate(), cons.measured_rate()
    finally:
        prod.stop()
        cons.stop()
    assert pin > pout + 3, (pin, pout)
    net = pin - pout
    assert 0.5 * net <= growth <= 1.5 * net, (growth, pin, pout)
    assert drain == 500, drain
    assert 0.7 * backlog / pout <= cdrain <= 1.3 * backlog / pout, (cdrain, backlog, pout)


def test_empty_queue_drains_in_zero(start_server, redis):
    c = redis.client()
    c.flushall()
    s = start_server([redis_source(redis, queues=[
        {"metric": "e_len", "keys": ["empty"], "derived": True, "window": "2s"}])])
    wait_until(lambda: value(s, "e_len_drain_seconds", "empty") == 0, 5, what="drain 0")
    assert value(s, "e_len_growth_per_second", "empty") == 0


def test_preset_derived(start_server, redis):
    c = redis.client()
    c.flushall()
    c.sadd("queues", "default")
    c.lpush("queue:default", *["{}"] * 50)
    s = start_server([redis_source(redis, queues=[
        {"preset": "sidekiq", "derived": True, "window": "2s", "drain_cap": 99}])])
    wait_until(lambda: value(s, "sidekiq_queue_length_drain_seconds", "default") == 99, 6,
               what="sidekiq drain time at the cap")
    assert value(s, "sidekiq_queue_length_growth_per_second", "default") == 0
