#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Reaction time of the whole loop on a real control plane (tests/e2e/controlplane.py: etcd,
# kube-apiserver with the aggregator, kube-controller-manager's HPA controller, all on
# 127.0.0.1): from a Redis queue crossing the HPA's target to the Deployment's spec.replicas
# changing. One control plane per (interval, sync period) pair; SAMPLES samples each.
#
# Usage: bench/reaction.sh            (PAIRS="1s:5s 5s:15s" SAMPLES=8 by default)
#        PAIRS="1s:5s" SAMPLES=4 bench/reaction.sh
# Needs what the e2e suite needs (scripts/test.sh installs it) and a built binary
# (SM_BIN, default build/scalemetrics). Output: results/reaction.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SM_BIN=${SM_BIN:-$ROOT/build/scalemetrics}
OUT=${OUT:-$BENCH_DIR/results/reaction.txt}
PAIRS=${PAIRS:-"1s:5s 5s:15s"}
[ -x "$SM_BIN" ] || { echo "no binary at $SM_BIN (meson compile -C build)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
{
	echo "# bench/reaction.sh $(date -u +%FT%TZ), binary $("$SM_BIN" version | head -n 1)"
	echo "# queue crosses the target -> spec.replicas changes; SAMPLES=${SAMPLES:-8} per pair"
} >"$OUT"
for pair in $PAIRS; do
	SM_E2E_INTERVAL=${pair%%:*} SM_E2E_HPA_SYNC=${pair##*:} \
	SM_REACTION_SAMPLES=${SAMPLES:-8} SM_REACTION_OUT=$OUT \
	SM_BINARY=$SM_BIN SM_SOURCE_ROOT=$ROOT SM_BUILD_ROOT=$(dirname "$SM_BIN") \
		/usr/bin/python3 -m pytest -q -s -p no:cacheprovider \
		"$ROOT/tests/e2e/bench_reaction.py" </dev/null
done
cat "$OUT"
