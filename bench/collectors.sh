#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The collectors at cluster scale (issue 22 item 3): for each collector kind, a series of
# sizes, each with a fresh scalemetrics whose only sources are that kind's, and per size the
# round time as the server reports it (scalemetrics_source_last_round_duration_seconds, every
# round of the measured window), the period between rounds, the CPU per round of the
# collector threads and of the whole process, the peers' CPU per round (Redis, nginx,
# PostgreSQL's backends), RSS, and whether the data went stale.
#
#  redis:     one source, a glob rule `queue:*` matching N lists queue:q0..q(N-1) (the only
#             keys in the database), type auto (SCAN + TYPE + LLEN), real redis-server.
#  scrape:    one source with `pods:`, N Running+Ready pods listed by the Kubernetes API
#             stand-in of the integration tests (tests/integration/kube_standin.py), each at its
#             own loopback address 127.1.x.y, all served by one nginx (N listen lines, the same
#             gzipped exposition of bench/collectors.py body: 158 samples, 2 histograms, a
#             counter, gauges), rules: a rate, a p95, an average and a gauge.
#  postgres:  N postgresql sources (builtin metrics + one SQL query each, each in its own
#             namespace) against one PostgreSQL 15 (initdb + pg_ctl into the work dir).
#  pgbouncer: N pgbouncer sources (each in its own namespace) against one PgBouncer.
# Every source keeps the defaults of docs/configuration.md (interval 5s, timeout 1s, max_age
# 3 x interval) except max_series, raised to 1,000,000 where one source has more than the
# default 10,000 series. Everything listens on 127.0.0.0/8 and is stopped on exit.
#
# Writes results/collectors.txt (tables) and results/collectors.jsonl (every measurement).
# Knobs: KINDS ("redis scrape postgres pgbouncer"), REDIS_SIZES, SCRAPE_SIZES, PG_SIZES,
#        PGB_SIZES, ROUNDS (6 measured rounds per size, after 2 warm-up rounds), INTERVAL
#        (unset: the default 5s; whole s, m or ms), TIMEOUT (unset: the default 1s),
#        QUIET_WAIT_S (45: how long to wait, per size, for other test runs on the machine to
#        end), OUT, APPEND (set: append to OUT instead of starting it anew), MAX_SECONDS (150:
#        bound of warm-up and of the measured window), PERF_SECONDS (set: `perf record` the
#        largest size of each kind for that long, starting 12 s after the server;
#        results/collectors-perf-KIND.txt; the release build has no frame pointers, so self
#        time per function only), SM_BIN.

# shellcheck disable=SC2086 # the *_SIZES lists are split into words on purpose
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

KINDS=${KINDS:-redis scrape postgres pgbouncer}
REDIS_SIZES=${REDIS_SIZES:-1000 10000 50000 100000 200000 500000 1000000}
SCRAPE_SIZES=${SCRAPE_SIZES:-100 500 1000 2000 4000 6000}
PG_SIZES=${PG_SIZES:-10 50 100 200 400}
PGB_SIZES=${PGB_SIZES:-10 50 200}
ROUNDS=${ROUNDS:-6}
QUIET_WAIT_S=${QUIET_WAIT_S:-45}
OUT=${OUT:-$RESULTS/collectors.txt}
JSONL=${OUT%.txt}.jsonl
HELPER=$BENCH_DIR/collectors.py
PG_BIN=/usr/lib/postgresql/15/bin

make_certs

PG_DIR=""
PGB_PID=""
coll_cleanup()
{
	if [ -n "$PGB_PID" ]; then kill "$PGB_PID" 2>/dev/null || true; fi
	if [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ]; then
		as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	bench_cleanup
}
trap coll_cleanup EXIT

as_postgres()
{
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# sm_config FILE PORT: the server section; the sources follow on stdin.
sm_config()
{
	{
		cat <<EOF
server:
  listen: "127.0.0.1:$2"
  tls:
    cert_file: "$CERT"
    key_file: "$KEY"
  auth:
    mode: none
  namespace: default
  log_level: warn
EOF
		cat
	} >"$1"
}

# Waits (up to QUIET_WAIT_S) while another test run is active on the machine (as
# bench/fairness.sh does); the others% column says how busy the machine was anyway.
wait_quiet()
{
	local waited=0
	while pgrep -f 'bash .ci/run|meson test|pytest' >/dev/null; do
		if [ "$waited" -ge "$QUIET_WAIT_S" ]; then
			log "another test run is still active after ${waited}s; measuring anyway"
			return 0
		fi
		sleep 5
		waited=$((waited + 5))
	done
	[ "$waited" -eq 0 ] || log "waited ${waited}s for other test runs to end"
}

interval_ms()
{
	local v=${INTERVAL:-5s}
	case $v in
	*ms) echo "${v%ms}" ;;
	*s) echo $((${v%s} * 1000)) ;;
	*m) echo $((${v%m} * 60000)) ;;
	esac
}

# The common keys of every source: the defaults unless INTERVAL or TIMEOUT is given.
source_common()
{
	[ -n "${INTERVAL:-}" ] && echo "    interval: $INTERVAL"
	[ -n "${TIMEOUT:-}" ] && echo "    timeout: $TIMEOUT"
	return 0
}

# largest SIZES...: the largest of the sizes (profiled when PERF_SECONDS is set)
largest() { printf '%s\n' "$@" | sort -n | tail -1; }

# run_size KIND SIZE CONFIG [--proc NAME=PID ...]: a fresh scalemetrics, one measurement.
run_size()
{
	local kind=$1 size=$2 cfg=$3 port json failed
	shift 3
	port=$(sed -n 's/^  listen: "127.0.0.1:\([0-9]*\)"/\1/p' "$cfg")
	: >"$WORK/sm.log"
	wait_quiet
	start_sm "$cfg" "$port"
	local perf_pid=""
	if [ -n "${PERF_SECONDS:-}" ] && [ "$size" = "$PERF_SIZE" ]; then
		# after the warm-up rounds, for PERF_SECONDS: where the process's CPU goes
		(sleep 12; exec perf record -q -e cpu-clock -F 499 -o "$WORK/perf.data" \
			-p "$SM_PID" -- sleep "$PERF_SECONDS") >/dev/null 2>&1 &
		perf_pid=$!
	fi
	json=$($PY "$HELPER" measure --port "$port" --ca "$CA" --pid "$SM_PID" \
		--rounds "$ROUNDS" --max-seconds "${MAX_SECONDS:-150}" \
		--interval-ms "$(interval_ms)" "$@") || true
	if [ -n "$perf_pid" ]; then
		wait "$perf_pid" || true
		{
			echo "# perf record -e cpu-clock -F 499 -p SM_PID for ${PERF_SECONDS}s: $kind, size $size, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
			echo "# $("$SM_BIN" version | head -1); samples of every thread of the process"
			echo "## by shared object"
			perf report -i "$WORK/perf.data" --stdio --sort dso 2>/dev/null |
				grep '%' | grep -v '^#' | head -12 || true
			echo "## by symbol, self"
			perf report -i "$WORK/perf.data" --stdio --sort dso,symbol 2>/dev/null |
				grep '%' | grep -v '^#' | head -45 || true
		} >"$RESULTS/collectors-perf-$kind.txt"
		log "wrote $RESULTS/collectors-perf-$kind.txt"
	fi
	# scrape: targets that failed a round ("K of N targets failed"), the most in one round
	failed=$({ grep -o '[0-9]* of [0-9]* targets failed' "$WORK/sm.log" || true; } |
		awk '$1 > m { m = $1 } END { print m + 0 }')
	stop_sm
	echo "{\"kind\": \"$kind\", \"size\": $size, \"ready_ms\": $SM_READY_MS, \"failed_targets_max\": $failed, \"log_lines\": $(wc -l <"$WORK/sm.log"), \"m\": ${json:-null}}" >>"$JSONL"
	echo "$json" | $PY "$HELPER" row "$size" "$SM_READY_MS" "$failed" | tee -a "$OUT"
	{ grep -E 'level=(warn|error)' "$WORK/sm.log" || true; } | { grep -v 'auth' || true; } | head -3 |
		cut -c1-300 | sed 's/^/#   log: /' | tee -a "$OUT"
}

table_header()
{
	{
		echo
		echo "## $1"
		echo "# $2"
		$PY "$HELPER" header
	} | tee -a "$OUT"
}

# ---- redis ----
run_redis()
{
	start_redis
	table_header "redis: one glob rule queue:* over N lists (SCAN + TYPE + LLEN)" \
		"size = keys matched; peer_cpu = redis-server's CPU per round"
	local n cfg
	PERF_SIZE=$(largest $REDIS_SIZES)
	for n in $REDIS_SIZES; do
		redis-cli -p "$REDIS_PORT" flushall >/dev/null
		awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "RPUSH queue:q%d job%d\r\n", i, i }' |
			redis-cli -p "$REDIS_PORT" --pipe >/dev/null
		[ "$(redis-cli -p "$REDIS_PORT" dbsize)" = "$n" ] || { log "redis: fill failed"; return 1; }
		cfg=$WORK/sm-redis.yaml
		sm_config "$cfg" "$(free_port)" <<EOF
sources:
  - name: queues
    type: redis
    address: "127.0.0.1:$REDIS_PORT"
$(source_common)
    max_series: 1000000
    queues:
      - metric: redis_queue_length
        keys: ["queue:*"]
EOF
		log "redis: $n keys"
		run_size redis "$n" "$cfg" --proc "redis=$REDIS_PID"
	done
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	stop_redis
}

# ---- scrape ----
run_scrape()
{
	local max=0 n i cfg tport kport kpid d=$WORK/nginx-pods
	for n in $SCRAPE_SIZES; do [ "$n" -gt "$max" ] && max=$n; done
	mkdir -p "$d/www" "$d/logs"
	$PY "$HELPER" body "$d/www" | sed 's/^/# exposition: /' >"$WORK/body.txt"
	# the counters and histograms grow: the file is rewritten every second
	$PY "$HELPER" body --every 1 "$d/www" >/dev/null 2>&1 &
	BENCH_PIDS+=($!)
	tport=$(free_port)
	{
		cat <<EOF
daemon off;
user root;
worker_processes 1;
worker_rlimit_nofile 19500;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 19000; }
http {
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    server {
EOF
		for i in $(seq 0 $((max - 1))); do  # collectors.py's pod_ip(i)
			echo "        listen 127.1.$((i / 250)).$((i % 250 + 1)):$tport;"
		done
		cat <<EOF
        root $d/www;
        location = /metrics {
            gzip_static on;
            types { }
            default_type "text/plain; version=0.0.4; charset=utf-8";
        }
    }
}
EOF
	} >"$d/nginx.conf"
	nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" >"$d/logs/stdout" 2>&1 &
	local ngpid=$!
	BENCH_PIDS+=("$ngpid")
	sleep 1
	curl -sf --compressed -o /dev/null "http://$($PY "$HELPER" ip $((max - 1))):$tport/metrics" ||
		{ log "nginx does not serve the targets"; cat "$d/logs/error.log" >&2; return 1; }
	table_header "scrape: one source, N pods discovered through the Kubernetes API stand-in" \
		"size = pods; $(sed 's/^# //' "$WORK/body.txt") each (gzip); peer_cpu = nginx + the stand-in per round"
	PERF_SIZE=$(largest $SCRAPE_SIZES)
	for n in $SCRAPE_SIZES; do
		kport=$(free_port)
		$PY "$HELPER" pods "$kport" "$n" "$tport" >"$WORK/kube.log" 2>&1 &
		kpid=$!
		BENCH_PIDS+=("$kpid")
		wait_port "$kport"
		cfg=$WORK/sm-scrape.yaml
		sm_config "$cfg" "$(free_port)" <<EOF
kubernetes:
  server: "http://127.0.0.1:$kport"
sources:
  - name: web
    type: scrape
$(source_common)
    max_series: 1000000
    pods: {namespace: default, selector: "app=web", port: $tport, path: /metrics, scheme: http}
    rates:
      - metric: http_requests_per_second
        counter: http_requests_total
        window: 60s
    quantiles:
      - metric: http_request_duration_p95_seconds
        histogram: http_request_duration_seconds
        quantile: 0.95
        window: 5m
    averages:
      - metric: http_request_duration_avg_seconds
        histogram: http_request_duration_seconds
        window: 5m
    gauges:
      - metric: inflight_requests
        gauge: http_inflight_requests
EOF
		log "scrape: $n pods"
		run_size scrape "$n" "$cfg" --proc "nginx=+$ngpid" --proc "kube=$kpid"
		stop_pid "$kpid"
	done
	stop_pid "$ngpid"
}

# ---- postgres, pgbouncer ----
start_pg()
{
	local maxc=$1
	PG_DIR=$WORK/pg
	mkdir -p "$PG_DIR"
	[ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
	PG_PORT=$(free_port)
	as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
	as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
		-o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=$maxc -c fsync=off -c shared_buffers=64MB" \
		start >/dev/null
	PG_MASTER=$(head -1 "$PG_DIR/data/postmaster.pid")
	$PY - "$PG_PORT" <<'PYEOF'
import sys, psycopg2
c = psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), dbname="postgres", user="postgres")
c.autocommit = True
cur = c.cursor()
cur.execute("CREATE DATABASE app")
c.close()
c = psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), dbname="app", user="postgres")
c.autocommit = True
cur = c.cursor()
cur.execute("CREATE TABLE jobs (id serial PRIMARY KEY, queue text, state text)")
cur.execute("INSERT INTO jobs (queue, state) SELECT 'q' || (i % 8), "
            "CASE WHEN i % 3 = 0 THEN 'pending' ELSE 'done' END FROM generate_series(1, 10000) i")
cur.execute("CREATE INDEX ON jobs (state)")
cur.execute("ANALYZE jobs")
c.close()
PYEOF
}

pg_sources() # N TYPE
{
	local i
	echo "sources:"
	for i in $(seq 0 $(($1 - 1))); do
		cat <<EOF
  - name: $2-$i
    type: $2
    dsn_env: SM_BENCH_DSN
    namespaces: [team-$i]
$(source_common)
EOF
		if [ "$2" = postgresql ]; then
			cat <<EOF
    queries:
      - metric: pending_jobs
        sql: "SELECT queue, count(*) FROM jobs WHERE state = 'pending' GROUP BY queue"
EOF
		fi
	done
}

run_postgres()
{
	local max=0 n cfg
	for n in $PG_SIZES; do [ "$n" -gt "$max" ] && max=$n; done
	[ -n "$PG_DIR" ] || start_pg $((max + 40))
	table_header "postgres: N postgresql sources (builtin + 1 query each) on one PostgreSQL" \
		"size = sources; a pass = one round of every source; round_ms per source-round; cpu per pass; peer_cpu = PostgreSQL's backends per pass"
	export SM_BENCH_DSN="host=127.0.0.1 port=$PG_PORT dbname=app user=postgres"
	PERF_SIZE=$(largest $PG_SIZES)
	for n in $PG_SIZES; do
		cfg=$WORK/sm-pg.yaml
		pg_sources "$n" postgresql | sm_config "$cfg" "$(free_port)"
		log "postgres: $n sources"
		run_size postgres "$n" "$cfg" --proc "postgres=+$PG_MASTER"
	done
}

run_pgbouncer()
{
	local max=0 n cfg
	for n in $PGB_SIZES; do [ "$n" -gt "$max" ] && max=$n; done
	[ -n "$PG_DIR" ] || start_pg 100
	PGB_PORT=$(free_port)
	printf '"postgres" ""\n' >"$PG_DIR/userlist.txt"
	{
		echo "[databases]"
		for i in $(seq 0 19); do
			echo "app$i = host=127.0.0.1 port=$PG_PORT dbname=app pool_size=2"
		done
		cat <<EOF
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $PG_DIR/userlist.txt
admin_users = postgres
pool_mode = session
max_client_conn = $((max + 50))
default_pool_size = 2
logfile = $PG_DIR/pgbouncer.log
pidfile = $PG_DIR/pgbouncer.pid
EOF
	} >"$PG_DIR/pgbouncer.ini"
	[ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR/pgbouncer.ini" "$PG_DIR/userlist.txt" "$PG_DIR"
	as_postgres pgbouncer -d "$PG_DIR/pgbouncer.ini" >/dev/null
	wait_port "$PGB_PORT"
	PGB_PID=$(cat "$PG_DIR/pgbouncer.pid")
	# one client per database, so that SHOW POOLS has 20 rows with something in them
	$PY - "$PGB_PORT" <<'PYEOF' &
import sys, time, psycopg2
cs = [psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), dbname=f"app{i}", user="postgres")
      for i in range(20)]
time.sleep(100000)
PYEOF
	BENCH_PIDS+=($!)
	table_header "pgbouncer: N pgbouncer sources on one PgBouncer (20 databases)" \
		"size = sources; a pass = one round of every source; peer_cpu = pgbouncer per pass"
	export SM_BENCH_DSN="host=127.0.0.1 port=$PGB_PORT dbname=pgbouncer user=postgres"
	PERF_SIZE=$(largest $PGB_SIZES)
	for n in $PGB_SIZES; do
		cfg=$WORK/sm-pgb.yaml
		pg_sources "$n" pgbouncer | sm_config "$cfg" "$(free_port)"
		log "pgbouncer: $n sources"
		run_size pgbouncer "$n" "$cfg" --proc "pgbouncer=$PGB_PID"
	done
}

{
	echo "# collectors at cluster scale (bench/collectors.sh), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# machine: $(machine_line); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# scalemetrics: $SM_BIN ($("$SM_BIN" version 2>/dev/null | head -1)); interval ${INTERVAL:-5s (default)}, timeout ${TIMEOUT:-1s (default)}"
	echo "# per size: a fresh server, 2 warm-up rounds, then $ROUNDS measured rounds (each source)."
	echo "# p50/p90/max_ms: scalemetrics_source_last_round_duration_seconds of each measured round"
	echo "#   (the collect step; publishing to the store is not in it); gap_max_ms: longest time from"
	echo "#   the start of a round to the start of the source's next one (start = sample time - round"
	echo "#   duration); late: rounds that started more than 20 ms after their interval, of those"
	echo "#   seen in pairs; age_max_s: largest scalemetrics_source_sample_age_seconds"
	echo "#   seen (polled every 0.25 s); stale: 1 if scalemetrics_source_stale was ever 1; fail:"
	echo "#   failed rounds (scrape: /Nt = most targets failed in one round, from the log)."
	echo "# cpu_coll_ms: CPU time of the collector threads per pass (a pass = one round of every"
	echo "#   source), from /proc/PID/task/TID/schedstat (ns); cpu_proc_ms: the whole process,"
	echo "#   utime+stime (10 ms ticks; includes serving the 0.25 s /metrics polls); peer_cpu_ms:"
	echo "#   the peers' CPU per pass (schedstat); rss_mib: largest VmRSS during the window;"
	echo "#   others%: CPU used by all other processes (this helper included) during the window,"
	echo "#   in % of the whole machine (2 cores = 100%)."
} | tee ${APPEND:+-a} "$OUT"
[ -n "${APPEND:-}" ] || : >"$JSONL"
for kind in $KINDS; do
	"run_$kind"
done
log "wrote $OUT and $JSONL"
