#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The aggregator path at cluster scale (issue 22 item 2): what an HPA's metric query costs
end to end through kube-apiserver, and how much of it is scalemetrics'.

The real control plane of the e2e suite (tests/e2e/controlplane.py: etcd, kube-apiserver with
the aggregator and the front proxy, kube-controller-manager, all on 127.0.0.1); scalemetrics
registered behind it from manifests/base as the e2e suite does it (tests/e2e/conftest.py),
delegated auth, the access log on; one Redis source with 5,000 lists queue:q0..q4999 and
`derived: true`, so each queue has three external metrics (length, growth, drain time).

For each level (N HPAs with 3 metrics each, every 15 s: 3N/15 requests/s) an open-loop load
generator (fixed arrival times, never waiting for an answer before the next send; P
processes, each an asyncio loop with a pool of keep-alive TLS connections) sends
`GET /apis/external.metrics.k8s.io/v1beta1/namespaces/default/METRIC?labelSelector=queue%3DqH`,
request k for HPA (k // 3) mod N and metric k mod 3, with a bearer token of the HPA
controller's service account (kube-system/horizontal-pod-autoscaler, from the TokenRequest
API, as kube-controller-manager gets it with --use-service-account-credentials):

  agg     to kube-apiserver, which authenticates the token, authorizes, and proxies to
          scalemetrics with its front-proxy certificate (what the HPA controller does);
  direct  the same requests straight to scalemetrics with the same token (TokenReview and
          SubjectAccessReview answers cached for cache_ttl, 10 s).

Each request carries a User-Agent `sm-bench/TAG-K`, which the aggregator passes on and the
access log records with the request's duration inside scalemetrics (from its first call into
our request handler, after the request's headers were read, to the answer handed to MHD), so
every end-to-end latency is matched with ours. CPU: utime+stime from /proc/PID/stat of every
process over the measured window, per 1,000 requests, minus each process's idle rate (measured
before the levels, with the collector's rounds and the controllers running).

Usage: bench/aggregator.py                 (bench/aggregator.sh sets the environment)
  SM_BINARY=...     the scalemetrics binary; SM_BUILD_ROOT: where the kube binaries are
                    decompressed (BUILD_ROOT/e2e-kube), as for the e2e suite
  LEVELS="100 1000 5000"  HPAs per level;  DURATION=30  measured seconds per run;
  WARMUP=5  seconds sent before each measured window;  MODES="agg direct";
  OUT=bench/results/aggregator.txt;  GEN_PROCS: generator processes (default: one per
  400 requests/s, at least 1);  MAX_CONNS=16: the generator's keep-alive connections in all;
  IDLE=10: seconds of idle CPU measured first;  SM_BINARY_REV: the commit the binary was
  built from, for the results' header (default: the checkout's HEAD)

The generator itself: `bench/aggregator.py gen ...` (see gen_main); the table of
bench/README.md from a results file: `bench/aggregator.py table FILE`."""

import argparse
import asyncio
import collections
import json
import math
import os
import re
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NS = "default"
METRICS = ("redis_queue_length", "redis_queue_length_growth_per_second",
           "redis_queue_length_drain_seconds")
EXTERNAL = "/apis/external.metrics.k8s.io/v1beta1"
PERIOD = 15.0  # the HPA controller's default sync period


def url_of(k, n_hpas):
    h = (k // 3) % n_hpas
    return f"{EXTERNAL}/namespaces/{NS}/{METRICS[k % 3]}?labelSelector=queue%3Dq{h}"


# ---------------------------------------------------------------------------------------------
# The load generator (one process; the parent starts P of them)


async def _read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, close = None, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection" and value == b"close":
            close = True
    n = 0
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            n += size
            if size == 0:
                break
    elif length is not None:
        n = len(await reader.readexactly(length))
    return status, n, close


async def _gen(a):
    loop = asyncio.get_running_loop()
    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.check_hostname = False  # the CA is checked; scalemetrics' name is the Service's
    token = Path(a.token_file).read_text().strip()
    host_hdr = f"127.0.0.1:{a.port}"
    # A bounded pool of keep-alive connections: a request finding none idle opens one while
    # fewer than max_conns are open, else waits for one (the wait counts in the latency from
    # the scheduled time, not in the end-to-end figure). Unbounded, an overloaded apiserver
    # made the generator open thousands of connections and the aggregator as many to us.
    idle, waiters, count, opened = [], collections.deque(), [0], [0]

    async def connect():
        opened[0] += 1
        return await asyncio.open_connection("127.0.0.1", a.port, ssl=ctx)

    async def acquire():
        if idle:
            return idle.pop(), False
        if count[0] >= a.max_conns:
            fut = loop.create_future()
            waiters.append(fut)
            conn = await fut
            if conn is not None:
                return conn, False
        count[0] += 1
        try:
            return await connect(), True
        except BaseException:
            count[0] -= 1
            raise

    def release(conn):
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        idle.append(conn)

    def drop(writer):
        writer.close()
        count[0] -= 1
        while waiters:  # a waiter may open a connection in its place
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    for _ in range(min(a.preopen, a.max_conns)):
        idle.append(await connect())
        count[0] += 1
    opened[0] = 0
    total = int(a.rate * (a.warmup + a.duration))
    # time.time() is shared by the processes; the loop's clock is monotonic
    t0 = a.start - time.time() + loop.time()
    records = []
    tasks = set()

    async def one(k, sched, late):
        writer = None
        new = 0
        send = loop.time()
        try:
            (reader, writer), new = await acquire()
            send = loop.time()
            req = (f"GET {url_of(k, a.hpas)} HTTP/1.1\r\nHost: {host_hdr}\r\n"
                   f"Authorization: Bearer {token}\r\nAccept: application/json\r\n"
                   f"User-Agent: sm-bench/{a.tag}-{k}\r\n\r\n").encode()
            writer.write(req)
            status, nbytes, close = await asyncio.wait_for(_read_response(reader), 10)
            done = loop.time()
            if close:
                drop(writer)
            else:
                release((reader, writer))
        except Exception as e:  # noqa: BLE001: a failed request is a record, not a crash
            status, nbytes, done = 0, 0, loop.time()
            if writer is not None:
                drop(writer)
            print(f"gen {a.tag}: request {k}: {e!r}", file=sys.stderr)
        records.append((k, sched - t0, send - t0, done - t0, late, status, nbytes, int(new)))

    cpu_window = []

    async def window_cpu():  # this process's CPU over the measured window only
        for at in (t0 + a.warmup, t0 + a.warmup + a.duration):
            await asyncio.sleep(max(0, at - loop.time()))
            ru = resource.getrusage(resource.RUSAGE_SELF)
            cpu_window.append(ru.ru_utime + ru.ru_stime)
    cpu_task = loop.create_task(window_cpu())
    for k in range(a.proc, total, a.nprocs):
        sched = t0 + k / a.rate
        delay = sched - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        late = loop.time() - sched
        t = loop.create_task(one(k, sched, late))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=15)
    await cpu_task
    with open(a.out, "w") as f:
        f.write(json.dumps({"cpu_s": cpu_window[1] - cpu_window[0], "opened": opened[0],
                            "sent": len(records), "unfinished": len(tasks)}) + "\n")
        for r in records:
            f.write("%d %.6f %.6f %.6f %.6f %d %d %d\n" % r)


def gen_main(argv):
    p = argparse.ArgumentParser(prog="aggregator.py gen")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--rate", type=float, required=True, help="requests/s, all processes")
    p.add_argument("--hpas", type=int, required=True)
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--start", type=float, required=True, help="time.time() of request 0")
    p.add_argument("--proc", type=int, default=0)
    p.add_argument("--nprocs", type=int, default=1)
    p.add_argument("--preopen", type=int, default=4)
    p.add_argument("--max-conns", type=int, default=8)
    p.add_argument("--tag", required=True)
    p.add_argument("--out", required=True)
    asyncio.run(_gen(p.parse_args(argv)))


# ---------------------------------------------------------------------------------------------
# The parent: control plane, scalemetrics, levels, figures


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


ACCESS = re.compile(r'msg="?request"?.*?\bstatus=(\d+).*?\bduration_ms=([0-9.]+).*?'
                    r'\bauth=(\S+).*?\buser=(\S+).*?\bremote=(\S+).*?\buser_agent=sm-bench/(\S+)')


def read_access_log(path, offset, tag):
    """{k: (duration_ms, auth, user, remote)} for this run's requests."""
    out = {}
    with open(path, "rb") as f:
        f.seek(offset)
        for raw in f:
            line = raw.decode(errors="replace")
            if "sm-bench/" + tag + "-" not in line:
                continue
            m = ACCESS.search(line)
            if m:
                t, k = m.group(6).rsplit("-", 1)
                out[int(k)] = (float(m.group(2)), m.group(3), m.group(4), m.group(5))
    return out


class Bench:
    def __init__(self):
        sys.path.insert(0, str(ROOT / "tests" / "integration"))
        sys.path.insert(0, str(ROOT / "tests" / "e2e"))  # its conftest, not integration's
        os.environ.setdefault("SM_SOURCE_ROOT", str(ROOT))
        import conftest  # the e2e suite's registration, used as a library
        from controlplane import ControlPlane
        from smtest import RedisServer, Server, free_port, make_certs, wait_until
        self.c = conftest
        self.ControlPlane, self.RedisServer, self.Server = ControlPlane, RedisServer, Server
        self.free_port, self.make_certs, self.wait_until = free_port, make_certs, wait_until
        if conftest.control_plane_missing():
            sys.exit(f"no control plane: {conftest.control_plane_missing()}")
        self.levels = [int(x) for x in os.environ.get("LEVELS", "100 1000 5000").split()]
        self.duration = float(os.environ.get("DURATION", "30"))
        self.warmup = float(os.environ.get("WARMUP", "5"))
        self.modes = os.environ.get("MODES", "agg direct").split()
        self.max_conns = int(os.environ.get("MAX_CONNS", "16"))
        self.out = Path(os.environ.get("OUT", ROOT / "bench" / "results" / "aggregator.txt"))
        self.work = Path(tempfile.mkdtemp(prefix="sm-agg-"))
        self.lines = []
        self.rows = []

    def say(self, line):
        print(line, flush=True)
        self.lines.append(line)

    # -- setting up ------------------------------------------------------------------------

    def start(self):
        c = self.c
        w = self.work
        d = w / "sm-certs"
        bundle = self.make_certs(d, "scalemetrics")
        self.certs = {"dir": d, "ca": d / "ca.crt", "cert": d / "tls.crt", "key": d / "tls.key",
                      "client_cert": d / "client.crt", "client_key": d / "client.key"}
        self.cluster = self.ControlPlane(
            c._binaries, w / "cluster",
            {"ca": d / "front-proxy-ca.crt", "cert": d / "front-proxy-client.crt",
             "key": d / "front-proxy-client.key"}, hpa_sync="15s").start()
        self.redis = self.RedisServer(w / "redis").start()
        n = max(self.levels)
        r = self.redis.client()
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            pipe.rpush(f"queue:q{i}", *range(1 + i % 40))
        pipe.execute()
        cl = self.cluster
        cl.kubectl("create", "namespace", "scalemetrics", check=False)
        port = self.free_port()
        for doc in c.render_manifests(port, bundle):
            cl.apply(c.to_yaml_doc(doc))
        token_file = w / "scalemetrics.token"
        token_file.write_text(cl.token("scalemetrics", "scalemetrics"))
        sources = [{"name": "jobs", "type": "redis", "address": self.redis.address,
                    "interval": "5s", "timeout": "2s", "namespaces": [NS],
                    "max_series": 4 * n + 100,
                    "queues": [{"metric": "redis_queue_length", "keys": ["queue:*"],
                                "label": "queue", "derived": True}]}]
        cfg = c.sm_config(port, self.certs, cl, token_file, sources)
        (w / "sm").mkdir()
        self.sm = self.Server(w / "sm", cfg, port, self.certs, c.BINARY).start()
        c.wait_apiservices(cl, True, 90)
        # kube-controller-manager creates the HPA controller's service account at its start
        self.wait_until(lambda: cl.kubectl("get", "serviceaccount", "horizontal-pod-autoscaler",
                                           "-n", "kube-system", check=False).returncode == 0,
                        60, interval=0.5, what="kube-system/horizontal-pod-autoscaler")
        self.hpa_token = w / "hpa.token"
        self.hpa_token.write_text(cl.token("kube-system", "horizontal-pod-autoscaler"))
        # every metric of the last queue answers through the aggregator (derived metrics
        # need a second round)
        last = n - 1

        def ready():
            for k in range(3 * last, 3 * last + 3):
                doc = json.loads(cl.raw(url_of(k, n)).stdout)
                if not doc.get("items"):
                    return False
            return True
        self.wait_until(ready, 60, interval=1, what="the derived metrics of the last queue")

    def stop(self):
        for what in ("sm", "redis", "cluster"):
            obj = getattr(self, what, None)
            if obj is not None:
                try:
                    obj.stop()
                except Exception as e:  # noqa: BLE001
                    print(f"stopping {what}: {e}", file=sys.stderr)
        if not os.environ.get("BENCH_KEEP"):
            subprocess.run(["rm", "-rf", str(self.work)])
        else:
            print(f"work dir kept: {self.work}", file=sys.stderr)

    def pids(self):
        by = {p.name: p.proc.pid for p in self.cluster.procs}
        return {"kube-apiserver": by["kube-apiserver"], "etcd": by["etcd"],
                "kube-controller-manager": by["kube-controller-manager"],
                "scalemetrics": self.sm.pid, "redis": self.redis.proc.pid}

    def cpu_all(self):
        return {n: cpu_s(p) for n, p in self.pids().items()}

    # -- one run -----------------------------------------------------------------------------

    def run(self, hpas, mode):
        rate = 3 * hpas / PERIOD
        # at least 1,200 measured requests: CPU time is counted in 10 ms ticks
        duration = max(self.duration, 1200 / rate)
        nprocs = int(os.environ.get("GEN_PROCS", "0")) or max(1, math.ceil(rate / 400))
        tag = f"{mode}{hpas}"
        port = self.cluster.port if mode == "agg" else self.sm.port
        ca = self.cluster.ca if mode == "agg" else self.certs["ca"]
        log_off = self.sm.log_path.stat().st_size
        start = time.time() + 2.0 + 0.3 * nprocs  # the generators' TLS connections first
        procs, outs = [], []
        for i in range(nprocs):
            out = self.work / f"gen-{tag}-{i}.txt"
            outs.append(out)
            procs.append(subprocess.Popen(
                ["/usr/bin/python3", __file__, "gen", "--port", str(port), "--ca", str(ca),
                 "--token-file", str(self.hpa_token), "--rate", str(rate), "--hpas", str(hpas),
                 "--warmup", str(self.warmup), "--duration", str(duration),
                 "--start", repr(start), "--proc", str(i), "--nprocs", str(nprocs),
                 "--preopen", str(max(2, math.ceil(rate / nprocs * 0.01))),
                 "--max-conns", str(math.ceil(self.max_conns / nprocs)), "--tag", tag,
                 "--out", str(out)], stdin=subprocess.DEVNULL))
        time.sleep(max(0, start + self.warmup - time.time()))
        cpu0, w0 = self.cpu_all(), time.monotonic()
        busy0 = _proc_stat()
        time.sleep(max(0, start + self.warmup + duration - time.time()))
        cpu1, w1 = self.cpu_all(), time.monotonic()
        busy1 = _proc_stat()
        for p in procs:
            try:
                p.wait(120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        gen_cpu, opened, recs = 0.0, 0, []
        for out in outs:
            with open(out) as f:
                head = json.loads(f.readline())
                gen_cpu += head["cpu_s"]
                opened += head["opened"]
                for line in f:
                    v = line.split()
                    recs.append((int(v[0]), float(v[1]), float(v[2]), float(v[3]),
                                 float(v[4]), int(v[5]), int(v[6]), int(v[7])))
        time.sleep(0.5)  # the last access-log lines
        ours = read_access_log(self.sm.log_path, log_off, tag)
        lo, hi = self.warmup, self.warmup + duration
        meas = [r for r in recs if lo <= r[1] < hi]
        ok = [r for r in meas if r[5] == 200]
        e2e = [(r[3] - r[2]) * 1000 for r in ok]
        from_sched = [(r[3] - r[1]) * 1000 for r in ok]
        late = [r[4] * 1000 for r in meas]
        matched = [(ours[r[0]][0], (r[3] - r[2]) * 1000) for r in ok if r[0] in ours]
        o = [m[0] for m in matched]
        ratio = [m[0] / m[1] for m in matched if m[1] > 0]
        sent_in_window = sum(1 for r in recs if lo <= r[2] < hi)
        done_in_window = sum(1 for r in recs if lo <= r[3] < hi and r[5] == 200)
        elapsed = w1 - w0
        n_req = done_in_window
        users = {v[2] for v in ours.values()}
        auths = {v[1] for v in ours.values()}
        conns = {v[3] for k, v in ours.items() if lo * rate <= k < hi * rate}
        wall_busy = _busy(busy0, busy1)
        expected = math.ceil(hi * rate) - math.ceil(lo * rate)  # k with k / rate in [lo, hi)
        cpu = {n: cpu1[n] - cpu0[n] for n in cpu0}
        # other work on the machine: busy CPU time not spent by these processes
        other_cpu = wall_busy * os.cpu_count() * elapsed - sum(cpu.values()) - gen_cpu
        per_k = {n: 1000 * (cpu[n] - self.idle[n] * elapsed) / max(1, n_req) for n in cpu}
        row = {
            "hpas": hpas, "mode": mode, "rate": rate, "procs": nprocs,
            "duration": duration,
            "achieved": sent_in_window / duration, "answered_per_s": done_in_window / duration,
            "completed_ok": len(ok), "errors": expected - len(ok),
            "not_200": len(meas) - len(ok), "unanswered": expected - len(meas),
            "ours_over_1ms": sum(1 for x in o if x > 1),
            "other_cpu_s": other_cpu,
            "late_1ms": sum(1 for x in late if x > 1), "late_5ms": sum(1 for x in late if x > 5),
            "late_p99_ms": pct(late, 0.99), "late_max_ms": max(late) if late else float("nan"),
            "e2e_p50": pct(e2e, 0.5), "e2e_p90": pct(e2e, 0.9), "e2e_p99": pct(e2e, 0.99),
            "e2e_max": max(e2e) if e2e else float("nan"),
            "sched_p99": pct(from_sched, 0.99),
            "ours_p50": pct(o, 0.5), "ours_p90": pct(o, 0.9), "ours_p99": pct(o, 0.99),
            "matched": len(matched),
            "share_mean": (sum(o) / sum(m[1] for m in matched)) if matched else float("nan"),
            "share_p50": statistics.median(ratio) if ratio else float("nan"),
            "cpu_s": cpu, "cpu_ms_per_1k_net": per_k,
            "gen_cpu_ms_per_1k": 1000 * gen_cpu / max(1, n_req),
            "gen_conns_opened_during_run": opened,
            "sm_conns_seen": len(conns), "users": sorted(users), "auths": sorted(auths),
            "machine_busy": wall_busy,
        }
        # when the slow requests (> 20 ms from send to answer) were sent: second of the window
        slow = {}
        for r in ok:
            if (r[3] - r[2]) * 1000 > 20:
                sec = int(r[2] - lo)
                slow[sec] = slow.get(sec, 0) + 1
        row["slow_by_second"] = slow
        self.rows.append(row)
        self.say(f"{mode:6} hpas={hpas:5} target={rate:7.1f}/s achieved={row['achieved']:7.1f}/s "
                 f"answered={row['answered_per_s']:7.1f}/s procs={nprocs} ok={len(ok)} "
                 f"failed={row['not_200']} unanswered={row['unanswered']} "
                 f"late>1ms={row['late_1ms']} late>5ms={row['late_5ms']} "
                 f"late_p99={row['late_p99_ms']:.2f}ms late_max={row['late_max_ms']:.1f}ms")
        self.say(f"       e2e ms p50={row['e2e_p50']:.3f} p90={row['e2e_p90']:.3f} "
                 f"p99={row['e2e_p99']:.3f} max={row['e2e_max']:.1f} "
                 f"(from the scheduled time p99={row['sched_p99']:.3f}) | ours ms "
                 f"p50={row['ours_p50']:.3f} p90={row['ours_p90']:.3f} "
                 f"p99={row['ours_p99']:.3f} >1ms={row['ours_over_1ms']} "
                 f"matched={len(matched)}/{len(ok)} | share "
                 f"mean={row['share_mean']:.3f} median={row['share_p50']:.3f}")
        self.say("       cpu s in window: " + " ".join(f"{n}={v:.2f}" for n, v in cpu.items())
                 + f" generator={gen_cpu:.2f} | machine busy {100 * wall_busy:.0f}% of "
                 f"{os.cpu_count()} cores, other work {other_cpu:.1f} s")
        self.say("       cpu s per 1,000 requests (= ms per request), idle rate subtracted: "
                 + " ".join(f"{n}={v:.3f}" for n, v in per_k.items())
                 + f" generator={row['gen_cpu_ms_per_1k']:.3f}")
        self.say(f"       user(s)={','.join(row['users'])} auth={','.join(row['auths'])} "
                 f"connections to scalemetrics seen={len(conns)} "
                 f"generator connections opened during the run={opened}")
        if slow:
            self.say("       answers > 20 ms, by second of the window they were sent in: "
                     + " ".join(f"{k}s:{v}" for k, v in sorted(slow.items())))
        return row

    def main(self):
        try:
            t_setup = time.monotonic()
            self.start()
            binv = subprocess.run([str(self.c.BINARY), "version"], capture_output=True,
                                  text=True).stdout.strip()
            # SM_BINARY_REV: the commit the binary was built from, when not the checkout's HEAD
            head = os.environ.get("SM_BINARY_REV") or subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True).stdout.strip()
            kube = subprocess.run([str(self.c._binaries["kube-apiserver"]), "--version"],
                                  capture_output=True, text=True).stdout.strip()
            with open("/proc/cpuinfo") as f:
                model = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
            self.say(f"# bench/aggregator.py {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
                     f" {binv} (built from {head}), {kube}, {model}, {os.cpu_count()} cores")
            self.say(f"# set up in {time.monotonic() - t_setup:.0f}s; levels {self.levels} HPAs "
                     f"x 3 metrics / 15 s; warmup {self.warmup:.0f}s + max({self.duration:.0f}s, "
                     f"1,200 requests) measured per run; modes {self.modes}")
            idle_s = float(os.environ.get("IDLE", "10"))
            c0, b0 = self.cpu_all(), _proc_stat()
            time.sleep(idle_s)
            c1, b1 = self.cpu_all(), _proc_stat()
            self.idle = {n: (c1[n] - c0[n]) / idle_s for n in c0}
            self.say("# idle CPU (ms/s): " + " ".join(f"{n}={1000 * v:.1f}"
                                                       for n, v in self.idle.items())
                     + f"; machine busy {100 * _busy(b0, b1):.0f}% while idle")
            for hpas in self.levels:
                for mode in self.modes:
                    self.run(hpas, mode)
                    time.sleep(2)
        finally:
            self.stop()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with open(self.out, "w") as f:
            f.write("\n".join(self.lines) + "\n")
            for r in self.rows:
                f.write("# row " + json.dumps(r, sort_keys=True) + "\n")
        print(f"written: {self.out}")


def table(path):
    """The markdown table of bench/README.md from a results file's `# row` lines."""
    rows = {}
    for line in open(path):
        if line.startswith("# row "):
            r = json.loads(line[6:])
            rows[(r["hpas"], r["mode"])] = r
    print("| HPAs | target req/s | achieved req/s (sends > 5 ms late) | through kube-apiserver "
          "p50 / p99 ms | ours p50 / p99 ms | our share: mean, median | straight to us "
          "p50 / p99 ms | CPU s per 1,000 requests: kube-apiserver / etcd / ours "
          "(straight: ours) | generator | other work on the machine |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for hpas in sorted({k[0] for k in rows}):
        a, d = rows.get((hpas, "agg")), rows.get((hpas, "direct"))
        if not a:
            continue
        # idle-subtracted figures a tick below zero are zero
        cpu = {n: max(0.0, v) for n, v in a["cpu_ms_per_1k_net"].items()}
        direct = f"{d['e2e_p50']:.2f} / {d['e2e_p99']:.2f}" if d else "-"
        dcpu = f" ({d['cpu_ms_per_1k_net']['scalemetrics']:.2f})" if d else ""
        other = a["other_cpu_s"] / (a["duration"] * os.cpu_count())
        print(f"| {hpas:,} | {a['rate']:,.0f} | {a['achieved']:,.1f} ({a['late_5ms']}) | "
              f"{a['e2e_p50']:.2f} / {a['e2e_p99']:.2f} | {a['ours_p50']:.3f} / "
              f"{a['ours_p99']:.3f} | {100 * a['share_mean']:.1f}%, "
              f"{100 * a['share_p50']:.1f}% | {direct} | {cpu['kube-apiserver']:.2f} / "
              f"{cpu['etcd']:.2f} / {cpu['scalemetrics']:.2f}{dcpu} | "
              f"{a['gen_cpu_ms_per_1k']:.2f} | {100 * other:.0f}% |")


def _proc_stat():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


def _busy(a, b):
    return 1 - (b[1] - a[1]) / max(1, b[0] - a[0])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "gen":
        gen_main(sys.argv[2:])
    elif len(sys.argv) > 2 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        Bench().main()
