# SPDX-License-Identifier: MIT
"""Redis Sentinel against real processes: a master, a replica (replicaof) and a sentinel
(`redis-server --sentinel`) on loopback ports. The collector finds the master by service
name, and after `SENTINEL FAILOVER` (and the old master's death) it keeps serving from the
new master."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from smtest import (CLEAN_ENV, SLOW, RedisServer, external_items, free_port, redis_source,
                    wait_external_value, wait_until)


class Replica(RedisServer):
    def __init__(self, workdir, master_port):
        super().__init__(workdir)
        self.master_port = master_port

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir),
             "--logfile", str(self.log), "--daemonize", "no",
             "--replicaof", "127.0.0.1", str(self.master_port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=CLEAN_ENV)
        wait_until(lambda: self.client().ping(), 10, what=f"replica on {self.port}")
        return self


class Sentinel:
    def __init__(self, workdir, master_port):
        self.port = free_port()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"logfile {self.dir / 'sentinel.log'}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n"
            "sentinel parallel-syncs mymaster 1\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["redis-server", str(self.conf), "--sentinel"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=CLEAN_ENV)
        wait_until(lambda: self.client().ping(), 10, what=f"sentinel on {self.port}")
        return self

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           decode_responses=True)

    def master_port(self):
        return int(self.client().execute_command("SENTINEL", "get-master-addr-by-name",
                                                 "mymaster")[1])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def cluster(tmp_root):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    d = Path(tempfile.mkdtemp(prefix="sentinel-", dir=tmp_root))
    master = RedisServer(d / "master").start()
    replica = Replica(d / "replica", master.port).start()
    sentinel = Sentinel(d / "sentinel", master.port).start()
    yield master, replica, sentinel
    for p in (sentinel, replica, master):
        p.stop()


def sentinel_source(sentinel, **extra):
    src = redis_source(type("R", (), {"address": ""})(), queues=[
        {"metric": "s_len", "keys": ["sq:*"]}], **extra)
    del src["address"]
    src["sentinel"] = {"addresses": [f"127.0.0.1:{sentinel.port}"], "master": "mymaster"}
    return src


def test_failover_keeps_the_metric_flowing(start_server, cluster):
    master, replica, sentinel = cluster
    m = master.client()
    m.rpush("sq:jobs", *range(5))
    wait_until(lambda: replica.client().llen("sq:jobs") == 5, 10, what="replication")
    s = start_server([sentinel_source(sentinel)])
    wait_external_value(s, "s_len", "queue%3Djobs", "5")

    # Sentinel must know the replica before it can fail over to it.
    def failover():
        try:
            return sentinel.client().execute_command("SENTINEL", "FAILOVER", "mymaster")
        except Exception as e:  # NOGOODSLAVE until the replica is known and in sync
            return None if "NOGOOD" in str(e) or "INPROG" in str(e) else e
    assert wait_until(failover, 30, interval=0.5, what="SENTINEL FAILOVER accepted") in (
        True, "OK")
    wait_until(lambda: sentinel.master_port() == replica.port, 30, what="new master")
    wait_until(lambda: replica.client().execute_command("ROLE")[0] == "master", 15,
               what="the replica promoted")
    # The old master goes away entirely: only the new master can answer now.
    master.kill()
    new = replica.client()
    new.rpush("sq:jobs", *range(7))
    wait_external_value(s, "s_len", "queue%3Djobs", "12", timeout=20)
    new.rpush("sq:more", 1)
    wait_until(lambda: len(external_items(s, "s_len")) == 2, 10, what="a new queue after failover")
    assert s.running()


def test_demoted_master_is_left(start_server, cluster):
    """After a failover the old master lives on as a replica: ROLE says so, and the collector
    asks the sentinels again instead of reading the replica."""
    master, replica, sentinel = cluster
    master.client().rpush("sq:a", 1, 2)
    wait_until(lambda: replica.client().llen("sq:a") == 2, 10, what="replication")
    s = start_server([sentinel_source(sentinel)])
    wait_external_value(s, "s_len", "queue%3Da", "2")

    def failover():
        try:
            return sentinel.client().execute_command("SENTINEL", "FAILOVER", "mymaster")
        except Exception as e:
            return None if "NOGOOD" in str(e) or "INPROG" in str(e) else e
    assert wait_until(failover, 30, interval=0.5, what="SENTINEL FAILOVER accepted") in (
        True, "OK")
    wait_until(lambda: master.client().execute_command("ROLE")[0] == "slave", 30,
               what="old master demoted")
    # Writes only on the new master; the demoted node replicates them, but a key written
    # there with replica-read-only off would not: use a key the old master cannot have.
    replica.client().rpush("sq:b", 1, 2, 3)
    wait_external_value(s, "s_len", "queue%3Db", "3", timeout=20)
    log = s.log_text()
    assert s.running(), log


def test_no_sentinel_answers(start_server, tmp_root):
    port = free_port()  # nothing listens there
    src = sentinel_source(type("S", (), {"port": port})())
    s = start_server([src])
    r = s.get("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s_len")
    assert r.status == 503, r
    assert "sentinel" in r.body.decode(), r
