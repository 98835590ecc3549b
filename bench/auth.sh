#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Delegated authentication and authorization on the serving path (issue 8 item 5, thread
# hand-offs): the one-series external query (ext1, keep-alive) sent with a bearer token whose
# TokenReview and SubjectAccessReview the server has cached (the steady state of an HPA
# controller), the Kubernetes API being the integration tests' stand-in
# (tests/integration/kube_standin.py). Three servers in the same run, runs alternating, medians:
#   none:     server.auth.mode none (no check at all), SM_BIN;
#   handoff:  delegated, SM_BIN_BEFORE: every request suspended, checked on an auth worker
#             thread and resumed (skipped when SM_BIN_BEFORE is unset; BEFORE_NAME names
#             the variant when SM_BIN_BEFORE is another earlier binary);
#   inline:   delegated, SM_BIN: decided in MHD's thread when the caches hold the answer.
# Writes results/auth.txt.
#
# Knobs: DURATION (8s), CONNS ("1 10 50"), REPEAT (3), SM_BIN, SM_BIN_BEFORE, BEFORE_NAME,
# TLS_SUITE.

source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-8s}
CONNS=${CONNS:-1 10 50}
REPEAT=${REPEAT:-3}
TLS_SUITE=${TLS_SUITE:-TLS_AES_128_GCM_SHA256}
OUT=${OUT:-$RESULTS/auth.txt}
BEFORE_NAME=${BEFORE_NAME:-handoff}
TOKEN=bench-token
Q='/apis/external.metrics.k8s.io/v1beta1/namespaces/default/redis_queue_length?labelSelector=queue%3Dq7'

make_certs
write_client_openssl_conf
start_redis
fill_queues 50

HPA_USER=system:serviceaccount:kube-system:horizontal-pod-autoscaler
start_kube "kube.tokens['$TOKEN'] = {'username': '$HPA_USER'}
kube.sar_rules = [{'user': '$HPA_USER', 'allowed': True}]" || exit 1

# start VARIANT BINARY MODE: one server, its port in PORT[VARIANT]
declare -A PORT BIN
start()
{
	local v=$1 bin=$2 mode=$3 port
	port=$(free_port)
	SM_AUTH_YAML="    mode: $mode
    cache_ttl: 10m" write_config "$WORK/$v.yaml" "$port" 10000 5s 1024 256 "kubernetes:
  server: \"http://127.0.0.1:$KUBE_PORT\""
	SM_BIN=$bin start_sm "$WORK/$v.yaml" "$port"
	PORT[$v]=$port
	BIN[$v]=$bin
	# the first request pays the reviews; every later one finds them cached
	curl -sf --cacert "$CA" -H "Authorization: Bearer $TOKEN" -o /dev/null \
		"https://127.0.0.1:$port$Q" || { echo "$v: the authorised query failed" >&2; exit 1; }
	[ "$mode" = none ] || [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" \
		"https://127.0.0.1:$port$Q")" = 403 ] || { echo "$v: anonymous not refused" >&2; exit 1; }
}

VARIANTS="none inline"
start none "$SM_BIN" none
start inline "$SM_BIN" delegated
if [ -n "${SM_BIN_BEFORE:-}" ]; then
	start "$BEFORE_NAME" "$SM_BIN_BEFORE" delegated
	VARIANTS="none $BEFORE_NAME inline"
fi

{
	echo "# delegated auth on the serving path, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# machine: $(machine_line)"
	for v in $VARIANTS; do
		echo "# $v: $("${BIN[$v]}" --version | head -1) (${BIN[$v]})"
	done
	echo "# query: $Q, keep-alive, Authorization: Bearer (TokenReview and SubjectAccessReview cached after the first request)"
	echo "# wrk $DURATION per run, $REPEAT run(s) per point alternating the servers (median), client pinned to $TLS_SUITE"
	printf '%-8s %5s | %9s %8s %8s %5s\n' variant conns rps p50ms p99ms err
} | tee "$OUT"
for c in $CONNS; do
	for v in $VARIANTS; do : >"$WORK/rep.$v"; done
	for _ in $(seq 1 "$REPEAT"); do
		for v in $VARIANTS; do
			run_wrk "https://127.0.0.1:${PORT[$v]}$Q" "$c" "$DURATION" \
				-H "Authorization: Bearer $TOKEN" >>"$WORK/rep.$v"
		done
	done
	for v in $VARIANTS; do
		read -r rps p50 p99 err < <(median_rows "$WORK/rep.$v")
		printf '%-8s %5s | %9s %8s %8s %5s\n' "$v" "$c" "$rps" "$p50" "$p99" "$err" | tee -a "$OUT"
	done
done
# what the delegated servers decided, from their own /metrics
for v in $VARIANTS; do
	[ "$v" = none ] && continue
	echo "# $v /metrics: $(curl -s --cacert "$CA" -H "Authorization: Bearer $TOKEN" \
		"https://127.0.0.1:${PORT[$v]}/metrics" | grep -E '^scalemetrics_auth_(decisions|cache)' | tr '\n' ' ')" | tee -a "$OUT"
done
cp "$WORK/wrk.all" "$RESULTS/auth-wrk-raw.txt" 2>/dev/null || true
