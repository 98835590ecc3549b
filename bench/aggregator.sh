#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The aggregator path at cluster scale (issue 22 item 2): HPA-like metric queries through a
# real kube-apiserver (tests/e2e/controlplane.py: etcd, kube-apiserver with the aggregator,
# kube-controller-manager, all on 127.0.0.1) to scalemetrics, at 100, 1,000 and 5,000 HPAs'
# worth of queries (3 metrics each every 15 s: 20, 200 and 1,000 requests/s), open loop, with
# the HPA controller's service-account token; and the same requests straight to scalemetrics.
# End-to-end latency per request, ours from the access log, CPU per process. bench/aggregator.py
# does the work; this script builds nothing, waits for a quiet machine and runs it.
#
# Usage: bench/aggregator.sh
#        LEVELS="100 1000" DURATION=60 bench/aggregator.sh
# Environment: SM_BIN (default build-bench/scalemetrics: meson setup build-bench
#   -Dbuildtype=release && ninja -C build-bench), LEVELS ("100 1000 5000"), DURATION (30,
#   seconds measured per run, at least 1,200 requests), WARMUP (5), MODES ("agg direct"),
#   MAX_CONNS (16, the generator's keep-alive connections in all), GEN_PROCS, IDLE (10),
#   OUT (results/aggregator.txt), QUIET_WAIT_S (900: how long to wait for other work to end),
#   QUIET_BUSY (20: the machine's busy percentage above which it is not quiet).
#   SM_BUILD_ROOT: where the Kubernetes binaries are decompressed (BUILD_ROOT/e2e-kube; default
#   the binary's directory), as for the e2e suite.
# Needs what the e2e suite needs (scripts/test.sh installs it: etcd-server, kubectl, the
# Kubernetes binaries in ../shared/kube or $KUBEBUILDER_ASSETS) and redis-server.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SM_BIN=${SM_BIN:-$ROOT/build-bench/scalemetrics}
OUT=${OUT:-$BENCH_DIR/results/aggregator.txt}
QUIET_WAIT_S=${QUIET_WAIT_S:-900}
QUIET_BUSY=${QUIET_BUSY:-20}
PY=/usr/bin/python3 # Debian's interpreter: the e2e helpers need its modules (yaml, redis)
[ -x "$SM_BIN" ] || { echo "no binary at $SM_BIN (meson setup build-bench -Dbuildtype=release && ninja -C build-bench)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Busy share of the machine's CPU over 5 s, in percent (from /proc/stat).
busy_pct()
{
	local a b
	a=$(awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6 }' /proc/stat)
	sleep 5
	b=$(awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6 }' /proc/stat)
	echo "$a $b" | awk '{ t = $3 - $1; i = $4 - $2; printf "%d\n", (t > 0) ? 100 * (t - i) / t : 0 }'
}

# Waits (up to QUIET_WAIT_S) until no test run is active and the machine is mostly idle: the
# generator, kube-apiserver, etcd and scalemetrics share its cores, anything else skews the
# figures. The results say when it measured anyway.
NOTE=""
waited=0
while :; do
	busy=$(busy_pct)
	if ! pgrep -f 'bash .ci/run|meson test|pytest' >/dev/null && [ "$busy" -le "$QUIET_BUSY" ]; then
		break
	fi
	if [ "$waited" -ge "$QUIET_WAIT_S" ]; then
		log "the machine is still busy (${busy}%) after ${waited}s; measuring anyway"
		NOTE="# note: started while other work was running (${busy}% busy after waiting ${waited}s)"
		break
	fi
	[ "$waited" -gt 0 ] || log "other work is running (${busy}% busy); waiting up to ${QUIET_WAIT_S}s"
	sleep 10
	waited=$((waited + 15))
done
[ "$waited" -eq 0 ] || log "waited ${waited}s for a quiet machine"

SM_BINARY=$SM_BIN SM_SOURCE_ROOT=$ROOT SM_BUILD_ROOT=${SM_BUILD_ROOT:-$(dirname "$SM_BIN")} OUT=$OUT \
	"$PY" "$BENCH_DIR/aggregator.py" </dev/null
if [ -n "$NOTE" ]; then
	echo "$NOTE" >>"$OUT"
fi
