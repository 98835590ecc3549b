# shellcheck shell=bash disable=SC2034
# SPDX-License-Identifier: MIT
# Shared by scripts/test.sh and scripts/demo.sh (sourced, not run): logging, installing the
# Debian packages the build, the tests and the demo need, and small process helpers.

SM_ROOT=${SM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

# What building and testing need (Debian bookworm names).
SM_BUILD_PACKAGES=(build-essential meson ninja-build pkg-config git
	libmicrohttpd-dev libgnutls28-dev libhiredis-dev libcjson-dev libcurl4-openssl-dev
	libcmocka-dev libyaml-dev libssl-dev libpq-dev)
SM_TEST_PACKAGES=(redis-server redis-tools postgresql pgbouncer
	python3 python3-pytest python3-redis python3-psycopg2 python3-prometheus-client
	clang-format openssl curl ca-certificates python3-yaml chromium
	etcd-server)
# What scripts/demo.sh needs besides the build: the servers it starts, the sample app's
# client libraries, certificates and curl (not the tests' browser and etcd).
SM_DEMO_PACKAGES=(redis-server postgresql pgbouncer python3 python3-redis python3-psycopg2
	openssl curl ca-certificates)
# What scripts/fuzz.sh needs: clang with its libFuzzer and sanitizer runtimes.
SM_FUZZ_PACKAGES=(clang libclang-rt-14-dev)

sm_log() { printf '==> %s\n' "$*" >&2; }
sm_warn() { printf 'warning: %s\n' "$*" >&2; }
sm_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

sm_pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# sm_install_packages PKG...: installs the missing ones with apt-get when root; otherwise
# says what is missing and goes on (the build or a test will then say what failed).
# SM_NO_INSTALL=1 skips this altogether.
sm_install_packages() {
	[ "${SM_NO_INSTALL:-0}" = 1 ] && return 0
	if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
		sm_warn "not a Debian system: install by hand: $*"
		return 0
	fi
	local missing=() p
	for p in "$@"; do
		sm_pkg_installed "$p" || missing+=("$p")
	done
	if ! command -v kubectl >/dev/null && ! sm_pkg_installed kubernetes-client; then
		missing+=(kubernetes-client) # optional: bookworm has 1.20; tests that need it skip
	fi
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		sm_warn "missing packages (run as root to install them): ${missing[*]}"
		return 0
	fi
	sm_log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q || sm_warn "apt-get update failed"
	local required=()
	for p in "${missing[@]}"; do
		[ "$p" = kubernetes-client ] || required+=("$p")
	done
	if [ ${#required[@]} -gt 0 ]; then
		apt-get install -y -q --no-install-recommends "${required[@]}" ||
			sm_die "apt-get install failed: ${required[*]}"
	fi
	if [[ " ${missing[*]} " == *" kubernetes-client "* ]]; then
		apt-get install -y -q --no-install-recommends kubernetes-client ||
			sm_warn "kubectl is not available (kubernetes-client did not install): the" \
				"tests that use it are skipped, the demo uses curl"
	fi
}

# The newest PostgreSQL server binaries (Debian keeps them out of PATH).
sm_pg_bindir() {
	local d
	d=$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	[ -n "$d" ] && [ -x "$d/initdb" ] || return 1
	printf '%s\n' "$d"
}

# A free TCP port on 127.0.0.1, preferring $1 when it is free.
sm_free_port() {
	/usr/bin/python3 - "${1:-0}" <<'PY'
import socket, sys
want = int(sys.argv[1])
for port in ([want] if want else []) + [0]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(s.getsockname()[1])
    s.close()
    break
PY
}

# sm_wait_port PORT [SECONDS]: until something accepts connections on 127.0.0.1:PORT.
sm_wait_port() {
	local port=$1 t=${2:-20} i
	for ((i = 0; i < t * 10; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# sm_meson_setup BUILD_DIR [MESON_SETUP_ARGS...]: setup, or reconfigure when args are given
# for an existing build directory.
sm_meson_setup() {
	local b=$1
	shift
	if [ -f "$b/meson-private/coredata.dat" ]; then
		if [ $# -gt 0 ]; then
			meson setup --reconfigure "$b" "$SM_ROOT" "$@" ||
				meson setup --wipe "$b" "$SM_ROOT" "$@"
		fi
	else
		meson setup "$b" "$SM_ROOT" "$@"
	fi
}
