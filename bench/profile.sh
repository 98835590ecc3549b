#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Profiles (valgrind --tool=callgrind; `perf stat -e instructions` is not supported on this
# machine): instrumentation is switched on only for the part measured, with callgrind_control.
#  serve-ka:   keep-alive requests (ext1 and cust50 queries, wrk -c 4, PROF_SECONDS each)
#  serve-new:  a TLS handshake per request (Connection: close, ext1)
#  collector:  idle server with PROF_SERIES Redis lists, PROF_ROUNDS collector rounds
# Writes results/profile-*.txt (callgrind_annotate, exclusive and inclusive) and keeps the raw
# callgrind.out files in results/ unless PROF_KEEP_RAW=0.
#
# Knobs: PROF_SECONDS (10), PROF_SERIES (10000), PROF_ROUNDS (5), PROFILES, SM_BIN.

source "$(dirname "$0")/lib.sh"

PROF_SECONDS=${PROF_SECONDS:-10}
PROF_SERIES=${PROF_SERIES:-10000}
PROF_ROUNDS=${PROF_ROUNDS:-5}
PROFILES=${PROFILES:-serve-ka serve-new collector}
TLS_SUITE=${TLS_SUITE:-TLS_AES_128_GCM_SHA256}
EXT=/apis/external.metrics.k8s.io/v1beta1/namespaces/default/redis_queue_length
CUS=/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/deployments.apps/%2A/redis_queue_length

make_certs
write_client_openssl_conf
start_redis

annotate()
{
	local name=$1 raw=$2 out=$RESULTS/profile-$1.txt
	{
		echo "# callgrind profile '$name', $(date -u +%Y-%m-%dT%H:%M:%SZ), $SM_BIN"
		echo "# $3"
		echo "## exclusive (self) cost, top 40"
		callgrind_annotate --threshold=99 "$raw" 2>/dev/null | sed -n '1,60p'
		echo
		echo "## inclusive cost, top 60"
		callgrind_annotate --inclusive=yes --threshold=99 "$raw" 2>/dev/null | sed -n '1,80p'
	} >"$out"
	[ "${PROF_KEEP_RAW:-1}" = 1 ] && cp "$raw" "$RESULTS/callgrind.out.$name"
	log "wrote $out"
}

# start_cg N INTERVAL: scalemetrics under callgrind, instrumentation off until asked.
start_cg()
{
	fill_queues "$1"
	PORT=$(free_port)
	write_config "$WORK/sm.yaml" "$PORT" 200000 "$2"
	CG_OUT=$WORK/callgrind.out.$RANDOM
	start_sm "$WORK/sm.yaml" "$PORT" valgrind --tool=callgrind --instr-atstart=no \
		--callgrind-out-file="$CG_OUT" --separate-threads=no
}

stop_cg()
{
	callgrind_control -i off "$SM_PID" >/dev/null 2>&1 || true
	stop_sm
}

for p in $PROFILES; do
	case $p in
	serve-ka)
		start_cg 50 5s
		run_wrk "https://127.0.0.1:$PORT$EXT" 2 1s >/dev/null # warm the connections' code paths
		callgrind_control -i on "$SM_PID" >/dev/null
		a=$(run_wrk "https://127.0.0.1:$PORT$EXT?labelSelector=queue%3Dq7" 4 "${PROF_SECONDS}s")
		b=$(run_wrk "https://127.0.0.1:$PORT$CUS" 4 "${PROF_SECONDS}s")
		stop_cg
		annotate serve-ka "$CG_OUT" "keep-alive, 50 series: ext1 then cust50 for ${PROF_SECONDS}s each at 4 connections (under callgrind: rps p50 p99 err: $a / $b)"
		;;
	serve-new)
		start_cg 50 5s
		callgrind_control -i on "$SM_PID" >/dev/null
		a=$(run_wrk "https://127.0.0.1:$PORT$EXT?labelSelector=queue%3Dq7" 2 "${PROF_SECONDS}s" -H "Connection: close")
		stop_cg
		annotate serve-new "$CG_OUT" "Connection: close (one TLS 1.3 handshake per request), ext1, 2 connections (under callgrind: $a)"
		;;
	collector)
		start_cg "$PROF_SERIES" 1s
		sleep 3
		callgrind_control -i on "$SM_PID" >/dev/null
		sleep "$PROF_ROUNDS"
		stop_cg
		annotate collector "$CG_OUT" "idle server, $PROF_SERIES Redis lists, interval 1s, instrumented for ${PROF_ROUNDS}s (about $PROF_ROUNDS rounds; rounds run slower under valgrind)"
		;;
	esac
done
