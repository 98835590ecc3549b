#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Shared helpers for the bench/ scripts: a private work dir, free loopback ports, certificates,
# redis-server, scalemetrics and nginx started in the foreground as children of the script and
# stopped (by their pid) on exit, wrk runs parsed into numbers. Sourced, not run.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SM_BIN=${SM_BIN:-$ROOT/build-bench/scalemetrics}
RESULTS=${RESULTS:-$BENCH_DIR/results}
PY=/usr/bin/python3
# What the benchmarks run beside the server (wrk, nginx): installed when missing, as root,
# like scripts/test.sh installs what the tests need.
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sm_install_packages wrk nginx-light
mkdir -p "$RESULTS"

WORK=$(mktemp -d /tmp/sm-bench.XXXXXX)
chmod 755 "$WORK"
BENCH_PIDS=()

bench_cleanup()
{
	local p
	for p in "${BENCH_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${BENCH_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -z "${BENCH_KEEP:-}" ]; then
		rm -rf "$WORK"
	else
		echo "work dir kept: $WORK" >&2
	fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

free_port()
{
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Kills one pid we started and forgets it.
stop_pid()
{
	local pid=$1 p keep=()
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${BENCH_PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	BENCH_PIDS=("${keep[@]+"${keep[@]}"}")
}

make_certs()
{
	"$ROOT/certs/make-certs.sh" "$WORK/certs" >/dev/null 2>&1
	CERT=$WORK/certs/tls.crt
	KEY=$WORK/certs/tls.key
	CA=$WORK/certs/ca.crt
}

wait_port()
{
	local port=$1 i
	for i in $(seq 1 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "nothing listens on 127.0.0.1:$port" >&2
	return 1
}

# start_redis: sets REDIS_PORT, REDIS_PID (redis-server in the foreground, no persistence).
start_redis()
{
	REDIS_PORT=${REDIS_PORT:-$(free_port)}
	mkdir -p "$WORK/redis"
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--dir "$WORK/redis" --logfile "$WORK/redis/log" >/dev/null 2>&1 &
	REDIS_PID=$!
	BENCH_PIDS+=("$REDIS_PID")
	wait_port "$REDIS_PORT"
	local i
	for i in $(seq 1 100); do
		redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
		sleep 0.05
	done
	return 1
}

stop_redis() { stop_pid "$REDIS_PID"; }

# fill_queues N: FLUSHALL, then N lists queue:q0..queue:q(N-1), item counts 1..N.
fill_queues()
{
	local n=$1
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "RPUSH queue:q%d job%d\r\n", i, i }' |
		redis-cli -p "$REDIS_PORT" --pipe >/dev/null
	local got
	got=$(redis-cli -p "$REDIS_PORT" dbsize)
	[ "$got" = "$n" ] || { echo "redis holds $got keys, wanted $n" >&2; return 1; }
}

# write_config FILE PORT MAX_SERIES [INTERVAL] [MAX_CONN] [MAX_CONN_PER_IP] [EXTRA_SOURCE_YAML]
# (SM_AUTH_YAML: the lines under server.auth, indented 4; default "mode: none")
write_config()
{
	local file=$1 port=$2 max_series=$3 interval=${4:-5s} maxc=${5:-1024} maxip=${6:-256}
	local extra=${7:-}
	cat >"$file" <<EOF
server:
  listen: "127.0.0.1:$port"
  tls:
    cert_file: "$CERT"
    key_file: "$KEY"
  auth:
${SM_AUTH_YAML:-    mode: none}
  limits:
    max_connections: $maxc
    max_connections_per_ip: $maxip
  namespace: default
  log_level: ${SM_LOG_LEVEL:-warn}
sources:
  - name: jobs
    type: redis
    address: "127.0.0.1:$REDIS_PORT"
    interval: $interval
    timeout: 2s
    max_series: $max_series
    queues:
      - metric: redis_queue_length
        keys: ["queue:*"]
        object:
          resource: deployments.apps
          name: "w-{queue}"
$extra
EOF
}

https_status() # PORT PATH -> HTTP status (000 when no answer)
{
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$CA" \
		"https://127.0.0.1:$1$2" 2>/dev/null || true
}

# start_sm CONFIG PORT [WRAPPER...]: sets SM_PID, SM_READY_MS (start -> first 200 on /readyz).
start_sm()
{
	local cfg=$1 port=$2
	shift 2
	local t0 t1 i
	t0=$(date +%s%N)
	"$@" "$SM_BIN" serve --config "$cfg" >>"$WORK/sm.log" 2>&1 &
	SM_PID=$!
	BENCH_PIDS+=("$SM_PID")
	for i in $(seq 1 3000); do
		if [ "$(https_status "$port" /readyz)" = 200 ]; then
			t1=$(date +%s%N)
			SM_READY_MS=$(((t1 - t0) / 1000000))
			return 0
		fi
		kill -0 "$SM_PID" 2>/dev/null || { tail -20 "$WORK/sm.log" >&2; return 1; }
		sleep 0.01
	done
	echo "scalemetrics not ready after 30s" >&2
	tail -20 "$WORK/sm.log" >&2
	return 1
}

stop_sm() { stop_pid "$SM_PID"; }

# start_nginx PORT WWWDIR MAPFILE: serves files named in MAPFILE (nginx map lines
# '"REQUEST_URI" file;') as application/json over TLS with the same certificate, one
# TLS 1.3 cipher suite (TLS_SUITE), 2 workers (the machine's cores). Sets NGINX_PID.
start_nginx()
{
	local port=$1 www=$2 map=$3 d=$WORK/nginx
	mkdir -p "$d/logs"
	cat >"$d/nginx.conf" <<EOF
daemon off;
user root;
worker_processes ${NGINX_WORKERS:-2};
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    log_format reuse '\$ssl_session_reused \$ssl_protocol \$ssl_cipher';
    access_log ${NGINX_ACCESS_LOG:-off};
    types { }
    default_type application/json;
    keepalive_requests 100000000;
    keepalive_timeout 65s;
    etag off;
    server_tokens off;
    map_hash_bucket_size 256;
    # bench/distinct.lua appends "n=THREAD-COUNT" to make every URL different: the same file.
    map \$request_uri \$sm_key {
        "~^(?<k>.*)[?&]n=[0-9]+-[0-9]+\$" \$k;
        default \$request_uri;
    }
    map \$sm_key \$answer {
        default "";
        include $map;
    }
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_conf_command Ciphersuites $TLS_SUITE;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        root $www;
        location / {
            if (\$answer = "") { return 404; }
            add_header Cache-Control no-store;
            try_files /\$answer =404;
        }
    }
}
EOF
	nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" >"$d/logs/stdout" 2>&1 &
	NGINX_PID=$!
	BENCH_PIDS+=("$NGINX_PID")
	wait_port "$port"
}

stop_nginx() { stop_pid "$NGINX_PID"; }

# wrk pinned to TLS_SUITE on the client side as well (OpenSSL system_default section).
write_client_openssl_conf()
{
	cat >"$WORK/client-openssl.cnf" <<EOF
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
Ciphersuites = $TLS_SUITE
EOF
}

# run_wrk URL CONNS DURATION [extra wrk args...] -> prints "rps p50_ms p99_ms errors"
# (WRK_CPUS: a taskset CPU list for wrk, e.g. 1 when the servers are pinned to 0)
# (errors: socket errors + non-2xx/3xx). The raw output goes to $WORK/wrk.last.
run_wrk()
{
	local url=$1 conns=$2 dur=$3
	shift 3
	local threads=${WRK_THREADS:-2}
	[ "$conns" -lt "$threads" ] && threads=$conns
	OPENSSL_CONF=$WORK/client-openssl.cnf ${WRK_CPUS:+taskset -c "$WRK_CPUS"} wrk -t "$threads" -c "$conns" -d "$dur" --latency \
		--timeout 5s "$@" "$url" >"$WORK/wrk.last" 2>&1 || true
	cat "$WORK/wrk.last" >>"$WORK/wrk.all"
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
		return v + 0
	}
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/^Requests\/sec:/ { rps = $2 }
	/Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { err += $5 }
	END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, err }
	' "$WORK/wrk.last"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }
# utime+stime of a process in clock ticks
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

machine_line()
{
	printf '%s, %s cores, %s, kernel %s\n' "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
		"$(nproc)" "$(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)" \
		"$(uname -r)"
}

# Which TLS version/cipher a server negotiates with an unrestricted OpenSSL client.
negotiated()
{
	openssl s_client -connect "127.0.0.1:$1" -CAfile "$CA" </dev/null 2>/dev/null |
		awk '/^New, / { print $2, $NF } /Server Temp Key/ { sub(/^.*: /, ""); print "group", $0 }' |
		tr '\n' ' '
}

# Does a second connection resume the session? prints "yes" or "no".
resumes()
{
	local out
	out=$(openssl s_client -connect "127.0.0.1:$1" -CAfile "$CA" -reconnect </dev/null 2>/dev/null |
		grep -E '^(New|Reused),' | sed -n '2,$p')
	if echo "$out" | grep -q '^Reused'; then echo yes; else echo no; fi
}

# TLS 1.3 resumption the way a client that keeps its ticket does it: the first connection
# stays open a moment to receive the NewSessionTicket, the second offers it.
resumes_ticket()
{
	local sess=$WORK/sess.$1
	rm -f "$sess"
	(sleep 0.5) | openssl s_client -connect "127.0.0.1:$1" -CAfile "$CA" -sess_out "$sess" \
		>/dev/null 2>&1 || true
	[ -s "$sess" ] || { echo "no (no ticket received)"; return 0; }
	if openssl s_client -connect "127.0.0.1:$1" -CAfile "$CA" -sess_in "$sess" </dev/null 2>/dev/null |
		grep -q '^Reused,'; then
		echo yes
	else
		echo no
	fi
}
anon_kib() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"; }

# median_rows FILE: lines "rps p50 p99 err" -> the median of each of the first three columns
# (independently) and the sum of errors.
median_rows()
{
	local f=$1 col out=""
	for col in 1 2 3; do
		out+="$(awk -v c="$col" '{ print $c }' "$f" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }') "
	done
	echo "$out$(awk '{ s += $4 } END { print s + 0 }' "$f")"
}

# start_kube PYTHON_LINES: the Kubernetes API stand-in of the integration tests
# (tests/integration/kube_standin.py) on 127.0.0.1:KUBE_PORT, as `kube`, after PYTHON_LINES
# (e.g. its tokens and sar_rules). Sets KUBE_PORT.
start_kube()
{
	KUBE_PORT=$(free_port)
	cat >"$WORK/kube.py" <<PYEOF
import sys
sys.path.insert(0, "$ROOT/tests/integration")
from kube_standin import KubeStandin  # noqa: E402
kube = KubeStandin($KUBE_PORT)
$1
kube.httpd.serve_forever()
PYEOF
	$PY "$WORK/kube.py" >"$WORK/kube.log" 2>&1 &
	BENCH_PIDS+=($!)
	wait_port "$KUBE_PORT" || { cat "$WORK/kube.log" >&2; return 1; }
}

# start_pods N PORT [SELECTOR_LABEL]: one python process that runs the Kubernetes API stand-in
# of the integration tests (tests/integration/kube_standin.py, imported) on 127.0.0.1:KUBE_PORT
# with N Running+Ready pods web-6b7c9d8f5-XXXXX in namespace default labelled app=web
# (SELECTOR_LABEL, "key=value"), pod i at podIP 127.0.0.(10+i), and N scrape targets, one per
# pod IP on PORT, each serving GET /metrics as Prometheus text with the gauge
# http_inflight_requests = i+1 (so every pod has its own value). Sets KUBE_PORT, PODS_PID.
start_pods()
{
	local n=$1 port=$2 label=${3:-app=web}
	[ "$n" -ge 1 ] && [ "$n" -le 240 ] || { echo "start_pods: 1..240 pods" >&2; return 1; }
	KUBE_PORT=$(free_port)
	cat >"$WORK/pods.py" <<'PYEOF'
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

root, n, kube_port, port, label = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), sys.argv[5]
sys.path.insert(0, root + "/tests/integration")
from kube_standin import KubeStandin, make_pod  # noqa: E402

key, value = label.split("=", 1)


class Target(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        if self.path != "/metrics":
            self.send_error(404)
            return
        body = ("# HELP http_inflight_requests Requests in flight.\n"
                "# TYPE http_inflight_requests gauge\n"
                f"http_inflight_requests {self.server.value}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


for i in range(n):
    t = ThreadingHTTPServer((f"127.0.0.{10 + i}", port), Target)
    t.daemon_threads = True
    t.value = i + 1
    threading.Thread(target=t.serve_forever, daemon=True).start()
kube = KubeStandin(kube_port)
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what the ReplicaSet controller's names use


def pod_name(i):
    x, s = 1000003 + 7919 * i, ""
    for _ in range(5):
        x, d = divmod(x, len(ALPHABET))
        s += ALPHABET[d]
    return "web-6b7c9d8f5-" + s


kube.set_pods([make_pod(pod_name(i), namespace="default", ip=f"127.0.0.{10 + i}",
                        labels={key: value, "pod-template-hash": "6b7c9d8f5"},
                        uid=f"00000000-0000-4000-8000-{i:012d}")
               for i in range(n)])
kube.httpd.serve_forever()
PYEOF
	$PY "$WORK/pods.py" "$ROOT" "$n" "$KUBE_PORT" "$port" "$label" >"$WORK/pods.log" 2>&1 &
	PODS_PID=$!
	BENCH_PIDS+=("$PODS_PID")
	wait_port "$KUBE_PORT" || { cat "$WORK/pods.log" >&2; return 1; }
	# every target answers before scalemetrics starts
	local i
	for i in $(seq 0 $((n - 1))); do
		curl -sf --max-time 2 -o /dev/null "http://127.0.0.$((10 + i)):$port/metrics" ||
			{ echo "scrape target 127.0.0.$((10 + i)):$port does not answer" >&2; return 1; }
	done
}

stop_pods() { stop_pid "$PODS_PID"; }

# pods_source_yaml PORT [SELECTOR]: the scrape source (pods discovered through the stand-in at
# KUBE_PORT, scraped on PORT, gauge inflight_requests per pod) and the top-level kubernetes:
# section, for write_config's EXTRA_SOURCE_YAML.
pods_source_yaml()
{
	local port=$1 sel=${2:-app=web}
	cat <<EOF
  - name: web
    type: scrape
    interval: ${PODS_INTERVAL:-5s}
    timeout: 2s
    pods: {namespace: default, selector: "$sel", port: $port, path: /metrics, scheme: http}
    gauges:
      - metric: inflight_requests
        gauge: http_inflight_requests
kubernetes:
  server: "http://127.0.0.1:$KUBE_PORT"
EOF
}

# wait_items PORT PATH N [SECONDS]: until the answer at PATH holds exactly N items (HTTP 200).
wait_items()
{
	local port=$1 path=$2 n=$3 secs=${4:-20} got="" i
	for i in $(seq 1 $((secs * 10))); do
		got=$(curl -sf --max-time 2 --cacert "$CA" "https://127.0.0.1:$port$path" 2>/dev/null |
			$PY -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))' 2>/dev/null) || got=""
		[ "$got" = "$n" ] && return 0
		sleep 0.1
	done
	echo "$path: ${got:-no answer} items after ${secs}s, wanted $n" >&2
	return 1
}
