# SPDX-License-Identifier: MIT
"""The Redis collector against a real redis-server: every data type (list, zset, set, hash,
stream with consumer groups), type auto-detection, a key of the wrong type, glob discovery
as queues come and go, scan_count, max_series."""

import shutil
import tempfile
import time

import pytest

from smtest import (EXTERNAL, SLOW, RedisServer, assert_status, external_items, redis_source,
                    wait_external_value, wait_until)


def q(v):
    """A Kubernetes quantity as served ("37", "1500m", "2k") as a float."""
    mult = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    if v[-1] in mult:
        return float(v[:-1]) * mult[v[-1]]
    return float(v)


def series(server, metric):
    """{frozenset(labels.items()): value} of every item of an external metric."""
    return {frozenset(i["metricLabels"].items()): q(i["value"])
            for i in external_items(server, metric)}


def wait_series(server, metric, expect, timeout=5.0):
    def check():
        got = series(server, metric)
        return got if got == expect else None
    try:
        return wait_until(check, timeout, what=f"{metric} == {expect}")
    except AssertionError:
        raise AssertionError(f"{metric}: want {expect}, got {series(server, metric)}\n"
                             f"{server.log_text()}")


def L(**kw):
    return frozenset(kw.items())


@pytest.fixture(scope="module")
def redis(tmp_root):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    r = RedisServer(tempfile.mkdtemp(prefix="redis-types-", dir=tmp_root)).start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def data(redis):
    c = redis.client()
    c.flushall()
    c.rpush("q:list", *range(7))
    c.zadd("q:zset", {f"m{i}": i for i in range(5)})
    c.sadd("q:set", *range(3))
    c.hset("q:hash", mapping={f"f{i}": i for i in range(4)})
    c.set("q:string", "not a queue")
    # A stream of 10 entries: g1 has read 4 (all pending, none acked); g2 is caught up and
    # acked; g3 was never read.
    for i in range(10):
        c.xadd("q:stream", {"n": i}, id=f"{i + 1}-0")
    c.xgroup_create("q:stream", "g1", id="0")
    c.xgroup_create("q:stream", "g2", id="0")
    c.xgroup_create("q:stream", "g3", id="0")
    c.xreadgroup("g1", "c1", {"q:stream": ">"}, count=4)
    got = c.xreadgroup("g2", "c1", {"q:stream": ">"})
    c.xack("q:stream", "g2", *[e[0] for e in got[0][1]])
    # A stream with a deleted entry: Redis 7 cannot tell lag (nil).
    for i in range(5):
        c.xadd("q:holey", {"n": i}, id=f"{i + 1}-0")
    c.xgroup_create("q:holey", "gh", id="0")
    c.xdel("q:holey", "2-0")
    return c


@pytest.fixture(scope="module")
def srv(module_server_factory, redis, data):
    src = redis_source(redis, queues=[
        {"metric": "t_auto", "keys": ["q:list", "q:zset", "q:set", "q:hash", "q:missing"]},
        {"metric": "t_list", "keys": ["q:list"], "type": "list"},
        {"metric": "t_zset", "keys": ["q:zset"], "type": "zset"},
        {"metric": "t_set", "keys": ["q:set"], "type": "set"},
        {"metric": "t_hash", "keys": ["q:hash"], "type": "hash"},
        {"metric": "t_stream", "keys": ["q:stream", "q:holey"], "label": "stream"},
        {"metric": "t_wrong", "keys": ["q:set", "q:list"], "type": "list"},
        {"metric": "t_string", "keys": ["q:string", "q:list"]},
    ])
    s = module_server_factory([src])
    wait_external_value(s, "t_list", None, "7")
    return s


def test_each_type_auto_detected(srv):
    wait_series(srv, "t_auto", {L(queue="q_list"): 7, L(queue="q_zset"): 5, L(queue="q_set"): 3,
                                L(queue="q_hash"): 4, L(queue="q_missing"): 0})


@pytest.mark.parametrize("metric,key,value", [
    ("t_list", "q_list", 7), ("t_zset", "q_zset", 5), ("t_set", "q_set", 3),
    ("t_hash", "q_hash", 4)])
def test_each_type_configured(srv, metric, key, value):
    wait_series(srv, metric, {L(queue=key): value})


def test_stream_length_lag_pending(srv):
    got = wait_series(srv, "t_stream", {
        L(stream="q_stream", kind="length"): 10,
        L(stream="q_stream", kind="lag", group="g1"): 6,
        L(stream="q_stream", kind="pending", group="g1"): 4,
        L(stream="q_stream", kind="lag", group="g2"): 0,
        L(stream="q_stream", kind="pending", group="g2"): 0,
        L(stream="q_stream", kind="lag", group="g3"): 10,
        L(stream="q_stream", kind="pending", group="g3"): 0,
        # lag is nil after XDEL: no lag series, but length and pending are served
        L(stream="q_holey", kind="length"): 4,
        L(stream="q_holey", kind="pending", group="gh"): 0,
    })
    assert got


def test_stream_nil_lag_is_explained_in_the_log(srv):
    wait_until(lambda: "q:holey" in srv.log_text() and "cannot tell the lag" in srv.log_text(),
               5, what="a log line about the nil lag")


def test_wrong_type_is_a_per_series_error(srv):
    # q:set is not a list: absent (not 0), q:list still served, a log line names the key.
    wait_series(srv, "t_wrong", {L(queue="q_list"): 7})
    wait_series(srv, "t_string", {L(queue="q_list"): 7})
    log = wait_until(lambda: srv.log_text() if "'q:set'" in srv.log_text()
                     and "'q:string' is a string" in srv.log_text() else None, 5,
                     what="wrong-type log")
    assert "skipped" in log
    # Asked for by name, the key that could not be read is a 503 that says why.
    for metric, queue, why in (("t_wrong", "q_set", "key 'q:set' is not a list"),
                               ("t_string", "q_string", "key 'q:string' is a string")):
        r = srv.get(f"{EXTERNAL}/namespaces/default/{metric}?labelSelector=queue%3D{queue}")
        doc = assert_status(r, 503, "ServiceUnavailable")
        assert f"metric '{metric}'" in doc["message"] and "'jobs'" in doc["message"], doc
        assert why in doc["message"], doc
    assert srv.running()


def test_glob_discovery_add_and_remove(start_server, redis):
    c = redis.client(3)
    c.flushdb()
    c.rpush("jobs:a", 1, 2)
    c.rpush("jobs:b", 1)
    s = start_server([redis_source(redis, db=3, scan_count=2, queues=[
        {"metric": "g_len", "keys": ["jobs:*"]}])])
    wait_series(s, "g_len", {L(queue="a"): 2, L(queue="b"): 1})
    c.rpush("jobs:new", *range(9))
    wait_series(s, "g_len", {L(queue="a"): 2, L(queue="b"): 1, L(queue="new"): 9})
    c.delete("jobs:a")
    wait_series(s, "g_len", {L(queue="b"): 1, L(queue="new"): 9})


def test_scan_count_small_finds_every_key(start_server, redis):
    c = redis.client(4)
    c.flushdb()
    for i in range(300):
        c.rpush(f"many:{i:03d}", *range(i % 7 + 1))
        c.set(f"other:{i}", 1)
    s = start_server([redis_source(redis, db=4, scan_count=7, queues=[
        {"metric": "m_len", "keys": ["many:*"]}])])
    expect = {L(queue=f"{i:03d}"): i % 7 + 1 for i in range(300)}
    wait_series(s, "m_len", expect)


def test_max_series_cuts_with_log_line(start_server, redis):
    c = redis.client(5)
    c.flushdb()
    for i in range(8):
        c.rpush(f"cut:{i}", 1)
    s = start_server([redis_source(redis, db=5, max_series=5, queues=[
        {"metric": "cut_len", "keys": ["cut:*"]}])])
    wait_until(lambda: len(external_items(s, "cut_len")) == 5, 5, what="5 series")
    log = wait_until(lambda: s.log_text() if "max_series (5) reached" in s.log_text() else None,
                     5, what="the max_series log line")
    assert "3 more keys" in log, log
    assert "series dropped" in log, log  # the batch's dropped counter, as the scheduler logs it
    time.sleep(1.5 * SLOW)  # still 5 a round later
    assert len(external_items(s, "cut_len")) == 5


def test_object_mapping_templated_from_label(start_server, redis):
    c = redis.client(6)
    c.flushdb()
    c.rpush("work:emails", *range(3))
    s = start_server([redis_source(redis, db=6, queues=[
        {"metric": "obj_len", "keys": ["work:*"],
         "object": {"resource": "deployments.apps", "name": "worker-{queue}"}}])])
    path = ("/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/deployments.apps/"
            "worker-emails/obj_len")
    doc = wait_until(lambda: s.json(path), 5, what="the object metric")
    assert doc["items"][0]["value"] == "3", doc
    assert doc["items"][0]["describedObject"]["name"] == "worker-emails", doc
