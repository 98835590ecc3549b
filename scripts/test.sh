#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The one test command (README and CI call it): installs what is missing (as root, Debian
# bookworm), builds with meson, runs every suite (unit: cmocka, lint: style + clang-format,
# integration: pytest against the real binary, redis-server, kubectl, curl; e2e: the binary
# behind a real kube-apiserver and HPA controller, see tests/e2e/) and ends with one line
# `N passed, N failed[, N skipped]` counting individual test cases.
#
# Usage: scripts/test.sh [-B BUILD_DIR] [--[no-]suite SUITE]... [-- MESON_SETUP_ARGS...]
#   -B DIR        build directory (default: $SM_BUILD_DIR or build/)
#   --suite S     run only this meson suite (unit, lint, integration, e2e); repeatable
#   --no-suite S  leave this suite out (CI's sanitizer run: --no-suite e2e); repeatable
#   -- ARGS       extra `meson setup` arguments, e.g.
#                 -- -Db_sanitize=address,undefined -Db_lundef=false
# Environment: SM_BUILD_DIR, SM_MESON_ARGS (extra setup args, split on spaces),
#   SM_NO_INSTALL=1 (never apt-get), SM_TIMEOUT_MULTIPLIER (meson test -t, default 1).
# Exit status: non-zero when anything failed (or nothing ran).
set -uo pipefail

SM_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$SM_ROOT/scripts/lib.sh"

build=${SM_BUILD_DIR:-$SM_ROOT/build}
suites=()
# shellcheck disable=SC2206
setup_args=(${SM_MESON_ARGS:-})
while [ $# -gt 0 ]; do
	case $1 in
	-B | --build-dir) build=$2; shift 2 ;;
	--suite) suites+=(--suite "$2"); shift 2 ;;
	--no-suite) suites+=(--no-suite "$2"); shift 2 ;;
	--) shift; setup_args+=("$@"); break ;;
	-h | --help) sed -n '3,19p' "$0"; exit 0 ;;
	*) sm_die "unknown argument: $1 (see --help)" ;;
	esac
done
case $build in /*) ;; *) build=$PWD/$build ;; esac

fail_early() {
	sm_warn "$1"
	echo "0 passed, 1 failed"
	exit 1
}

start=$(date +%s)
sm_install_packages "${SM_BUILD_PACKAGES[@]}" "${SM_TEST_PACKAGES[@]}"

sm_log "building in $build ${setup_args[*]}"
sm_meson_setup "$build" "${setup_args[@]}" || fail_early "meson setup failed"
meson compile -C "$build" || fail_early "the build failed"

rm -f "$build/meson-logs/testlog.json" "$build/tests/integration/pytest.xml"
# cmocka in TAP form on stdout: scripts/count-tests.py counts the cases from it.
export CMOCKA_MESSAGE_OUTPUT=${CMOCKA_MESSAGE_OUTPUT:-tap}
sm_log "running the tests"
meson test -C "$build" --print-errorlogs --no-rebuild \
	-t "${SM_TIMEOUT_MULTIPLIER:-1}" "${suites[@]}"
meson_rc=$?

sm_log "done in $(($(date +%s) - start))s; test cases per suite:"
/usr/bin/python3 "$SM_ROOT/scripts/count-tests.py" "$build"
count_rc=$?
[ $meson_rc -eq 0 ] && [ $count_rc -eq 0 ]
