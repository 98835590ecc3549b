#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Footprint (issue 8 item 3): resident memory with 10 and 10,000 series (Redis lists), start-up
# time to the first 200 on /readyz, CPU per collector round (utime+stime from /proc/PID/stat over
# ROUNDS rounds of an idle server), /usr/bin/time -v and valgrind massif peaks.
# Writes results/footprint.txt.
#
# Knobs: SERIES ("10 10000"), ROUNDS (20), INTERVAL (1s), STARTS (5), MASSIF (1), SM_BIN.

source "$(dirname "$0")/lib.sh"

SERIES=${SERIES:-10 10000}
ROUNDS=${ROUNDS:-20}
INTERVAL=${INTERVAL:-1s}
STARTS=${STARTS:-5}
MASSIF=${MASSIF:-1}
OUT=$RESULTS/footprint.txt
EXT=/apis/external.metrics.k8s.io/v1beta1/namespaces/default/redis_queue_length
ival_s=${INTERVAL%s}

make_certs
start_redis

count_items()
{
	curl -sf --cacert "$CA" "https://127.0.0.1:$1$EXT" |
		$PY -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))' 2>/dev/null || echo 0
}

wait_series()
{
	local port=$1 n=$2 i
	for i in $(seq 1 300); do
		[ "$(https_status "$port" "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/deployments.apps/w-q$((n - 1))/redis_queue_length")" = 200 ] && return 0
		sleep 0.1
	done
	echo "series w-q$((n - 1)) never appeared" >&2
	return 1
}

{
	echo "# footprint, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# machine: $(machine_line)"
	echo "# scalemetrics $("$SM_BIN" --version 2>/dev/null | head -1); interval $INTERVAL, max_series 10000 (the default)"
	echo "# rss_kib: VmRSS after $ROUNDS idle rounds; anon_kib: its RssAnon part (heap, stacks);"
	echo "# rss_full_list: VmRSS after one GET of the full external list (all series in one answer)"
	printf '%7s %7s %9s %9s %9s %9s %10s %10s %9s %8s %4s\n' series served ready_ms \
		ready_min rss_kib anon_kib rss_full_list cpu_ms/rnd cpu_%core threads fds
} | tee "$OUT"

for n in $SERIES; do
	fill_queues "$n"
	port=$(free_port)
	write_config "$WORK/sm.yaml" "$port" 10000 "$INTERVAL"
	readies=()
	for s in $(seq 1 "$STARTS"); do
		start_sm "$WORK/sm.yaml" "$port"
		readies+=("$SM_READY_MS")
		if [ "$s" -lt "$STARTS" ]; then stop_sm; fi
	done
	ready_med=$(printf '%s\n' "${readies[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	ready_min=$(printf '%s\n' "${readies[@]}" | sort -n | head -1)
	wait_series "$port" "$n"
	sleep $((2 * ival_s))
	t0=$(cpu_ticks "$SM_PID")
	w0=$(date +%s%N)
	sleep $((ROUNDS * ival_s))
	t1=$(cpu_ticks "$SM_PID")
	w1=$(date +%s%N)
	cpu_ms_round=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$ROUNDS" 'BEGIN { printf "%.2f", d * 1000 / hz / r }')
	cpu_pct=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v w=$((w1 - w0)) 'BEGIN { printf "%.2f", 100 * d / hz / (w / 1e9) }')
	rss=$(rss_kib "$SM_PID")
	anon=$(anon_kib "$SM_PID")
	served=$(count_items "$port")
	after_list=$(rss_kib "$SM_PID")
	printf '%7s %7s %9s %9s %9s %9s %10s %10s %9s %8s %4s\n' "$n" "$served" "$ready_med" "$ready_min" \
		"$rss" "$anon" "$after_list" "$cpu_ms_round" "$cpu_pct" \
		"$(ls /proc/"$SM_PID"/task | wc -l)" "$(fd_count "$SM_PID")" | tee -a "$OUT"
	stop_sm

	# /usr/bin/time -v: maximum resident set size over a run (start, 5 rounds, SIGTERM).
	/usr/bin/time -v -o "$WORK/time.$n" "$SM_BIN" serve --config "$WORK/sm.yaml" >>"$WORK/sm.log" 2>&1 &
	tpid=$!
	BENCH_PIDS+=("$tpid")
	wait_port "$port"
	wait_series "$port" "$n"
	sleep $((5 * ival_s))
	child=$(cat /proc/"$tpid"/task/"$tpid"/children)
	kill "$child"
	wait "$tpid" || true
	BENCH_PIDS=("${BENCH_PIDS[@]/$tpid/}")
	maxrss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.$n")
	echo "# /usr/bin/time -v, $n series: maximum resident set size $maxrss KiB," \
		"$(awk -F': ' '/Voluntary context switches/ { v = $2 } /Involuntary context switches/ { i = $2 } END { print "context switches " v " voluntary, " i " involuntary" }' "$WORK/time.$n")" |
		tee -a "$OUT"

	if [ "$MASSIF" = 1 ]; then
		valgrind --tool=massif --massif-out-file="$WORK/massif.$n" "$SM_BIN" serve \
			--config "$WORK/sm.yaml" >>"$WORK/sm.log" 2>&1 &
		vpid=$!
		BENCH_PIDS+=("$vpid")
		wait_port "$port"
		wait_series "$port" "$n"
		sleep $((5 * ival_s))
		kill "$vpid"
		wait "$vpid" || true
		BENCH_PIDS=("${BENCH_PIDS[@]/$vpid/}")
		ms_print "$WORK/massif.$n" >"$RESULTS/massif-$n.txt"
		peak=$(awk '/mem_heap_B=/ { split($0, a, "="); h = a[2] } /mem_heap_extra_B=/ { split($0, a, "="); x = a[2]; t = h + x; if (t > m) m = t } END { printf "%.0f", m / 1024 }' "$WORK/massif.$n")
		echo "# valgrind massif, $n series: peak heap (useful + allocator overhead) $peak KiB; full report results/massif-$n.txt" |
			tee -a "$OUT"
	fi
done
