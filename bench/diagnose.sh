#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Small measurements behind the findings in bench/README.md (results/diagnose.txt):
#  1. Redis commands per collector round (INFO commandstats) with DIAG_SERIES lists;
#  2. minor page faults and CPU per request for a one-series query at DIAG_BIG series;
#  3. where a new TLS connection's time goes (TCP connect, handshake, request, server close),
#     scalemetrics beside nginx, from a Python ssl client on an idle machine;
#  4. what the resident memory is made of (smaps: anonymous vs file-backed, biggest mappings).
#
# Knobs: DIAG_SERIES (10000), DIAG_BIG (100000), SM_BIN.

source "$(dirname "$0")/lib.sh"

DIAG_SERIES=${DIAG_SERIES:-10000}
DIAG_BIG=${DIAG_BIG:-100000}
TLS_SUITE=${TLS_SUITE:-TLS_AES_128_GCM_SHA256}
OUT=$RESULTS/diagnose.txt
EXT=/apis/external.metrics.k8s.io/v1beta1/namespaces/default/redis_queue_length

make_certs
write_client_openssl_conf
start_redis
exec > >(tee "$OUT") 2>&1
echo "# diagnose, $(date -u +%Y-%m-%dT%H:%M:%SZ); machine: $(machine_line)"

echo "## 1. Redis commands per collector round, $DIAG_SERIES lists, interval 1s"
fill_queues "$DIAG_SERIES"
port=$(free_port)
write_config "$WORK/sm.yaml" "$port" 200000 1s
start_sm "$WORK/sm.yaml" "$port"
sleep 2
redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
sleep 5
redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | grep '^cmdstat' |
	awk -F'[:=,]' '{ printf "  %-12s %8d calls in 5 s = %7.0f per round (%.1f per list)\n", $1, $3, $3 / 5, $3 / 5 / '"$DIAG_SERIES"' }'
echo "## 4. resident memory of that server ($DIAG_SERIES series, idle): smaps"
awk '/^Rss:/ { rss += $2 } /^Anonymous:/ { anon += $2 } END { printf "  Rss %d KiB, of which anonymous %d KiB, file-backed %d KiB\n", rss, anon, rss - anon }' "/proc/$SM_PID/smaps"
awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6) } /^Rss:/ { r[name] += $2 }
	END { for (n in r) printf "%8d KiB  %s\n", r[n], n }' "/proc/$SM_PID/smaps" | sort -rn | head -15 | sed 's/^/  /'
stop_sm

echo "## 2. per request at $DIAG_BIG series (one-series external query, 4 connections, 5 s)"
fill_queues "$DIAG_BIG"
write_config "$WORK/sm.yaml" "$port" 200000 30s
start_sm "$WORK/sm.yaml" "$port"
for i in $(seq 1 100); do
	[ "$(https_status "$port" "$EXT?labelSelector=queue%3Dq$((DIAG_BIG - 1))")" = 200 ] && break
	sleep 0.2
done
f0=$(awk '{ sub(/^.*\) /, ""); print $8 }' /proc/"$SM_PID"/stat)
c0=$(cpu_ticks "$SM_PID")
read -r rps p50 p99 err < <(run_wrk "https://127.0.0.1:$port$EXT?labelSelector=queue%3Dq7" 4 5s)
f1=$(awk '{ sub(/^.*\) /, ""); print $8 }' /proc/"$SM_PID"/stat)
c1=$(cpu_ticks "$SM_PID")
n=$(awk '/requests in/ { print $1 }' "$WORK/wrk.last")
echo "  $n requests ($rps/s, p50 $p50 ms): $(awk -v f=$((f1 - f0)) -v n="$n" 'BEGIN { printf "%.1f", f / n }') minor page faults and $(awk -v c=$((c1 - c0)) -v n="$n" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", c * 1000 / hz / n }') ms CPU per request"
stop_sm

echo "## 3. one new TLS connection per request (/healthz, Connection: close), idle machine, 40 tries, medians"
fill_queues 10
write_config "$WORK/sm.yaml" "$port" 10000 5s
start_sm "$WORK/sm.yaml" "$port"
mkdir -p "$WORK/www"
echo '{}' >"$WORK/www/h.json"
echo '"/healthz" h.json;' >"$WORK/map"
ngport=$(free_port)
NGINX_ACCESS_LOG="$WORK/nginx/logs/access.log reuse" start_nginx "$ngport" "$WORK/www" "$WORK/map"
run_wrk "https://127.0.0.1:$ngport/healthz" 2 3s -H "Connection: close" >/dev/null
echo "  does wrk resume TLS sessions? nginx's \$ssl_session_reused over a 3 s Connection: close run:" \
	"$(awk '{ n[$1]++ } END { printf "reused %d, new %d", n["r"], n["."] }' "$WORK/nginx/logs/access.log")"
for target in "scalemetrics $port" "nginx $ngport"; do
	set -- $target
	$PY - "$1" "$2" "$CA" <<'PY'
import socket, ssl, sys, time
name, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ph = {"tcp connect": [], "tls handshake": [], "request to response": [], "response to server close": []}
for i in range(40):
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    t1 = time.perf_counter()
    ss = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    t2 = time.perf_counter()
    ss.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    buf = b""
    t3 = None
    while True:
        d = ss.recv(65536)
        if not d:
            break
        buf += d
        if t3 is None and b"\r\n\r\n" in buf:
            t3 = time.perf_counter()
    t4 = time.perf_counter()
    ss.close()
    for k, v in zip(ph, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
        ph[k].append(v * 1000)
print(f"  {name:12s} " + ", ".join(f"{k} {sorted(v)[len(v) // 2]:.3f} ms" for k, v in ph.items()))
PY
done
