#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Builds the libFuzzer targets (tests/fuzz/, clang, ASan + UBSan) and runs each for a bounded
# time on a copy of its seed corpus tests/fuzz/corpus/TARGET/. Crashes are written to
# build-fuzz/crashes/TARGET/ and fail the run; add each (once fixed) to the corpus as a
# regression input. New coverage found stays in build-fuzz/corpus/TARGET/, not in the tree.
#
# Usage: scripts/fuzz.sh [TARGET...]     (default: every target)
# Environment: FUZZ_SECONDS (per target, default 30), FUZZ_BUILD_DIR (default build-fuzz),
#   FUZZ_JOBS (parallel fuzzing processes per target, default 1).
# Needs clang and its libFuzzer runtime (Debian: clang, libclang-rt-14-dev).
set -euo pipefail

SM_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$SM_ROOT"
seconds=${FUZZ_SECONDS:-30}
build=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-1}
all=(auth config promtext quantity redis router scrape selector)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

command -v clang >/dev/null || { echo "error: clang is not installed" >&2; exit 1; }
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
fi
ninja -C "$build" $(for t in "${targets[@]}"; do echo "tests/fuzz/fuzz-$t"; done)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
	seeds=tests/fuzz/corpus/$t
	work=$build/corpus/$t
	crashes=$build/crashes/$t
	mkdir -p "$work" "$crashes"
	echo "==> fuzz-$t for ${seconds}s (seeds: $seeds)" >&2
	# Every seed (the regression inputs among them) must pass before fuzzing starts.
	if ! "$build/tests/fuzz/fuzz-$t" -runs=0 -artifact_prefix="$crashes/" "$seeds" \
		>"$build/fuzz-$t.log" 2>&1; then
		echo "error: fuzz-$t fails on its seed corpus; see $build/fuzz-$t.log" >&2
		failed+=("$t")
		continue
	fi
	par=()
	[ "$jobs" -le 1 ] || par=(-fork="$jobs")
	if ! "$build/tests/fuzz/fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 "${par[@]}" -print_final_stats=1 \
		-artifact_prefix="$crashes/" "$work" "$seeds" >>"$build/fuzz-$t.log" 2>&1; then
		echo "error: fuzz-$t found a crash: $(ls "$crashes" | head -3 | tr '\n' ' ')" \
			"(log: $build/fuzz-$t.log)" >&2
		failed+=("$t")
		continue
	fi
	grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$build/fuzz-$t.log" |
		tr '\n' ' ' >&2 || true
	echo >&2
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzzing failed: ${failed[*]}" >&2
	exit 1
fi
echo "fuzzing passed: ${targets[*]} (${seconds}s each)" >&2
