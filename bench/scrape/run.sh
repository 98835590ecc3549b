#!/bin/sh
# SPDX-License-Identifier: MIT
# Scrape benchmark: N (default 500) nginx listeners on loopback serving a 200-series
# exposition; bench-scrape runs ROUNDS (default 20) rounds of the scrape collector against them.
# Usage: bench/scrape/run.sh [BUILD_DIR [N [ROUNDS]]]   (BUILD_DIR default: build)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
n=${2:-500}
rounds=${3:-20}
base=${BENCH_BASE_PORT:-61000}
work=$(mktemp -d /tmp/bench-scrape.XXXXXX)
mkdir -p "$work/tmp"
chmod 755 "$work"  # nginx workers run unprivileged
ninja -C "$build" scalemetrics >/dev/null
cc -std=c17 -O2 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I"$root/include" \
	-o "$work/bench-scrape" "$here/bench-scrape.c" "$build/libscalemetrics-core.a" \
	$(pkg-config --libs libmicrohttpd gnutls hiredis libpq libcjson openssl libcurl yaml-0.1) \
	-lpthread -lm
/usr/bin/python3 "$here/gen.py" "$work" "$n" "$base"
nginx -c "$work/nginx.conf" -p "$work"
trap 'kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT
sleep 0.5
ulimit -n 8192 2>/dev/null || true
echo "targets: $n x 200 series; nginx (gzip on) on 127.0.0.1:$base-$((base + n - 1))"
"$work/bench-scrape" "$work/config.yaml" "$rounds"
