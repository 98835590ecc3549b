# SPDX-License-Identifier: MIT
"""Failure semantics (docs/design.md "Failure semantics"): a source that stops answering makes its metrics 503 after
max_age (or serves `fallback:`), names the source and its error, never takes the server down,
and recovers by itself when Redis comes back. Each test has its own Redis and server."""

import time

from smtest import (CUSTOM_V2, EXTERNAL, assert_status, external_items, redis_source, wait_until,
                    wait_external_value)

EMAILS = f"{EXTERNAL}/namespaces/default/redis_queue_length?labelSelector=queue%3Demails"
INTERVAL, MAX_AGE = 1.0, 3.0
REDIS_ERRORS = ("Connection refused", "Server closed the connection", "Connection reset",
                "Timeout", "timed out")


def _503(server, path=EMAILS):
    r = server.get(path)
    return r if r.status == 503 else None


def test_dead_redis_gives_503_then_recovers(start_server, own_redis):
    own_redis.client().lpush("queue:emails", *range(3))
    s = start_server([redis_source(own_redis)])
    wait_external_value(s, "redis_queue_length", "queue%3Demails", "3")
    pid = s.pid

    own_redis.kill()
    killed = time.monotonic()
    # Within max_age the last good value is still served.
    r = s.get(EMAILS)
    assert r.status == 200, r

    r = wait_until(lambda: _503(s), MAX_AGE + INTERVAL + 1.5, interval=0.1,
                   what="503 after Redis died")
    took = time.monotonic() - killed
    assert took >= MAX_AGE - INTERVAL - 0.5, f"stale after only {took:.1f}s (max_age {MAX_AGE}s)"
    doc = assert_status(r, 503, "ServiceUnavailable")
    assert "jobs" in doc["message"], doc  # the source's name
    assert any(e.lower() in doc["message"].lower() for e in REDIS_ERRORS), doc

    # Reconnect attempts keep the last error fresh: the refusal shows up within a backoff cap.
    wait_until(lambda: "connection refused" in s.get(EMAILS).json()["message"].lower(), 12,
               interval=0.5, what="'Connection refused' in the 503 message")

    # The other metric paths are stale too; the server itself keeps answering.
    assert_status(s.get(f"{CUSTOM_V2}/namespaces/default/metrics/redis_queue_length"),
                  503, "ServiceUnavailable")
    for path in ("/healthz", "/livez", EXTERNAL, CUSTOM_V2, "/apis"):
        r = s.get(path)
        assert r.status == 200, (path, r)
    assert s.running() and s.pid == pid

    # Redis comes back (same port, empty: no persistence); fresh values within the backoff cap.
    own_redis.start()
    own_redis.client().lpush("queue:emails", *range(7))
    wait_external_value(s, "redis_queue_length", "queue%3Demails", "7", timeout=15)
    assert s.running() and s.pid == pid


def test_fallback_is_served_when_stale(start_server, own_redis):
    own_redis.client().lpush("queue:emails", *range(4))
    queues = [{"metric": "redis_queue_length", "keys": ["queue:*"], "fallback": 0}]
    s = start_server([redis_source(own_redis, queues=queues)])
    wait_external_value(s, "redis_queue_length", "queue%3Demails", "4")

    own_redis.kill()
    item = wait_external_value(s, "redis_queue_length", "queue%3Demails", "0",
                               timeout=MAX_AGE + INTERVAL + 1.5)
    assert item["metricLabels"] == {"queue": "emails"}, item
    # Still 200 (never 503) a while later.
    time.sleep(INTERVAL)
    r = s.get(EMAILS)
    assert r.status == 200, r
    assert [i["value"] for i in r.json()["items"]] == ["0"], r

    own_redis.start()
    own_redis.client().lpush("queue:emails", *range(9))
    wait_external_value(s, "redis_queue_length", "queue%3Demails", "9", timeout=15)


def test_fallback_only_on_its_rule(start_server, own_redis):
    own_redis.client().lpush("queue:emails", *range(2))
    queues = [{"metric": "redis_queue_length", "keys": ["queue:*"], "fallback": 0},
              {"metric": "strict_queue_length", "keys": ["queue:*"]}]
    s = start_server([redis_source(own_redis, queues=queues)])
    wait_external_value(s, "strict_queue_length", "queue%3Demails", "2")
    own_redis.kill()
    r = wait_until(lambda: _503(s, f"{EXTERNAL}/namespaces/default/strict_queue_length"),
                   MAX_AGE + INTERVAL + 1.5, what="503 on the rule without fallback")
    assert_status(r, 503, "ServiceUnavailable")
    assert [i["value"] for i in external_items(s, "redis_queue_length", "queue%3Demails")] == ["0"]


def test_redis_down_from_the_start(start_server, own_redis):
    """A known metric whose source never succeeded is 503 (not 404); the server still starts
    and stops cleanly."""
    own_redis.kill()
    s = start_server([redis_source(own_redis)], wait=False)
    wait_until(lambda: s.get("/healthz").status == 200, 15, what="/healthz")
    r = wait_until(lambda: _503(s, f"{EXTERNAL}/namespaces/default/redis_queue_length"),
                   MAX_AGE + INTERVAL + 2, what="503 for a never-collected metric")
    doc = assert_status(r, 503, "ServiceUnavailable")
    assert "jobs" in doc["message"], doc
    assert s.running()
