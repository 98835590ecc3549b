#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Scaling curves (issue 8 item 4):
#  - series: 10 -> 100 -> 1k -> 10k -> 100k Redis lists (max_series raised to 200000): RSS,
#    collector CPU per round, start-up to ready, and wrk (keep-alive, C connections) latency of
#    a one-series external query (labelSelector) and a one-object custom query;
#  - connections: 1 -> 10 -> 100 -> 1000 keep-alive connections on the one-series external
#    query, scalemetrics beside nginx (same bytes, cipher, certificate), RSS under load.
# Writes results/scaling-series.txt and results/scaling-conns.txt (and .dat files for plot.sh).
#
# Knobs: DURATION (10s), SERIES ("10 100 1000 10000 100000"), SCONNS (10),
#        CONNS ("1 10 100 1000"), INTERVAL (5s), TLS_SUITE, SM_BIN.

source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10s}
SERIES=${SERIES:-10 100 1000 10000 100000}
SCONNS=${SCONNS:-10}
CONNS=${CONNS:-1 10 100 1000}
INTERVAL=${INTERVAL:-5s}
TLS_SUITE=${TLS_SUITE:-TLS_AES_128_GCM_SHA256}
PARTS=${PARTS:-series conns}
ival_s=${INTERVAL%s}
EXT=/apis/external.metrics.k8s.io/v1beta1/namespaces/default/redis_queue_length
CUS=/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/deployments.apps

make_certs
write_client_openssl_conf
start_redis

wait_series()
{
	local port=$1 n=$2 i
	for i in $(seq 1 600); do
		[ "$(https_status "$port" "$CUS/w-q$((n - 1))/redis_queue_length")" = 200 ] && return 0
		sleep 0.1
	done
	echo "series w-q$((n - 1)) never appeared" >&2
	return 1
}

header()
{
	echo "# $1, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# machine: $(machine_line)"
	echo "# scalemetrics $("$SM_BIN" --version 2>/dev/null | head -1); wrk $DURATION per point, keep-alive, client pinned to $TLS_SUITE"
}

if [[ " $PARTS " == *" series "* ]]; then
	OUT=$RESULTS/scaling-series.txt
	DAT=$RESULTS/scaling-series.dat
	{
		header "scaling with the number of series"
		echo "# collector interval $INTERVAL; cpu_ms/rnd = utime+stime of an idle server over 3 intervals / 3"
		echo "# ext1: $EXT?labelSelector=queue%3Dq7   obj1: $CUS/w-q7/redis_queue_length   ($SCONNS connections)"
		echo "# ext1d: ext1 with a different URL per request (bench/distinct.lua): never from the answer cache"
		printf '%7s %8s %9s %9s %10s | %8s %8s %8s | %8s %8s %8s | %9s | %8s %8s %8s\n' series ready_ms rss_kib \
			anon_kib cpu_ms/rnd ext1_rps p50ms p99ms obj1_rps p50ms p99ms rss_load ext1d_rps p50ms p99ms
	} | tee "$OUT"
	echo "# series ready_ms rss_kib anon_kib cpu_ms_round ext1_rps ext1_p50 ext1_p99 obj1_rps obj1_p50 obj1_p99 rss_load ext1d_rps ext1d_p50 ext1d_p99" >"$DAT"
	for n in $SERIES; do
		fill_queues "$n"
		port=$(free_port)
		write_config "$WORK/sm.yaml" "$port" 200000 "$INTERVAL" 2048 2048
		start_sm "$WORK/sm.yaml" "$port"
		ready=$SM_READY_MS
		wait_series "$port" "$n"
		sleep "$ival_s"
		t0=$(cpu_ticks "$SM_PID")
		sleep $((3 * ival_s))
		t1=$(cpu_ticks "$SM_PID")
		cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", d * 1000 / hz / 3 }')
		rss=$(rss_kib "$SM_PID")
		anon=$(anon_kib "$SM_PID")
		read -r e_rps e_p50 e_p99 e_err < <(run_wrk "https://127.0.0.1:$port$EXT?labelSelector=queue%3Dq7" "$SCONNS" "$DURATION")
		read -r o_rps o_p50 o_p99 o_err < <(run_wrk "https://127.0.0.1:$port$CUS/w-q7/redis_queue_length" "$SCONNS" "$DURATION")
		# The same one-series query with a different URL each time: never from the answer
		# cache, so it measures looking the series up and encoding the answer.
		read -r d_rps d_p50 d_p99 d_err < <(run_wrk "https://127.0.0.1:$port$EXT?labelSelector=queue%3Dq7" "$SCONNS" "$DURATION" -s "$BENCH_DIR/distinct.lua")
		rss_load=$(rss_kib "$SM_PID")
		[ "$e_err$o_err$d_err" = 000 ] || echo "# WARNING: errors during the $n-series runs: ext1 $e_err, obj1 $o_err" | tee -a "$OUT"
		printf '%7s %8s %9s %9s %10s | %8s %8s %8s | %8s %8s %8s | %9s | %8s %8s %8s\n' "$n" "$ready" "$rss" "$anon" "$cpu" \
			"$e_rps" "$e_p50" "$e_p99" "$o_rps" "$o_p50" "$o_p99" "$rss_load" "$d_rps" "$d_p50" "$d_p99" | tee -a "$OUT"
		echo "$n $ready $rss $anon $cpu $e_rps $e_p50 $e_p99 $o_rps $o_p50 $o_p99 $rss_load $d_rps $d_p50 $d_p99" >>"$DAT"
		stop_sm
	done
fi

if [[ " $PARTS " == *" conns "* ]]; then
	OUT=$RESULTS/scaling-conns.txt
	DAT=$RESULTS/scaling-conns.dat
	fill_queues 50
	port=$(free_port)
	ngport=$(free_port)
	write_config "$WORK/sm.yaml" "$port" 10000 "$INTERVAL" 4096 4096
	start_sm "$WORK/sm.yaml" "$port"
	q="$EXT?labelSelector=queue%3Dq7"
	mkdir -p "$WORK/www"
	curl -sf --cacert "$CA" -o "$WORK/www/ext1.json" "https://127.0.0.1:$port$q"
	printf '"%s" ext1.json;\n' "$q" >"$WORK/nginx.map"
	start_nginx "$ngport" "$WORK/www" "$WORK/nginx.map"
	{
		header "scaling with the number of concurrent keep-alive connections"
		echo "# ulimit -n $(ulimit -n); server.limits.max_connections 4096, max_connections_per_ip 4096; 50 series"
		echo "# query: $q ($(wc -c <"$WORK/www/ext1.json") bytes); rss_mid: scalemetrics VmRSS sampled in the middle of the run"
		printf '%6s | %9s %8s %8s %5s %9s | %9s %8s %8s %5s | %5s\n' conns sm_rps p50ms p99ms err rss_mid \
			ng_rps p50ms p99ms err ratio
	} | tee "$OUT"
	echo "# conns sm_rps sm_p50 sm_p99 rss_mid ng_rps ng_p50 ng_p99" >"$DAT"
	half=$((${DURATION%s} / 2))
	for c in $CONNS; do
		(sleep "$half"; rss_kib "$SM_PID" >"$WORK/rss_mid") &
		sampler=$!
		read -r s_rps s_p50 s_p99 s_err < <(run_wrk "https://127.0.0.1:$port$q" "$c" "$DURATION")
		wait "$sampler" || true
		rss_mid=$(cat "$WORK/rss_mid")
		read -r n_rps n_p50 n_p99 n_err < <(run_wrk "https://127.0.0.1:$ngport$q" "$c" "$DURATION")
		ratio=$(awk -v a="$s_rps" -v b="$n_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
		printf '%6s | %9s %8s %8s %5s %9s | %9s %8s %8s %5s | %5s\n' "$c" "$s_rps" "$s_p50" "$s_p99" \
			"$s_err" "$rss_mid" "$n_rps" "$n_p50" "$n_p99" "$n_err" "$ratio" | tee -a "$OUT"
		echo "$c $s_rps $s_p50 $s_p99 $rss_mid $n_rps $n_p50 $n_p99" >>"$DAT"
	done
	stop_nginx
	stop_sm
fi
cp "$WORK/wrk.all" "$RESULTS/scaling-wrk-raw.txt" 2>/dev/null || true
