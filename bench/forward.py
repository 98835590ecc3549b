#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""What forwarding adds to a request (issue 21): N sequential GETs on one keep-alive TLS
connection each, (a) straight to the upstream (a second scalemetrics serving the metric),
(b) through scalemetrics forwarding to it, and (c) for a metric scalemetrics serves itself.
Both servers run with auth mode none on 127.0.0.1, so (b) - (a) is our hop: the routing
decision, the hand-off to a forward worker and back, libcurl's keep-alive request to the
upstream and the check of its answer.

Usage: bench/forward.py [N]   (default 2000; SM_BINARY as for the integration tests; needs
       redis-server)"""

import http.client
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("SM_SOURCE_ROOT", str(ROOT))

from smtest import (EXTERNAL, RedisServer, Server, free_port, make_certs, redis_source,  # noqa: E402
                    server_config, wait_until)


def timed(port, ca, path, n):
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        out.append((time.perf_counter_ns() - t0) / 1000.0)
        assert r.status == 200, r.status
    conn.close()
    return out


def summary(name, us):
    us = sorted(us)
    p = lambda q: us[min(len(us) - 1, int(q * len(us)))]  # noqa: E731
    return (f"| {name} | {p(0.50):.0f} | {p(0.90):.0f} | {p(0.99):.0f} | {us[-1]:.0f} | "
            f"{statistics.mean(us):.0f} |")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    tmp = Path(tempfile.mkdtemp(prefix="sm-bench-forward-"))
    d = tmp / "certs"
    make_certs(d)
    certs = {"dir": d, "ca": d / "ca.crt", "cert": d / "tls.crt", "key": d / "tls.key",
             "client_cert": d / "client.crt", "client_key": d / "client.key"}
    redis = RedisServer(tmp / "redis").start()
    c = redis.client(0)
    c.rpush("queue:ours", *range(7))
    c.rpush("up:theirs", *range(11))
    servers = []
    try:
        up_port = free_port()
        (tmp / "up").mkdir()
        up = Server(tmp / "up", server_config(up_port, certs, [redis_source(
            redis, name="up", queues=[{"metric": "theirs", "keys": ["up:theirs"]}])]),
            up_port, certs)
        servers.append(up.start())
        port = free_port()
        cfg = server_config(port, certs, [redis_source(redis, queues=[
            {"metric": "ours", "keys": ["queue:ours"]}])])
        cfg["forward"] = [{"group": "external.metrics.k8s.io",
                           "url": f"https://127.0.0.1:{up_port}", "ca_file": str(certs["ca"])}]
        (tmp / "front").mkdir()
        front = Server(tmp / "front", cfg, port, certs)
        servers.append(front.start())
        theirs = f"{EXTERNAL}/namespaces/default/theirs"
        ours = f"{EXTERNAL}/namespaces/default/ours"
        wait_until(lambda: up.get(theirs).status == 200, 10, what="upstream")
        wait_until(lambda: front.get(ours).status == 200, 10, what="front")
        for port_, path in ((up_port, theirs), (port, theirs), (port, ours)):
            timed(port_, certs["ca"], path, 200)  # warm up: connections, caches
        direct = timed(up_port, certs["ca"], theirs, n)
        forwarded = timed(port, certs["ca"], theirs, n)
        own = timed(port, certs["ca"], ours, n)
        print(f"N={n} sequential GETs on one keep-alive TLS connection, microseconds\n")
        print("| path | p50 | p90 | p99 | max | mean |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        print(summary("upstream directly", direct))
        print(summary("through scalemetrics (forwarded)", forwarded))
        print(summary("scalemetrics' own metric", own))
        added = statistics.median(forwarded) - statistics.median(direct)
        print(f"\nadded by forwarding at p50: {added:.0f} us")
    finally:
        for s in reversed(servers):
            s.stop()
        redis.stop()


if __name__ == "__main__":
    main()
