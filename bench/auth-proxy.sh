#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The front proxy's path (issue 8 item 5): what kube-apiserver's aggregator does for every HPA
# query, a TLS client certificate from the front-proxy CA plus X-Remote-User/X-Remote-Group
# headers, the SubjectAccessReview cached. wrk cannot present a client certificate, so one
# curl process sends N requests over one keep-alive connection, one after the other; the
# time per request includes curl's own. Two binaries in the same run, alternating, medians:
#   before: SM_BIN_BEFORE (skipped when unset), after: SM_BIN.
# Writes results/auth-proxy.txt.
#
# Knobs: N (3000), REPEAT (5), SM_BIN, SM_BIN_BEFORE, TLS_SUITE.

source "$(dirname "$0")/lib.sh"

N=${N:-3000}
REPEAT=${REPEAT:-5}
TLS_SUITE=${TLS_SUITE:-TLS_AES_128_GCM_SHA256}
OUT=${OUT:-$RESULTS/auth-proxy.txt}
USER_NAME=system:serviceaccount:kube-system:horizontal-pod-autoscaler
Q='/apis/external.metrics.k8s.io/v1beta1/namespaces/default/redis_queue_length?labelSelector=queue%3Dq7'

make_certs
start_redis
fill_queues 50
TC=$WORK/test-certs
mkdir -p "$TC"
bash "$ROOT/certs/make-test-certs.sh" "$TC" >/dev/null 2>&1

start_kube "kube.sar_rules = [{'user': '$USER_NAME', 'allowed': True}]" || exit 1

declare -A PORT BIN
VARIANTS=after
[ -n "${SM_BIN_BEFORE:-}" ] && VARIANTS="before after"
BIN[before]=${SM_BIN_BEFORE:-}
BIN[after]=$SM_BIN
curl_args=(-s --cacert "$CA" --cert "$TC/front-proxy-client.crt" --key "$TC/front-proxy-client.key"
	-H "X-Remote-User: $USER_NAME" -H "X-Remote-Group: system:serviceaccounts")
for v in $VARIANTS; do
	port=$(free_port)
	SM_AUTH_YAML="    mode: delegated
    cache_ttl: 10m
    requestheader_client_ca_file: $TC/front-proxy-ca.crt
    client_ca_file: $TC/client-ca.crt
    requestheader_allowed_names: [front-proxy-client]" write_config "$WORK/$v.yaml" "$port" 10000 5s \
		1024 256 "kubernetes:
  server: \"http://127.0.0.1:$KUBE_PORT\""
	SM_BIN=${BIN[$v]} start_sm "$WORK/$v.yaml" "$port"
	PORT[$v]=$port
	curl "${curl_args[@]}" -o /dev/null -f "https://127.0.0.1:$port$Q" ||
		{ echo "$v: the proxied query failed" >&2; exit 1; }
done

# one_run PORT -> milliseconds for N requests (all must be 200)
one_run()
{
	local port=$1 urls=() i t0 t1 ok
	for i in $(seq 1 "$N"); do urls+=(-o /dev/null "https://127.0.0.1:$port$Q"); done
	t0=$(date +%s%N)
	ok=$(curl "${curl_args[@]}" -w '%{http_code}\n' "${urls[@]}" | grep -c '^200$')
	t1=$(date +%s%N)
	[ "$ok" = "$N" ] || echo "only $ok of $N answered 200" >&2
	echo $(((t1 - t0) / 1000000))
}

{
	echo "# front proxy (client certificate + X-Remote-* headers), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# machine: $(machine_line)"
	for v in $VARIANTS; do echo "# $v: $("${BIN[$v]}" --version | head -1) (${BIN[$v]})"; done
	echo "# query: $Q; $N requests over one keep-alive connection by one curl, $REPEAT runs alternating (median)"
	printf '%-7s | %8s %12s %9s\n' variant ms 'us/request' 'req/s'
} | tee "$OUT"
for v in $VARIANTS; do : >"$WORK/ms.$v"; done
for _ in $(seq 1 "$REPEAT"); do
	for v in $VARIANTS; do one_run "${PORT[$v]}" >>"$WORK/ms.$v"; done
done
for v in $VARIANTS; do
	ms=$(sort -n "$WORK/ms.$v" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	printf '%-7s | %8s %12s %9s\n' "$v" "$ms" "$(awk -v m="$ms" -v n="$N" 'BEGIN { printf "%.0f", m * 1000 / n }')" \
		"$(awk -v m="$ms" -v n="$N" 'BEGIN { printf "%.0f", n * 1000 / m }')" | tee -a "$OUT"
done
