#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Soak (issue 8 item 6): SOAK_SECONDS of mixed load on loopback (four wrk processes: Redis-backed
# queries, PostgreSQL-backed queries, discovery/health/version, and a trickle of new TLS
# connections with Connection: close) while Redis is restarted twice and PostgreSQL twice, each
# kept down SOAK_DOWN seconds (longer than max_age, so the 503 window is really entered).
# Checks: no non-200 answer outside the documented window (a source's metrics may answer 503
# from the moment it goes down until its first good round after it is back: up to the backoff
# cap, 10s, plus one timeout and one interval), RSS at the end within 5% of RSS after warm-up,
# the same number of open fds at the end as after warm-up.
# Writes results/soak.txt and results/soak-samples.txt.
#
# Knobs: SOAK_SECONDS (600), SOAK_WARMUP (60), SOAK_DOWN (8), SOAK_DELAY_MS (1), SM_BIN.

source "$(dirname "$0")/lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_WARMUP=${SOAK_WARMUP:-60}
SOAK_DOWN=${SOAK_DOWN:-8}
SOAK_DELAY_MS=${SOAK_DELAY_MS:-1}
TLS_SUITE=${TLS_SUITE:-TLS_AES_128_GCM_SHA256}
PG_BIN=/usr/lib/postgresql/15/bin
INTERVAL=1
MAX_AGE=3
TIMEOUT=2
BACKOFF_CAP=10
OUT=$RESULTS/soak.txt
SAMPLES=$RESULTS/soak-samples.txt

make_certs
write_client_openssl_conf
start_redis
fill_queues 50

# PostgreSQL, as the postgres user (pgfixtures.py does the same).
PG_DIR=$WORK/pg
mkdir -p "$PG_DIR"
chown postgres: "$PG_DIR"
PG_PORT=$(free_port)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
pg_start()
{
	as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
		-o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
}
pg_stop() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null; }
pg_start
pg_started=1
pg_cleanup() { if [ "${pg_started:-0}" = 1 ]; then pg_stop || true; fi; }
trap 'pg_cleanup; bench_cleanup' EXIT
echo "host=127.0.0.1 port=$PG_PORT dbname=postgres user=postgres" >"$WORK/dsn"

port=$(free_port)
write_config "$WORK/sm.yaml" "$port" 10000 "${INTERVAL}s" 1024 256 "  - name: app-db
    type: postgresql
    dsn_file: \"$WORK/dsn\"
    interval: ${INTERVAL}s
    timeout: ${TIMEOUT}s
    builtin: true"
# every source (4-space indent): timeout and max_age of the soak
sed -i "s/^    timeout: [0-9]*s$/    timeout: ${TIMEOUT}s\n    max_age: ${MAX_AGE}s/" "$WORK/sm.yaml"
start_sm "$WORK/sm.yaml" "$port"

EXT=/apis/external.metrics.k8s.io/v1beta1/namespaces/default
CUS=/apis/custom.metrics.k8s.io/v1beta1/namespaces/default
for p in "$EXT/redis_queue_length" "$EXT/postgresql_connections_max"; do
	for i in $(seq 1 50); do
		[ "$(https_status "$port" "$p")" = 200 ] && break
		sleep 0.2
	done
done
REDIS_PATHS="$EXT/redis_queue_length?labelSelector=queue%3Dq7|$EXT/redis_queue_length|$CUS/deployments.apps/%2A/redis_queue_length|$CUS/deployments.apps/w-q7/redis_queue_length"
PG_PATHS="$EXT/postgresql_connections_max|$EXT/postgresql_connection_utilization|$EXT/postgresql_connections"
STATIC_PATHS="/apis/external.metrics.k8s.io/v1beta1|/apis/custom.metrics.k8s.io/v1beta1|/healthz|/version"
for p in ${REDIS_PATHS//|/ } ${PG_PATHS//|/ } ${STATIC_PATHS//|/ }; do
	s=$(https_status "$port" "$p")
	[ "$s" = 200 ] || { echo "before the soak: $p answers $s" >&2; exit 1; }
done

run_load() # NAME CONNS DELAY_MS PATHS [wrk args]
{
	local name=$1 c=$2 d=$3 paths=$4
	shift 4
	SOAK_PATHS=$paths SOAK_DELAY_MS=$d SOAK_OUT=$WORK/buckets.$name \
		OPENSSL_CONF=$WORK/client-openssl.cnf wrk -t "$c" -c "$c" -d "$((SOAK_SECONDS + 2))s" \
		--timeout 5s -s "$BENCH_DIR/soak.lua" "$@" "https://127.0.0.1:$port/" >"$WORK/wrk.$name" 2>&1 &
	BENCH_PIDS+=($!)
	LOAD_PIDS+=($!)
}
start_fds=$(fd_count "$SM_PID")
fd_list() { for f in /proc/"$SM_PID"/fd/*; do readlink "$f"; done | sed -E 's/\[[0-9]+\]/[..]/' | sort | uniq -c; }
fd_list >"$WORK/fds.start"
LOAD_PIDS=()
T0=$(date +%s)
run_load redis 2 "$SOAK_DELAY_MS" "$REDIS_PATHS"
run_load pg 2 "$SOAK_DELAY_MS" "$PG_PATHS"
run_load static 2 "$SOAK_DELAY_MS" "$STATIC_PATHS"
run_load newconn 1 20 "$EXT/redis_queue_length?labelSelector=queue%3Dq7" -H "Connection: close"

: >"$WORK/events"
: >"$SAMPLES"
echo "# t_s rss_kib fds threads cpu_ticks" >"$SAMPLES"
sample() { echo "$(($(date +%s) - T0)) $(rss_kib "$SM_PID") $(fd_count "$SM_PID") $(ls /proc/"$SM_PID"/task | wc -l) $(cpu_ticks "$SM_PID")" >>"$SAMPLES"; }

restart_redis()
{
	local t_down t_up
	t_down=$(date +%s)
	redis-cli -p "$REDIS_PORT" shutdown save >/dev/null 2>&1 || true
	wait "$REDIS_PID" 2>/dev/null || true
	sleep "$SOAK_DOWN"
	start_redis
	t_up=$(date +%s)
	echo "redis $t_down $t_up" >>"$WORK/events"
	log "redis restarted (down $((t_up - t_down))s)"
}
restart_pg()
{
	local t_down t_up
	t_down=$(date +%s)
	pg_stop
	sleep "$SOAK_DOWN"
	pg_start
	t_up=$(date +%s)
	echo "pg $t_down $t_up" >>"$WORK/events"
	log "postgresql restarted (down $((t_up - t_down))s)"
}

# Restarts at 25%, 45%, 65%, 85% of the run (after the warm-up): redis, pg, redis, pg.
declare -A AT=(
	[$((SOAK_SECONDS * 25 / 100))]=restart_redis
	[$((SOAK_SECONDS * 45 / 100))]=restart_pg
	[$((SOAK_SECONDS * 65 / 100))]=restart_redis
	[$((SOAK_SECONDS * 85 / 100))]=restart_pg
)
[ "$((SOAK_SECONDS * 25 / 100))" -gt "$SOAK_WARMUP" ] || { echo "SOAK_SECONDS too short for SOAK_WARMUP" >&2; exit 2; }
log "soak: ${SOAK_SECONDS}s, restarts at ${!AT[*]} s"
next_sample=0
warm_rss=""
done_at=()
while :; do
	now=$(($(date +%s) - T0))
	[ "$now" -ge "$SOAK_SECONDS" ] && break
	if [ "$now" -ge "$next_sample" ]; then
		sample
		next_sample=$((now + 10))
	fi
	if [ -z "$warm_rss" ] && [ "$now" -ge "$SOAK_WARMUP" ]; then
		warm_rss=$(rss_kib "$SM_PID")
		warm_fds=$(fd_count "$SM_PID")
		warm_t=$now
	fi
	for at in "${!AT[@]}"; do
		if [ "$now" -ge "$at" ] && [[ " ${done_at[*]-} " != *" $at "* ]]; then
			done_at+=("$at")
			${AT[$at]}
		fi
	done
	sleep 1
done
# Let the last recovery finish before the final reading while the load still runs.
end_rss=$(rss_kib "$SM_PID")
end_fds=$(fd_count "$SM_PID")
end_t=$(($(date +%s) - T0))
sample
for p in "${LOAD_PIDS[@]}"; do wait "$p" || true; done
# The server may take a moment to notice the clients' closes: wait up to 10 s for the count.
for i in $(seq 1 20); do
	idle_fds=$(fd_count "$SM_PID")
	[ "$idle_fds" -le "$start_fds" ] && break
	sleep 0.5
done
fd_list >"$WORK/fds.end"
alive=$(kill -0 "$SM_PID" 2>/dev/null && echo yes || echo no)

{
	echo "# soak, $(date -u +%Y-%m-%dT%H:%M:%SZ), ${SOAK_SECONDS}s of mixed load, warm-up ${SOAK_WARMUP}s"
	echo "# machine: $(machine_line)"
	echo "# sources: redis (50 lists) and postgresql (builtin), interval ${INTERVAL}s, max_age ${MAX_AGE}s, timeout ${TIMEOUT}s"
	echo "# each restart keeps the server down ${SOAK_DOWN}s; allowed 503 window per restart of a source:"
	echo "#   [down, up + backoff cap ${BACKOFF_CAP}s + timeout ${TIMEOUT}s + interval ${INTERVAL}s + 1s]"
	echo "# load: wrk -t2 -c2 each on Redis-backed, PostgreSQL-backed and static paths (delay ${SOAK_DELAY_MS}ms per request),"
	echo "#       wrk -t1 -c1 with Connection: close every 20ms (a TLS handshake per request)"
	for n in redis pg static newconn; do
		echo "# wrk $n: $(grep -E 'requests in' "$WORK/wrk.$n" | sed 's/^ *//'), $(grep -h '^# total' "$WORK/buckets.$n" | sed 's/^# //')"
		grep -E 'Socket errors' "$WORK/wrk.$n" | sed 's/^ */#   /' || true
	done
	echo "# restarts (epoch s, down..up):"
	sed 's/^/#   /' "$WORK/events"
	$PY - "$WORK" "$T0" "$((BACKOFF_CAP + TIMEOUT + INTERVAL + 1))" <<'EOF'
import sys, os
work, t0, slack = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
events = [l.split() for l in open(os.path.join(work, "events"))]
windows = {"redis": [], "pg": []}
for src, down, up in events:
    windows[src].append((int(down), int(up) + slack))
groups = {"redis": "redis", "pg": "pg", "static": None, "newconn": "redis"}
inside = outside = 0
for g, src in groups.items():
    path = os.path.join(work, "buckets." + g)
    if not os.path.exists(path):
        print(f"# {g}: no bucket file (wrk failed?)")
        outside += 1
        continue
    for line in open(path):
        if line.startswith("#"):
            continue
        t, status, idx, n = (int(x) for x in line.split())
        ok = status == 503 and src is not None and any(a <= t <= b for a, b in windows[src])
        if ok:
            inside += n
        else:
            outside += n
            print(f"# OUTSIDE the window: t+{t - t0}s status {status} group {g} path#{idx}: {n}")
seen = {}
for g, src in groups.items():
    path = os.path.join(work, "buckets." + g)
    if src is None or not os.path.exists(path):
        continue
    for line in open(path):
        if line.startswith("#"):
            continue
        t, status, idx, n = (int(x) for x in line.split())
        for w in windows[src]:
            if status == 503 and w[0] <= t <= w[1]:
                a, b = seen.get((src, w), (t, t))
                seen[(src, w)] = (min(a, t), max(b, t))
for src, down, up in events:
    w = (int(down), int(up) + slack)
    if (src, w) in seen:
        a, b = seen[(src, w)]
        print(f"# {src} down t+{int(down) - t0}s, back t+{int(up) - t0}s: 503 answered from t+{a - t0}s"
              f" to t+{b - t0}s (stale {a - int(down)}s after going down, good again {b + 1 - int(up)}s after it was back)")
    else:
        print(f"# {src} down t+{int(down) - t0}s, back t+{int(up) - t0}s: no 503 seen")
print(f"503 answers inside the documented windows: {inside}")
print(f"non-200 answers outside the windows: {outside}  -> {'PASS' if outside == 0 else 'FAIL'}")
EOF
	echo "RSS after warm-up (t+${warm_t}s): ${warm_rss} KiB; at the end (t+${end_t}s): ${end_rss} KiB;" \
		"change $(awk -v a="$warm_rss" -v b="$end_rss" 'BEGIN { printf "%+.1f%%", 100 * (b - a) / a }')" \
		"-> $(awk -v a="$warm_rss" -v b="$end_rss" 'BEGIN { d = (b - a) / a; if (d < 0) d = -d; print (d <= 0.05 ? "PASS" : "FAIL") }')"
	echo "open fds before the load: ${start_fds}; after warm-up: ${warm_fds}; at the end under load: ${end_fds}; after the load stopped: ${idle_fds}" \
		"-> $( [ "$idle_fds" -le "$start_fds" ] && echo PASS || echo FAIL) (under-load counts include the clients' sockets)"
	if ! cmp -s "$WORK/fds.start" "$WORK/fds.end"; then
		echo "# open fds by kind, before the load -> after it (diff):"
		diff "$WORK/fds.start" "$WORK/fds.end" | sed 's/^/#   /' || true
	fi
	echo "server still running at the end: $alive; threads: $(ls /proc/"$SM_PID"/task | wc -l)"
} | tee "$OUT"
