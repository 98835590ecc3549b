#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Fairness under overload (issue 22 item 1): wrk saturating scalemetrics and nginx (the same
# bytes, certificate and TLS 1.3 suite, bench/serve.sh's setup) with many keep-alive
# connections, one row per wrk run, the two servers alternating within the run, so that each
# row compares like with like. Prints rps, p50/p90/p99/max and errors per run.
#
# Knobs: DURATION (10s), CONNS ("50 200"), REPEAT (3), QUEUES (12: the answer has that many
#        items), QUERY (ext: the external query without selector, QUEUES items; ext1: one
#        item), SM_BIN, OUT (results/fairness.txt), SM_LOG (a file to copy the server's log
#        to, e.g. for an instrumented binary's per-connection lines), QUIET_WAIT_S (1200: how
#        long to wait for other heavy test runs (meson test, pytest, .ci/run) to end before
#        each wrk run; they share the machine's 2 cores), SM_ONLY (1: no nginx),
#        SM_BIN_BASE (a second scalemetrics binary, e.g. the one before a change, started beside
#        the first on its own port with the same config and measured in the same rows),
#        SERVER_CPUS and WRK_CPUS (taskset CPU lists, e.g. 0 and 1: every server thread on one
#        core, wrk on the other, so the client no longer takes the servers' CPU).

source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10s}
CONNS=${CONNS:-50 200}
REPEAT=${REPEAT:-3}
QUEUES=${QUEUES:-12}
QUERY=${QUERY:-ext}
TLS_SUITE=${TLS_SUITE:-TLS_AES_128_GCM_SHA256}
OUT=${OUT:-$RESULTS/fairness.txt}
QUIET_WAIT_S=${QUIET_WAIT_S:-1200}
SM_ONLY=${SM_ONLY:-}
SM_BIN_BASE=${SM_BIN_BASE:-}

# Waits (up to QUIET_WAIT_S) until no other test run is active on the machine; logs the wait.
wait_quiet()
{
	local waited=0
	while pgrep -f 'bash .ci/run|meson test|pytest' >/dev/null; do
		if [ "$waited" -ge "$QUIET_WAIT_S" ]; then
			log "another test run is still active after ${waited}s; measuring anyway"
			echo "# note: a run was measured while another test run was active" >>"$OUT"
			return 0
		fi
		[ "$waited" -gt 0 ] || log "another test run is active; waiting"
		sleep 10
		waited=$((waited + 10))
	done
	[ "$waited" -eq 0 ] || log "waited ${waited}s for other test runs to end"
}

# wrk_row URL CONNS PID... -> "rps p50 p90 p99 max errors cpu_us" (ms; cpu_us: the server
# processes' CPU time, user + system, per request)
wrk_row()
{
	local url=$1 conns=$2 t0 t1
	shift 2
	t0=$(server_ticks "$@")
	OPENSSL_CONF=$WORK/client-openssl.cnf ${WRK_CPUS:+taskset -c "$WRK_CPUS"} wrk -t 2 -c "$conns" -d "$DURATION" --latency --timeout 5s \
		"$url" >"$WORK/wrk.last" 2>&1 || true
	t1=$(server_ticks "$@")
	cat "$WORK/wrk.last" >>"$WORK/wrk.all"
	awk -v ticks=$((t1 - t0)) -v hz="$CLK_TCK" '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
		return v + 0
	}
	/^ +Latency +[0-9]/ { max = ms($4) }
	/^ +50%/ { p50 = ms($2) }
	/^ +90%/ { p90 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/requests in/ { n = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { err += $5 }
	END { printf "%.0f %.2f %.2f %.2f %.1f %d %.1f\n", rps, p50, p90, p99, max, err, (n > 0 ? ticks * 1e6 / hz / n : 0) }
	' "$WORK/wrk.last"
}

# CPU ticks of the given processes and their children (nginx's workers)
server_ticks()
{
	local sum=0 p
	for p in "$@" $(pgrep -P "$(echo "$@" | tr ' ' ',')" 2>/dev/null || true); do
		sum=$((sum + $(cpu_ticks "$p")))
	done
	echo "$sum"
}

make_certs
write_client_openssl_conf
start_redis
fill_queues "$QUEUES"
SM_PORT=$(free_port)
NG_PORT=$(free_port)
if [ -n "$SM_BIN_BASE" ]; then
	BASE_PORT=$(free_port)
	write_config "$WORK/base.yaml" "$BASE_PORT" 10000 5s 1024 256
	SM_BIN_MAIN=$SM_BIN
	SM_BIN=$SM_BIN_BASE
	start_sm "$WORK/base.yaml" "$BASE_PORT"
	BASE_PID=$SM_PID
	SM_BIN=$SM_BIN_MAIN
fi
write_config "$WORK/sm.yaml" "$SM_PORT" 10000 5s 1024 256
start_sm "$WORK/sm.yaml" "$SM_PORT"

EXT=/apis/external.metrics.k8s.io/v1beta1/namespaces/default/redis_queue_length
case $QUERY in
ext) URLP=$EXT ;;
ext1) URLP="$EXT?labelSelector=queue%3Dq7" ;;
*) echo "unknown QUERY '$QUERY' (ext, ext1)" >&2; exit 2 ;;
esac
mkdir -p "$WORK/www"
curl -sf --cacert "$CA" -o "$WORK/www/q.json" "https://127.0.0.1:$SM_PORT$URLP"
printf '"%s" q.json;\n' "$URLP" >"$WORK/nginx.map"
if [ -z "$SM_ONLY" ]; then
	start_nginx "$NG_PORT" "$WORK/www" "$WORK/nginx.map"
	curl -sf --cacert "$CA" -o "$WORK/q.nginx" "https://127.0.0.1:$NG_PORT$URLP"
	cmp -s "$WORK/www/q.json" "$WORK/q.nginx" || { echo "nginx answer differs" >&2; exit 1; }
fi

if [ -n "${SERVER_CPUS:-}" ]; then
	for pid in "$SM_PID" ${BASE_PID:-} ${NGINX_PID:-} $( [ -z "${NGINX_PID:-}" ] || pgrep -P "$NGINX_PID"); do
		taskset -a -p -c "$SERVER_CPUS" "$pid" >/dev/null
	done
fi

{
	echo "# fairness under overload, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# machine: $(machine_line); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# scalemetrics $("$SM_BIN" --version 2>/dev/null | head -1) ($SM_BIN); $(nginx -v 2>&1)"
	[ -z "$SM_BIN_BASE" ] || echo "# base (rows marked 'base'): $SM_BIN_BASE, measured in the same rows, before ours"
	echo "# wrk -t 2 -c CONNS -d $DURATION --latency, keep-alive, client pinned to $TLS_SUITE; servers alternate, one row per run"
	[ -z "${SERVER_CPUS:-}" ] || echo "# pinned: every server thread on CPU(s) $SERVER_CPUS, wrk on CPU(s) ${WRK_CPUS:-any}"
	echo "# query: $URLP ($(wc -c <"$WORK/www/q.json") bytes, $QUEUES redis lists, byte-identical in nginx), auth none, redis source interval 5s"
	echo "# negotiated, pinned client: scalemetrics: $(OPENSSL_CONF=$WORK/client-openssl.cnf negotiated "$SM_PORT")"
	[ -n "$SM_ONLY" ] || echo "# negotiated, pinned client: nginx:        $(OPENSSL_CONF=$WORK/client-openssl.cnf negotiated "$NG_PORT")"
	echo "# one line per wrk run; the servers alternate within a run (base, ours, nginx); cpu_us: server CPU per request"
	printf '%5s %3s %-6s | %7s %6s %6s %7s %7s %3s %6s | %6s %6s\n' conns run server \
		rps p50 p90 p99 max err cpu_us rps/ng p99/ng
} | tee "$OUT"

row()
{
	awk -v c="$1" -v i="$2" -v who="$3" -v r="$4" -v nr="$5" -v n99="$6" 'BEGIN {
		split(r, a, " ")
		printf "%5s %3s %-6s | %7s %6s %6s %7s %7s %3s %6s | %6s %6s\n", c, i, who,
			a[1], a[2], a[3], a[4], a[5], a[6], a[7],
			(nr > 0 ? sprintf("%.2f", a[1] / nr) : "-"), (n99 > 0 ? sprintf("%.2f", a[4] / n99) : "-")
	}' | tee -a "$OUT"
}

for c in $CONNS; do
	for i in $(seq 1 "$REPEAT"); do
		base="" ours="" ng="0 0 0 0 0 0 0"
		if [ -n "$SM_BIN_BASE" ]; then
			wait_quiet
			base=$(wrk_row "https://127.0.0.1:$BASE_PORT$URLP" "$c" "$BASE_PID")
		fi
		wait_quiet
		ours=$(wrk_row "https://127.0.0.1:$SM_PORT$URLP" "$c" "$SM_PID")
		if [ -z "$SM_ONLY" ]; then
			wait_quiet
			ng=$(wrk_row "https://127.0.0.1:$NG_PORT$URLP" "$c" "$NGINX_PID")
		fi
		read -r n_rps _ _ n_99 _ < <(echo "$ng")
		[ -z "$base" ] || row "$c" "$i" base "$base" "$n_rps" "$n_99"
		row "$c" "$i" ours "$ours" "$n_rps" "$n_99"
		[ -n "$SM_ONLY" ] || row "$c" "$i" nginx "$ng" "$n_rps" "$n_99"
	done
done
echo "# scalemetrics threads: $(ls /proc/"$SM_PID"/task | wc -l), load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
cp "$WORK/wrk.all" "${OUT%.txt}-wrk-raw.txt"
if [ -n "${SM_LOG:-}" ]; then
	stop_sm
	cp "$WORK/sm.log" "$SM_LOG"
fi
