#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Helper of bench/collectors.sh (issue 22 item 3): the collectors at cluster scale.

  collectors.py measure --port P --ca CA --pid PID --rounds R [--proc NAME=PID ...]
      Watches a running scalemetrics through its own /metrics (one keep-alive TLS connection,
      polled every --poll seconds): waits until every source has finished --warmup successful
      rounds, then until every source has finished R more (or --max-seconds pass), and prints
      one JSON object: each round's duration as the server reports it
      (scalemetrics_source_last_round_duration_seconds, read once per round), the period
      between a source's rounds, the oldest sample age and staleness seen, CPU time of the
      collector threads and of the whole process (/proc/PID/task/*/stat), RSS, and the CPU of
      the other processes named with --proc (NAME=PID, or NAME=+PID for PID and its children:
      PostgreSQL's backends). Collector threads: the scheduler starts its workers
      (min(sources, 4)) before anything else in the process makes a thread (src/cli/main.c:
      sm_scheduler_start before sm_http_server_start), so they are the lowest thread ids
      after the main thread.
  collectors.py body [--every S] DIR
      Writes DIR/metrics (and metrics.gz, for nginx's gzip_static): one pod's exposition as
      prometheus_client formats it: process and GC families, a request counter, two request
      histograms, an in-flight gauge. With --every, rewrites both every S seconds (atomically)
      with the counters and histograms grown, until killed.
  collectors.py pods PORT N TARGET_PORT
      The Kubernetes API stand-in of the integration tests (tests/integration/kube_standin.py,
      imported) on 127.0.0.1:PORT with N Running+Ready pods labelled app=web, pod i at
      pod_ip(i) (127.1.0.1 upwards); serves until killed. The PodList is rendered once.
  collectors.py ip I
      Prints pod_ip(I).
  collectors.py row SIZE READY_MS FAILED_TARGETS < JSON  |  collectors.py header
      One line of the results table from measure's JSON, or the table's header.
"""

import argparse
import gzip
import http.client
import json
import os
import re
import ssl
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pod_ip(i):
    return f"127.1.{i // 250}.{i % 250 + 1}"


# ---- /proc ----

def ticks_of(stat_text):
    rest = stat_text[stat_text.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])  # utime, stime (fields 14, 15)


def read(path):
    with open(path) as f:
        return f.read()


def thread_ns(pid):
    """{tid: ns on CPU} from /proc/PID/task/TID/schedstat (the scheduler's own clock, exact
    to the nanosecond, unlike the 10 ms ticks of utime and stime)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = int(read(f"/proc/{pid}/task/{tid}/schedstat").split()[0])
        except (OSError, ValueError):
            pass
    return out


def proc_ticks(pid):
    """utime + stime of the whole process, exited threads included (clock ticks)."""
    try:
        return ticks_of(read(f"/proc/{pid}/stat"))
    except OSError:
        return 0


def proc_ns(pid):
    try:
        return sum(thread_ns(pid).values())
    except OSError:
        return 0


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = read(f"/proc/{d}/stat")
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(d))
    return out


def group_ticks(spec):
    """spec: (pid, with_children) -> {pid: ticks} of the live processes."""
    pid, kids = spec
    pids = [pid] + (children(pid) if kids else [])
    return {p: proc_ns(p) for p in pids}


def rss_kib(pid):
    m = re.search(r"^VmRSS:\s+(\d+)", read(f"/proc/{pid}/status"), re.M)
    return int(m.group(1)) if m else 0


def machine_busy():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    f = [int(x) for x in read("/proc/stat").split("\n")[0].split()[1:]]
    idle = f[3] + f[4]
    total = sum(f[:8])
    return total - idle, total


# ---- scalemetrics' /metrics ----

LINE = re.compile(r'^(scalemetrics_source_[a-z_]+)\{source="([^"]*)"(?:,result="(\w+)")?\} (\S+)$')


class Scraper:
    def __init__(self, port, ca):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.conn = None
        self.fetches = 0

    def get(self):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                                            context=self.ctx, timeout=10)
                self.conn.request("GET", "/metrics")
                r = self.conn.getresponse()
                body = r.read().decode()
                self.fetches += 1
                if r.status != 200:
                    raise RuntimeError(f"/metrics: HTTP {r.status}")
                return parse(body)
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)
        return None


def parse(body):
    src = {}
    for line in body.split("\n"):
        m = LINE.match(line)
        if not m:
            continue
        name, s, result, v = m.groups()
        d = src.setdefault(s, {})
        key = name[len("scalemetrics_source_"):]
        if result:
            key += "_" + result
        d[key] = float(v)
    return src


# ---- measure ----

def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def measure(a):
    procs = {}
    for spec in a.proc or []:
        name, pid = spec.split("=", 1)
        procs[name] = (int(pid.lstrip("+")), pid.startswith("+"))
    sc = Scraper(a.port, a.ca)
    t_start = time.monotonic()

    # Warm-up: every source has finished a.warmup successful rounds (the first one connects).
    while True:
        m = sc.get()
        if m and all(d.get("rounds_total_success", 0) >= a.warmup for d in m.values()):
            break
        if time.monotonic() - t_start > a.max_seconds:
            print(json.dumps({"error": "warm-up did not finish",
                              "sources": {k: v.get("rounds_total_success") for k, v in m.items()}}))
            return 1
        time.sleep(a.poll)
    # Start right after a round of the first source ended (with one source, its thread is
    # then idle until the next round is due).
    first = sorted(m)[0]
    base = m[first]["rounds_total_success"]
    while True:
        time.sleep(a.poll)
        m = sc.get()
        if m[first]["rounds_total_success"] != base:
            break
    n_src = len(m)
    threads0 = thread_ns(a.pid)
    ticks0 = proc_ticks(a.pid)
    procs0 = {k: group_ticks(v) for k, v in procs.items()}
    busy0 = machine_busy()
    t0 = time.monotonic()
    fetch0 = sc.fetches
    start = {s: d for s, d in m.items()}
    last = dict(start)
    durations, missed = [], 0
    rounds_seen = {}  # source -> [(end wall ms, duration ms)] of consecutive rounds
    max_age, stale_seen, rss_max = 0.0, 0, rss_kib(a.pid)
    series_min = min(d.get("series", 0) for d in m.values())
    series_max = max(d.get("series", 0) for d in m.values())
    while True:
        time.sleep(a.poll)
        m = sc.get()
        rss_max = max(rss_max, rss_kib(a.pid))
        for s, d in m.items():
            p = last[s]
            done = (d.get("rounds_total_success", 0) + d.get("rounds_total_failure", 0)) - \
                (p.get("rounds_total_success", 0) + p.get("rounds_total_failure", 0))
            if done >= 1:
                dur = d["last_round_duration_seconds"] * 1000.0
                durations.append(dur)
                missed += int(done) - 1
                if done == 1 and d.get("rounds_total_success", 0) > p.get("rounds_total_success", 0):
                    # the round began at (its end) - (its duration); the end is the time of
                    # the sample (last_success_timestamp_seconds), a wall clock in ms
                    rounds_seen.setdefault(s, []).append(
                        (d["last_success_timestamp_seconds"] * 1000.0, dur))
            max_age = max(max_age, d.get("sample_age_seconds", 0))
            stale_seen = max(stale_seen, int(d.get("stale", 0)))
            series_min = min(series_min, d.get("series", 0))
            series_max = max(series_max, d.get("series", 0))
            last[s] = d
        per_src = [last[s]["rounds_total_success"] + last[s].get("rounds_total_failure", 0)
                   - start[s]["rounds_total_success"] - start[s].get("rounds_total_failure", 0)
                   for s in m]
        elapsed = time.monotonic() - t0
        if n_src == 1:
            if per_src[0] >= a.rounds:
                break
        elif min(per_src) >= a.rounds:
            break
        if elapsed > a.max_seconds:
            break
    t1 = time.monotonic()
    threads1 = thread_ns(a.pid)
    ticks1 = proc_ticks(a.pid)
    procs1 = {k: group_ticks(v) for k, v in procs.items()}
    busy1 = machine_busy()
    rss_end = rss_kib(a.pid)

    tids = sorted(threads0)
    main_tid = a.pid
    workers = [t for t in tids if t != main_tid][:min(n_src, 4)]
    d_thr = {t: threads1.get(t, threads0[t]) - threads0[t] for t in tids}
    d_coll = sum(d_thr[t] for t in workers)
    d_live = sum(threads1.values()) - sum(threads0[t] for t in threads1 if t in threads0)
    d_proc_ticks = ticks1 - ticks0
    rounds = sum(per_src)
    fails = sum(last[s].get("rounds_total_failure", 0) - start[s].get("rounds_total_failure", 0)
                for s in m)
    window = t1 - t0
    ms = 1e-6  # ns -> ms
    tick_ms = 1000.0 / CLK_TCK
    other = {}
    for k in procs:
        other[k] = sum(v - procs0[k].get(p, 0) for p, v in procs1[k].items()) * ms
    ours_ms = d_proc_ticks * tick_ms + sum(other.values())
    # everything else on the machine (this helper included), in ms of CPU
    busy_ms = (busy1[0] - busy0[0]) * tick_ms - ours_ms
    total_ms = (busy1[1] - busy0[1]) * tick_ms
    passes = rounds / n_src if n_src else 0
    # A source's rounds start interval apart while they fit, back to back when they do not.
    periods = []
    for s in m:
        dr = last[s]["rounds_total_success"] - start[s]["rounds_total_success"]
        dt = last[s].get("last_success_timestamp_seconds", 0) - \
            start[s].get("last_success_timestamp_seconds", 0)
        if dr > 0:
            periods.append(dt * 1000.0 / dr)
    # Start-to-start gaps of consecutive rounds of a source: the interval while a round
    # (collect + publish) fits in it, more when it does not; end-to-next-start is what the
    # thread did after the collect step (publishing the batch to the store) before the next
    # round began, when that round began at once.
    gaps, after = [], []
    for obs in rounds_seen.values():
        for (e0, d0), (e1, d1) in zip(obs, obs[1:]):
            gaps.append((e1 - d1) - (e0 - d0))
            after.append((e1 - d1) - e0)
    late = sum(1 for g in gaps if g > a.interval_ms + 20)
    res = {
        "start_gap_ms_max": max(gaps) if gaps else None,
        "start_gap_ms_mean": statistics.mean(gaps) if gaps else None,
        "late_rounds": late,
        "gaps_seen": len(gaps),
        "end_to_next_start_ms_min": min(after) if after else None,
        "sources": n_src,
        "series": int(series_max) if n_src == 1 else int(sum(d.get("series", 0) for d in m.values())),
        "series_min": int(series_min),
        "rounds": rounds,
        "failed_rounds": int(fails),
        "passes": round(passes, 2),
        "window_s": round(window, 2),
        "round_ms_p50": pct(durations, 50),
        "round_ms_p90": pct(durations, 90),
        "round_ms_max": max(durations) if durations else None,
        "round_ms_min": min(durations) if durations else None,
        "round_ms_sum_per_pass": sum(durations) / passes if passes else None,
        "round_ms_seen": len(durations),
        "rounds_not_seen": missed,
        "period_ms_mean": statistics.mean(periods) if periods else None,
        "period_ms_max": max(periods) if periods else None,
        "max_sample_age_s": max_age,
        "stale_seen": stale_seen,
        "cpu_collector_ms_per_pass": d_coll * ms / passes if passes else None,
        "cpu_process_ms_per_pass": d_proc_ticks * tick_ms / passes if passes else None,
        "cpu_live_threads_ms_per_pass": d_live * ms / passes if passes else None,
        "cpu_collector_ms_per_source_round": d_coll * ms / rounds if rounds else None,
        "collector_threads": len(workers),
        "thread_ms": {str(t): d_thr[t] * ms for t in tids if d_thr[t]},
        "metrics_fetches": sc.fetches - fetch0,
        "other_ms_per_pass": {k: v / passes if passes else None for k, v in other.items()},
        "machine_others_pct": round(100.0 * busy_ms / total_ms, 1) if total_ms else None,
        "rss_kib_max": rss_max,
        "rss_kib_end": rss_end,
    }
    print(json.dumps(res))
    return 0


# ---- the pods' exposition ----

def body(d, every=None):
    if every:
        t0 = time.monotonic()
        while True:
            time.sleep(every)
            write_body(d, time.monotonic() - t0)
    samples, size, gz = write_body(d, 0.0)
    print(f"{samples} samples, {size} bytes, {gz} gzipped")
    return 0


def write_body(d, t):
    """The exposition after t seconds: ~40 requests/s spread over the series."""
    os.makedirs(d, exist_ok=True)
    L = []

    def fam(name, typ, help_):
        L.append(f"# HELP {name} {help_}")
        L.append(f"# TYPE {name} {typ}")

    fam("python_gc_objects_collected_total", "counter", "Objects collected during gc")
    for g in range(3):
        L.append(f'python_gc_objects_collected_total{{generation="{g}"}} {1234.0 * (g + 1)}')
    fam("python_gc_collections_total", "counter", "Number of times this generation was collected")
    for g in range(3):
        L.append(f'python_gc_collections_total{{generation="{g}"}} {97.0 + g}')
    fam("python_info", "gauge", "Python platform information")
    L.append('python_info{implementation="CPython",major="3",minor="11",patchlevel="2",'
             'version="3.11.2"} 1.0')
    for n, v, typ in [("process_virtual_memory_bytes", "2.1e+08", "gauge"),
                    ("process_resident_memory_bytes", "4.5e+07", "gauge"),
                    ("process_start_time_seconds", "1.7e+09", "gauge"),
                    ("process_cpu_seconds_total", "123.45", "counter"),
                    ("process_open_fds", "23.0", "gauge"),
                    ("process_max_fds", "1.048576e+06", "gauge")]:
        fam(n, typ, n.replace("_", " "))
        L.append(f"{n} {v}")
    handlers = ["/api/v1/orders", "/api/v1/items", "/healthz"]
    fam("http_requests_total", "counter", "Total HTTP requests")
    for h in handlers:
        for meth in ("GET", "POST"):
            for code in ("200", "404", "500"):
                L.append(f'http_requests_total{{code="{code}",handler="{h}",method="{meth}"}} '
                         f'{(len(h) * 131 + len(meth) * 7 + int(code)) * 10 + int(2 * t)}.0')
    fam("http_requests_created", "gauge", "Total HTTP requests")
    for h in handlers:
        for meth in ("GET", "POST"):
            for code in ("200", "404", "500"):
                L.append(f'http_requests_created{{code="{code}",handler="{h}",method="{meth}"}} '
                         '1.7e+09')
    bounds = ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0",
              "2.5", "5.0", "7.5", "10.0", "+Inf"]
    for name, help_ in [("http_request_duration_seconds", "HTTP request latency"),
                        ("http_response_size_bytes", "HTTP response size")]:
        fam(name, "histogram", help_)
        for h in handlers:
            c = 0.0
            for j, le in enumerate(bounds):
                c += 40 + 3 * j + int(t * (3 - abs(7 - j) / 3.0) if j < 14 else 0)
                L.append(f'{name}_bucket{{handler="{h}",le="{le}"}} {c}')
            L.append(f'{name}_count{{handler="{h}"}} {c}')
            L.append(f'{name}_sum{{handler="{h}"}} {c * 0.042:.4f}')
        fam(name + "_created", "gauge", help_)
        for h in handlers:
            L.append(f'{name}_created{{handler="{h}"}} 1.7e+09')
    fam("http_inflight_requests", "gauge", "Requests in flight")
    L.append("http_inflight_requests 3.0")
    text = ("\n".join(L) + "\n").encode()
    packed = gzip.compress(text, 6)
    for name, data in (("metrics", text), ("metrics.gz", packed)):
        with open(os.path.join(d, name + ".tmp"), "wb") as f:
            f.write(data)
        os.replace(os.path.join(d, name + ".tmp"), os.path.join(d, name))
    return sum(1 for x in L if not x.startswith("#")), len(text), len(packed)


# ---- the Kubernetes API stand-in with N pods ----

def pods(port, n, target_port):
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import kube_standin  # noqa: E402
    from kube_standin import KubeStandin, make_pod  # noqa: E402

    alphabet = "bcdfghjklmnpqrstvwxz2456789"

    def name(i):
        x, s = 1000003 + 7919 * i, ""
        for _ in range(5):
            x, d = divmod(x, len(alphabet))
            s += alphabet[d]
        return "web-6b7c9d8f5-" + s

    k = KubeStandin(port)
    k.set_pods([make_pod(name(i), namespace="default", ip=pod_ip(i),
                         labels={"app": "web", "pod-template-hash": "6b7c9d8f5"},
                         uid=f"00000000-0000-4000-8000-{i:012d}")
                for i in range(n)])
    # The list is the same every round: render it once, so that the stand-in's own Python
    # JSON encoding (hundreds of ms for thousands of pods) does not sit in the collector's
    # round as waiting time.
    orig = kube_standin.list_pods
    cache = {}

    def cached(standin, req, m):
        key = (m.group(1), req.query.get("labelSelector", [""])[0])
        if key not in cache:
            cache[key] = orig(standin, req, m)
        return cache[key]

    kube_standin.ROUTES[0] = (kube_standin.ROUTES[0][0], kube_standin.ROUTES[0][1], cached)
    k.httpd.serve_forever()


COLS = ("size", "series", "ready_ms", "rounds", "p50_ms", "p90_ms", "max_ms", "gap_max_ms",
        "late", "age_max_s", "stale", "fail", "cpu_coll_ms", "cpu_proc_ms", "peer_cpu_ms",
        "rss_mib", "others%")
FMT = "%7s %8s %8s %6s %8s %8s %8s %10s %5s %9s %5s %5s %11s %11s %11s %7s %7s"


def header():
    print("#" + (FMT % COLS)[1:])
    return 0


def row(size, ready, failed_targets):
    d = json.load(sys.stdin)
    if "error" in d:
        print(f"{size:>7} ERROR: {d['error']} {d.get('sources')}")
        return 1

    def f(v, digits=1):
        return "-" if v is None else f"{v:.{digits}f}"

    peers = d["other_ms_per_pass"]
    peer = "+".join(f(v) for v in peers.values()) if peers else "-"
    fail = d["failed_rounds"]
    if failed_targets not in ("", "0"):
        fail = f"{fail}/{failed_targets}t"
    print(FMT % (size, d["series"], ready, d["rounds"], f(d["round_ms_p50"]),
                 f(d["round_ms_p90"]), f(d["round_ms_max"]), f(d["start_gap_ms_max"], 0),
                 f"{d['late_rounds']}/{d['gaps_seen']}", f(d["max_sample_age_s"], 2),
                 d["stale_seen"], fail,
                 f(d["cpu_collector_ms_per_pass"]), f(d["cpu_process_ms_per_pass"]), peer,
                 f(d["rss_kib_max"] / 1024.0), f(d["machine_others_pct"])))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--ca", required=True)
    m.add_argument("--pid", type=int, required=True)
    m.add_argument("--rounds", type=int, default=4)
    m.add_argument("--warmup", type=int, default=2)
    m.add_argument("--poll", type=float, default=0.25)
    m.add_argument("--interval-ms", type=float, default=5000)
    m.add_argument("--max-seconds", type=float, default=90)
    m.add_argument("--proc", action="append")
    b = sub.add_parser("body")
    b.add_argument("--every", type=float)
    b.add_argument("dir")
    p = sub.add_parser("pods")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("target_port", type=int)
    i = sub.add_parser("ip")
    i.add_argument("i", type=int)
    r = sub.add_parser("row")
    r.add_argument("size")
    r.add_argument("ready")
    r.add_argument("failed_targets", nargs="?", default="")
    sub.add_parser("header")
    a = ap.parse_args()
    if a.cmd == "measure":
        return measure(a)
    if a.cmd == "body":
        return body(a.dir, a.every)
    if a.cmd == "pods":
        return pods(a.port, a.n, a.target_port)
    if a.cmd == "row":
        return row(a.size, a.ready, a.failed_targets)
    if a.cmd == "header":
        return header()
    if a.cmd == "ip":
        print(pod_ip(a.i))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
