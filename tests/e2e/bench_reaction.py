# SPDX-License-Identifier: MIT
"""Reaction time of the whole loop (bench/reaction.sh runs this; it is not a test: `pytest`
collects only test_*.py): from the moment a Redis queue crosses the HPA's target to the moment
the real HPA controller changes the Deployment's spec.replicas, through scalemetrics and the
aggregator. SM_E2E_INTERVAL (the source's interval) and SM_E2E_HPA_SYNC (the controller's
--horizontal-pod-autoscaler-sync-period) are the parameters; SM_REACTION_SAMPLES samples.

The Deployment is read straight from kube-apiserver every 20 ms with the admin certificate
(not through kubectl, whose start-up would blur the figure). Prints one `reaction:` line and
writes it to $SM_REACTION_OUT when set."""

import json
import os
import random
import ssl
import statistics
import time
import urllib.request

from conftest import HPA_SYNC, INTERVAL, NS
from workloads import deployment, external, hpa


def replicas_reader(cluster):
    ctx = ssl.create_default_context(cafile=str(cluster.ca))
    ctx.load_cert_chain(str(cluster.certs / "admin.crt"), str(cluster.certs / "admin.key"))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                         urllib.request.ProxyHandler({}))
    url = f"{cluster.url}/apis/apps/v1/namespaces/{NS}/deployments/reaction-worker"

    def read():
        with opener.open(url, timeout=5) as r:
            return json.loads(r.read())["spec"]["replicas"]
    return read


def wait_for(read, want, timeout):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if read() == want:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"replicas never reached {want} within {timeout}s")


def test_reaction_time(cluster, scalemetrics, redis):
    samples = int(os.environ.get("SM_REACTION_SAMPLES", "8"))
    sync_s = float(HPA_SYNC.rstrip("s"))
    r = redis.client()
    r.delete("queue:reaction")
    cluster.apply(deployment("reaction-worker", {"role": "worker"}))
    cluster.apply(hpa("reaction-worker",
                      external("redis_queue_length", "10", {"queue": "reaction"})))
    read = replicas_reader(cluster)
    wait_for(read, 1, 60)
    times = []
    for _ in range(samples):
        # A random phase against the HPA's sync and the collector's rounds (the previous
        # sample ended at a sync).
        time.sleep(random.uniform(0, sync_s))
        t0 = time.monotonic()
        r.rpush("queue:reaction", *range(35))  # crosses the target: 4 replicas
        t1 = wait_for(read, 4, 120)
        times.append(t1 - t0)
        r.delete("queue:reaction")
        wait_for(read, 1, 120)
    times.sort()
    line = (f"reaction: interval={INTERVAL} hpa_sync={HPA_SYNC} samples={len(times)} "
            f"min={times[0]:.2f}s median={statistics.median(times):.2f}s "
            f"max={times[-1]:.2f}s all={','.join(f'{t:.2f}' for t in times)}")
    print(line)
    out = os.environ.get("SM_REACTION_OUT")
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")
