#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Serving benchmark (issue 8 items 1 and 2): wrk over TLS against scalemetrics and against nginx
# serving the byte-identical JSON (captured from scalemetrics with curl) with the same
# certificate and the same TLS 1.3 cipher suite, in the same run, with keep-alive and with a
# new TLS connection per request. Writes results/serve.txt.
#
# Knobs: DURATION (10s), CONNS ("1 10 50"), TLS_SUITE (TLS_AES_128_GCM_SHA256),
#        MODES ("keepalive distinct close": keep-alive on one URL, keep-alive with a different
#        URL per request (bench/distinct.lua: no answer is ever reused), a new connection per
#        request; "paced" is also known: every connection sends a request about every PACE_MS
#        (10) ms, a different URL each time, bench/paced.lua), REPEAT (1: runs per point, alternating the two servers;
#        the table shows the median of each column, errors summed), SM_BIN,
#        QUERIES ("ext1 ext50 cust50 pods50"), CLOSE_QUERIES ("ext1 cust50"), PODS (50),
#        OUT (results/serve.txt), SERVER_CPUS and WRK_CPUS (taskset CPU lists, e.g. 0 and 1:
#        servers and client on different cores).
#
# pods50 is a custom pods query answered by a scrape source: the pods come from the Kubernetes
# API stand-in of the integration tests (tests/integration/kube_standin.py), PODS pods labelled
# app=web in namespace default, each at its own loopback address (127.0.0.10...) where a small
# HTTP server serves its Prometheus gauge (start_pods in lib.sh). Started only when pods50 is
# measured (in QUERIES, or in CLOSE_QUERIES with close among MODES).

source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10s}
CONNS=${CONNS:-1 10 50}
TLS_SUITE=${TLS_SUITE:-TLS_AES_128_GCM_SHA256}
MODES=${MODES:-keepalive distinct close}
REPEAT=${REPEAT:-1}
PODS=${PODS:-50}
QUERIES=${QUERIES:-ext1 ext50 cust50 pods50}
CLOSE_QUERIES=${CLOSE_QUERIES:-ext1 cust50}
OUT=${OUT:-$RESULTS/serve.txt}
PACE_MS=${PACE_MS:-10}
SERVER_CPUS=${SERVER_CPUS:-}
export BENCH_DIR PACE_MS

make_certs
write_client_openssl_conf
start_redis
fill_queues 50
SM_PORT=$(free_port)
NG_PORT=$(free_port)
# the queries measured in some mode, each once: captured for nginx and listed in the header
MEASURED=$QUERIES
case " $MODES " in *" close "*) MEASURED="$MEASURED $CLOSE_QUERIES" ;; esac
MEASURED=$(printf '%s\n' $MEASURED | awk '!seen[$0]++' | tr '\n' ' ')
pods_yaml=""
case " $MEASURED " in
*" pods50 "*)
	SCRAPE_PORT=$(free_port)
	start_pods "$PODS" "$SCRAPE_PORT" app=web
	pods_yaml=$(pods_source_yaml "$SCRAPE_PORT" app=web)
	;;
esac
write_config "$WORK/sm.yaml" "$SM_PORT" 10000 5s 1024 256 "$pods_yaml"
start_sm "$WORK/sm.yaml" "$SM_PORT"

EXT=/apis/external.metrics.k8s.io/v1beta1/namespaces/default/redis_queue_length
CUS=/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/deployments.apps/%2A/redis_queue_length
declare -A Q=(
	[ext1]="$EXT?labelSelector=queue%3Dq7"
	[ext50]="$EXT"
	[cust50]="$CUS"
	[pods50]="/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/%2A/inflight_requests?labelSelector=app%3Dweb"
)
for q in $QUERIES $CLOSE_QUERIES; do
	[ -n "${Q[$q]+x}" ] || { echo "unknown query '$q' (known: ${!Q[*]})" >&2; exit 2; }
done
# every query answers in full before anything is captured or measured
[ -z "$pods_yaml" ] || wait_items "$SM_PORT" "${Q[pods50]}" "$PODS" 20

mkdir -p "$WORK/www"
: >"$WORK/nginx.map"
for q in $MEASURED; do
	curl -sf --cacert "$CA" -o "$WORK/www/$q.json" "https://127.0.0.1:$SM_PORT${Q[$q]}"
	printf '"%s" %s.json;\n' "${Q[$q]}" "$q" >>"$WORK/nginx.map"
done
start_nginx "$NG_PORT" "$WORK/www" "$WORK/nginx.map"
if [ -n "$SERVER_CPUS" ]; then
	# both servers (every thread, nginx's workers too) on SERVER_CPUS, wrk on WRK_CPUS: the
	# client no longer steals the servers' cores, the nearest this machine gets to a second one
	for pid in "$SM_PID" "$NGINX_PID" $(pgrep -P "$NGINX_PID"); do
		taskset -a -p -c "$SERVER_CPUS" "$pid" >/dev/null
	done
fi
for q in $MEASURED; do
	curl -sf --cacert "$CA" -o "$WORK/$q.nginx" "https://127.0.0.1:$NG_PORT${Q[$q]}"
	cmp -s "$WORK/www/$q.json" "$WORK/$q.nginx" || { echo "nginx answer for $q differs" >&2; exit 1; }
done

{
	echo "# serving benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# machine: $(machine_line)"
	echo "# scalemetrics $("$SM_BIN" --version 2>/dev/null | head -1) ($SM_BIN); $(nginx -v 2>&1)"
	echo "# wrk ${DURATION} per run, $REPEAT run(s) per point (median), --latency, threads = min(2, connections); client pinned to $TLS_SUITE"
	[ -z "$SERVER_CPUS" ] || echo "# pinned: both servers on CPU(s) $SERVER_CPUS, wrk on CPU(s) ${WRK_CPUS:-any}"
	case " $MODES " in *" paced "*) echo "# paced: each connection sends a request, then waits ${PACE_MS} ms on average (0.5x-1.5x), a different URL each time (bench/paced.lua)" ;; esac
	echo "# queries:"
	for q in $MEASURED; do
		echo "#   $q: ${Q[$q]} ($(wc -c <"$WORK/www/$q.json") bytes, $($PY -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))' <"$WORK/www/$q.json") items, byte-identical in nginx)"
	done
	[ -z "$pods_yaml" ] || echo "# pods50: scrape source (interval ${PODS_INTERVAL:-5s}, gauge per pod), $PODS pods from tests/integration/kube_standin.py, one python http.server target per pod on 127.0.0.10+"
	echo "# negotiated, unrestricted client: scalemetrics: $(negotiated "$SM_PORT")"
	echo "# negotiated, unrestricted client: nginx:        $(negotiated "$NG_PORT")"
	echo "# negotiated, pinned client:       scalemetrics: $(OPENSSL_CONF=$WORK/client-openssl.cnf negotiated "$SM_PORT")"
	echo "# negotiated, pinned client:       nginx:        $(OPENSSL_CONF=$WORK/client-openssl.cnf negotiated "$NG_PORT")"
	echo "# session resumption (openssl s_client -reconnect): scalemetrics: $(resumes "$SM_PORT"), nginx: $(resumes "$NG_PORT")"
	echo "# resumption with a saved TLS 1.3 ticket (-sess_out/-sess_in): scalemetrics: $(resumes_ticket "$SM_PORT"), nginx: $(resumes_ticket "$NG_PORT")"
} | tee "$OUT"

printf '%-9s %-6s %5s | %9s %8s %8s %4s | %9s %8s %8s %4s | %5s\n' mode query conns \
	sm_rps sm_p50ms sm_p99ms err ng_rps ng_p50ms ng_p99ms err ratio | tee -a "$OUT"
for mode in $MODES; do
	extra=()
	qs=$QUERIES
	if [ "$mode" = close ]; then
		extra=(-H "Connection: close")
		qs=$CLOSE_QUERIES
	elif [ "$mode" = distinct ]; then
		extra=(-s "$BENCH_DIR/distinct.lua")
	elif [ "$mode" = paced ]; then
		extra=(-s "$BENCH_DIR/paced.lua")
	fi
	for q in $qs; do
		for c in $CONNS; do
			: >"$WORK/rep.sm"
			: >"$WORK/rep.ng"
			for _ in $(seq 1 "$REPEAT"); do
				run_wrk "https://127.0.0.1:$SM_PORT${Q[$q]}" "$c" "$DURATION" "${extra[@]+"${extra[@]}"}" >>"$WORK/rep.sm"
				run_wrk "https://127.0.0.1:$NG_PORT${Q[$q]}" "$c" "$DURATION" "${extra[@]+"${extra[@]}"}" >>"$WORK/rep.ng"
			done
			read -r s_rps s_p50 s_p99 s_err < <(median_rows "$WORK/rep.sm")
			read -r n_rps n_p50 n_p99 n_err < <(median_rows "$WORK/rep.ng")
			ratio=$(awk -v a="$s_rps" -v b="$n_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
			printf '%-9s %-6s %5s | %9s %8s %8s %4s | %9s %8s %8s %4s | %5s\n' "$mode" "$q" "$c" \
				"$s_rps" "$s_p50" "$s_p99" "$s_err" "$n_rps" "$n_p50" "$n_p99" "$n_err" "$ratio" | tee -a "$OUT"
		done
	done
done
# the server's own time per request (request read to answer queued, without TLS and sockets),
# from its /metrics histogram over every request of this run
curl -sf --cacert "$CA" "https://127.0.0.1:$SM_PORT/metrics" | awk '
	/^scalemetrics_http_request_duration_seconds_bucket/ {
		match($0, /route="[^"]*"/); r = substr($0, RSTART + 7, RLENGTH - 8)
		match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
		n[r, le] = $2; if (le == "+Inf") tot[r] = $2
	}
	END {
		for (r in tot) if (tot[r] > 0)
			printf "# server-side time, route %s, %d requests: %.2f%% under 0.1 ms, %.2f%% under 0.25 ms, %.2f%% under 1 ms\n", r, tot[r], 100 * n[r, "0.0001"] / tot[r], 100 * n[r, "0.00025"] / tot[r], 100 * n[r, "0.001"] / tot[r]
	}' | tee -a "$OUT"
echo "# scalemetrics RSS after the runs: $(rss_kib "$SM_PID") KiB, threads: $(ls /proc/"$SM_PID"/task | wc -l)" | tee -a "$OUT"
cp "$WORK/wrk.all" "${OUT%.txt}-wrk-raw.txt"
