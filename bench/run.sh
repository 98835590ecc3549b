#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# One command for every figure in bench/README.md:
#   bench/run.sh                      build (release) and run all parts
#   PARTS="serve footprint" bench/run.sh
# Parts: serve (items 1-2), auth (delegated auth on the serving path; SM_BIN_BEFORE adds
# an older binary beside it), footprint (3), scaling (4) + plot, soak (6), profile
# (callgrind), diagnose (the small measurements behind the profile findings).
# Each part's knobs are in its script's header (DURATION, CONNS, SERIES, SOAK_SECONDS, ...).
# Everything binds 127.0.0.1 and is stopped when a script exits. About 40 minutes with the
# defaults, of which the soak is 10, the serving benchmark 12 and auth 4.
set -euo pipefail
B=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$B")
PARTS=${PARTS:-serve auth footprint scaling soak profile diagnose}
export SM_BIN=${SM_BIN:-$ROOT/build-bench/scalemetrics}

if [ -z "${NO_BUILD:-}" ]; then
	# -Wno-error=format-truncation: see "Build" in bench/README.md
	[ -d "$ROOT/build-bench" ] || meson setup "$ROOT/build-bench" -Dbuildtype=release \
		-Dc_args=-Wno-error=format-truncation >/dev/null
	ninja -C "$ROOT/build-bench" scalemetrics >/dev/null
fi
for p in $PARTS; do
	echo "=== $p"
	case $p in
	serve) REPEAT=${REPEAT:-3} CLOSE_QUERIES=${CLOSE_QUERIES:-ext1} "$B/serve.sh" ;;
	auth) "$B/auth.sh" ;;
	footprint) "$B/footprint.sh" ;;
	scaling) "$B/scaling.sh" && "$B/plot.sh" ;;
	soak) "$B/soak.sh" ;;
	profile) "$B/profile.sh" ;;
	diagnose) "$B/diagnose.sh" ;;
	*) echo "unknown part $p" >&2; exit 2 ;;
	esac
done
