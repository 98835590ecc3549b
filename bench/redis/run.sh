#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Redis collector efficiency: one sampling round over N (default 10,000) queues, pipelined,
# against a redis-server of its own on a free loopback port; beside redis-benchmark doing the
# same number of LLENs pipelined (-P 1000 over one connection). Prints a table.
#
#   bench/redis/run.sh [N] [ROUNDS]        BUILD=build-bench-redis (release; made if absent)

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
N=${1:-10000}
ROUNDS=${2:-20}
BUILD=${BUILD:-$ROOT/build-bench-redis}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/sm-bench-redis.XXXXXX)
REDIS_PID=

cleanup()
{
	if [ -n "$REDIS_PID" ]; then
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# The core library, optimised, and the driver linked against it.
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" "$ROOT" --buildtype=release -Dwerror=false >/dev/null
fi
ninja -C "$BUILD" libscalemetrics-core.a >/dev/null
DEPS="hiredis libmicrohttpd gnutls libpq libcjson openssl libcurl yaml-0.1"
# shellcheck disable=SC2046
cc -O2 -std=c17 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror \
	-I"$ROOT/include" -I"$ROOT/src/collectors" $(pkg-config --cflags $DEPS) \
	"$HERE/bench-redis.c" "$BUILD/libscalemetrics-core.a" \
	$(pkg-config --libs $DEPS) -lpthread -lm -o "$WORK/bench-redis"

PORT=$($PY - <<'PYEOF'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PYEOF
)
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
	--daemonize no --logfile "$WORK/redis.log" &
REDIS_PID=$!
for _ in $(seq 50); do
	redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
	sleep 0.1
done

# N lists bq:0..N-1 (1..10 items), N Sidekiq queues (a JSON job each), N unrelated keys:
# a glob's SCAN walks all 3N+1 keys.
$PY - "$PORT" "$N" <<'PYEOF'
import json, sys, time
import redis
port, n = int(sys.argv[1]), int(sys.argv[2])
r = redis.Redis(host="127.0.0.1", port=port)
p = r.pipeline(transaction=False)
now = time.time()
for i in range(n):
    p.rpush(f"bq:{i}", *range(i % 10 + 1))
    p.set(f"other:{i}", i)
    p.sadd("queues", f"s{i}")
    p.lpush(f"queue:s{i}", json.dumps({"class": "W", "args": [i], "jid": f"{i:024x}",
                                       "queue": f"s{i}", "enqueued_at": now - i % 60}))
    if i % 1000 == 999:
        p.execute()
p.execute()
PYEOF

config()
{
	cat >"$WORK/$1.yaml" <<YAML
server:
  auth: {mode: none}
sources:
  - name: bench
    type: redis
    address: "127.0.0.1:$PORT"
    timeout: 5s
    max_series: $((N * 3))
    queues:
$2
YAML
}
config exact "      - {metric: bench_len, type: list, keys: [$(seq -s, -f '"bq:%g"' 0 $((N - 1)))]}"
config list '      - {metric: bench_len, keys: ["bq:*"], type: list}'
config auto '      - {metric: bench_len, keys: ["bq:*"]}'
config sidekiq '      - {preset: sidekiq}'

# redis-benchmark: LLENs pipelined 1000 deep over one connection. Its clock counts whole
# milliseconds, so it runs 10 x N and the time is scaled to N; the median of 5 runs.
rb_ms=$(for _ in 1 2 3 4 5; do
	redis-benchmark -h 127.0.0.1 -p "$PORT" -c 1 -P 1000 -n $((N * 10)) --csv LLEN bq:1
done | $PY -c 'import csv,statistics,sys
rps=[float(r[1]) for r in csv.reader(sys.stdin) if r and r[0].startswith("LLEN")]
print("%.2f" % (int(sys.argv[1]) * 1000.0 / statistics.median(rps)))' "$N")

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
printf '%-34s %8s %12s %10s %10s %10s %12s\n' "case ($N queues, $ROUNDS rounds)" series \
	"RT/round" "min ms" "median ms" "max ms" "vs redis-bm"
for c in exact list auto sidekiq; do
	read -r series rounds rt min med max < <("$WORK/bench-redis" "$WORK/$c.yaml" "$ROUNDS")
	case $c in
	exact) what="exact keys, type: list (LLEN)" ;;
	list) what="glob, type: list (SCAN+LLEN)" ;;
	auto) what="glob, type: auto (SCAN+TYPE+LLEN)" ;;
	sidekiq) what="preset sidekiq (5 metrics)" ;;
	esac
	ratio=$($PY -c "print('%.2fx' % ($med / $rb_ms))")
	printf '%-34s %8s %12s %10s %10s %10s %12s\n' "$what" "$series" "$rt" "$min" "$med" \
		"$max" "$ratio"
done
printf '%-34s %8s %12s %10s %10s %10s %12s\n' "redis-benchmark -c1 -P1000 LLEN" "$N" \
	"$(( (N + 999) / 1000 ))" "-" "$rb_ms" "-" "1.00x"
