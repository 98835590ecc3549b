#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The demo: installs what is missing (as root, Debian bookworm), builds, and starts in a
# temporary directory, all on 127.0.0.1:
#   - redis-server, with a sample app (scripts/sample-app.py) pushing and popping jobs,
#   - PostgreSQL (initdb + pg_ctl, a `jobs` table) and PgBouncer in front of it,
#   - scalemetrics with examples/demo-config.yaml (auth none, certs from certs/make-certs.sh),
# then prints the `kubectl get --raw` commands to try (with the kubeconfig it wrote; curl
# without kubectl) and shows the live metrics every 5 s until Ctrl-C, or for DEMO_SECONDS.
# Everything it started is stopped, and the temporary directory removed, when it exits.
#
# Usage (as root): scripts/demo.sh
# Environment: DEMO_SECONDS (stop after this many seconds; default: run until Ctrl-C),
#   DEMO_KEEP=1 (keep the temporary directory), SM_BUILD_DIR (default build/), SM_NO_INSTALL=1
set -euo pipefail

SM_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$SM_ROOT/scripts/lib.sh"

seconds=${DEMO_SECONDS:-0}
case $seconds in *[!0-9]* | '') sm_die "DEMO_SECONDS must be a number of seconds, not '$seconds'" ;; esac
build=${SM_BUILD_DIR:-$SM_ROOT/build}

sm_install_packages "${SM_BUILD_PACKAGES[@]}" "${SM_DEMO_PACKAGES[@]}"
sm_log "building in $build"
build_log=$(mktemp)
{ sm_meson_setup "$build" && meson compile -C "$build" scalemetrics; } >"$build_log" 2>&1 ||
	{ tail -n 30 "$build_log"; sm_die "the build failed"; }
rm -f "$build_log"
bin=$build/scalemetrics

demo=$(mktemp -d /tmp/scalemetrics-demo.XXXXXX)
chmod 755 "$demo" # PostgreSQL and PgBouncer run as the postgres user and must reach it
pids=()
pg_started=0
cleanup() {
	local rc=$?
	set +e
	sm_log "cleaning up"
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null && wait "${pids[i]}" 2>/dev/null
	done
	if [ -f "$demo/pgbouncer/pgbouncer.pid" ]; then
		kill -TERM "$(cat "$demo/pgbouncer/pgbouncer.pid")" 2>/dev/null
	fi
	[ $pg_started = 1 ] && as_pg "$pgbin/pg_ctl" -D "$demo/pg" -m fast -w stop >/dev/null 2>&1
	if [ "${DEMO_KEEP:-0}" = 1 ]; then
		echo "kept $demo"
	else
		rm -rf "$demo"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PostgreSQL and PgBouncer refuse to run as root: use the postgres user then.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

redis_port=$(sm_free_port 16379)
pg_port=$(sm_free_port 15432)
bouncer_port=$(sm_free_port 16432)
port=$(sm_free_port 18443)

sm_log "certificates"
"$SM_ROOT/certs/make-certs.sh" "$demo/certs" default >/dev/null 2>&1

sm_log "redis-server on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$demo" --logfile "$demo/redis.log" --daemonize no &
pids+=($!)
sm_wait_port "$redis_port" || sm_die "redis-server did not start ($demo/redis.log)"

pg_dsn="" bouncer_dsn=""
if pgbin=$(sm_pg_bindir) && command -v pgbouncer >/dev/null; then
	sm_log "PostgreSQL on 127.0.0.1:$pg_port, PgBouncer on 127.0.0.1:$bouncer_port"
	mkdir -p "$demo/pg" "$demo/pgbouncer"
	[ "$(id -u)" = 0 ] && chown postgres: "$demo/pg" "$demo/pgbouncer"
	as_pg "$pgbin/initdb" -D "$demo/pg" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
	as_pg "$pgbin/pg_ctl" -D "$demo/pg" -l "$demo/pg/log" -w \
		-o "-p $pg_port -k $demo/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
	pg_started=1
	"$pgbin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -c 'CREATE DATABASE demo' >/dev/null
	"$pgbin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d demo -c \
		"CREATE TABLE jobs (id bigserial PRIMARY KEY, queue text NOT NULL,
		 state text NOT NULL DEFAULT 'pending', created_at timestamptz DEFAULT now())" >/dev/null
	pgb=$demo/pgbouncer
	printf '"postgres" ""\n' >"$pgb/userlist.txt"
	cat >"$pgb/pgbouncer.ini" <<-INI
		[databases]
		demo = host=127.0.0.1 port=$pg_port dbname=demo pool_size=5

		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $bouncer_port
		unix_socket_dir =
		auth_type = trust
		auth_file = $pgb/userlist.txt
		admin_users = postgres
		pool_mode = transaction
		max_client_conn = 100
		logfile = $pgb/pgbouncer.log
		pidfile = $pgb/pgbouncer.pid
	INI
	[ "$(id -u)" = 0 ] && chown postgres: "$pgb/userlist.txt" "$pgb/pgbouncer.ini"
	as_pg pgbouncer -d "$pgb/pgbouncer.ini" >/dev/null
	sm_wait_port "$bouncer_port" || sm_die "pgbouncer did not start ($pgb/pgbouncer.log)"
	pg_dsn="host=127.0.0.1 port=$pg_port dbname=demo user=postgres"
	bouncer_dsn="host=127.0.0.1 port=$bouncer_port dbname=pgbouncer user=postgres"
else
	sm_warn "PostgreSQL or PgBouncer is not installed: the demo runs with Redis only"
fi

sm_log "sample app: jobs onto queue:emails, queue:reports, queue:thumbnails"
/usr/bin/python3 "$SM_ROOT/scripts/sample-app.py" --redis "127.0.0.1:$redis_port" \
	${pg_dsn:+--pg-dsn "host=127.0.0.1 port=$bouncer_port dbname=demo user=postgres"} \
	>"$demo/sample-app.log" 2>&1 &
pids+=($!)

# The config: the example with this run's ports and paths.
sed -e "s|127.0.0.1:18443|127.0.0.1:$port|" -e "s|127.0.0.1:16379|127.0.0.1:$redis_port|" \
	-e "s|\.demo/|$demo/|g" "$SM_ROOT/examples/demo-config.yaml" >"$demo/config.yaml"
export DEMO_DATABASE_URL=$pg_dsn DEMO_PGBOUNCER_ADMIN_DSN=$bouncer_dsn
pg_live=no
if [ -n "$pg_dsn" ]; then
	pg_live=yes
else
	sed -i '/# demo: postgresql begin/,/# demo: postgresql end/d' "$demo/config.yaml"
fi
"$bin" check --config "$demo/config.yaml" >"$demo/check.log" 2>&1 ||
	{ cat "$demo/check.log"; sm_die "examples/demo-config.yaml does not check"; }

sm_log "scalemetrics on https://127.0.0.1:$port (config $demo/config.yaml)"
"$bin" serve --config "$demo/config.yaml" >"$demo/scalemetrics.log" 2>&1 &
pids+=($!)
ca=$demo/certs/ca.crt
for _ in $(seq 1 100); do
	curl -sf --noproxy '*' --cacert "$ca" "https://127.0.0.1:$port/readyz" >/dev/null && break
	kill -0 "${pids[-1]}" 2>/dev/null || { cat "$demo/scalemetrics.log"; sm_die "scalemetrics exited"; }
	sleep 0.1
done

cat >"$demo/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: demo
  cluster: {server: "https://127.0.0.1:$port", certificate-authority: "$ca"}
users:
- name: demo
  user: {client-certificate: "$demo/certs/client.crt", client-key: "$demo/certs/client.key"}
contexts:
- name: demo
  context: {cluster: demo, user: demo}
current-context: demo
EOF

if command -v kubectl >/dev/null; then
	get() { kubectl --kubeconfig "$demo/kubeconfig" get --raw "$1" </dev/null; }
	how() { echo "kubectl --kubeconfig $demo/kubeconfig get --raw '$1'"; }
else
	get() { curl -sS --noproxy '*' --cacert "$ca" "https://127.0.0.1:$port$1"; }
	how() { echo "curl --cacert $ca 'https://127.0.0.1:$port$1'"; }
fi
# A 503 (a source not answering) is something to show, not a reason to stop.
show() {
	echo
	echo "\$ $(how "$1")"
	get "$1" 2>&1 | /usr/bin/python3 "$SM_ROOT/scripts/pretty-metrics.py" || true
}

ext=/apis/external.metrics.k8s.io/v1beta1
custom=/apis/custom.metrics.k8s.io/v1beta2
tries=(
	"$ext"
	"$custom"
	"$ext/namespaces/default/redis_queue_length?labelSelector=queue%3Demails"
	"$custom/namespaces/default/deployments.apps/worker-emails/worker_queue_length"
	"$custom/namespaces/default/metrics/redis_queue_length"
)
if [ $pg_live = yes ]; then
	tries+=("$ext/namespaces/default/pending_jobs"
		"$ext/namespaces/default/pgbouncer_pool_utilization"
		"$ext/namespaces/default/postgresql_connection_utilization")
fi
try_these() {
	echo
	echo "Try these in another terminal while the demo runs:"
	local t
	for t in "${tries[@]}"; do
		echo "  $(how "$t")"
	done
	echo "The status page: https://127.0.0.1:$port/status (CA: $ca)." \
		"Logs and config: $demo/"
	if [ "$seconds" -gt 0 ]; then
		echo "The demo stops by itself after ${seconds}s (DEMO_SECONDS), or on Ctrl-C."
	else
		echo "Ctrl-C stops the demo and removes all of it."
	fi
}

echo
echo "Live now: Redis queue backlogs (redis_queue_length, worker_queue_length)."
if [ $pg_live = yes ]; then
	echo "Live now: PostgreSQL (postgresql_*, pending_jobs) and PgBouncer (pgbouncer_*) metrics."
else
	echo "Not live: PostgreSQL and PgBouncer are not installed, so their sources are left out."
fi

# The first collection round may still be running: wait for the first values.
for _ in $(seq 1 100); do
	get "$ext/namespaces/default/redis_queue_length" 2>/dev/null | grep -q '"value"' && break
	sleep 0.1
done
show "$ext"
show "$custom"
try_these
start=$SECONDS
for ((i = 1; ; i++)); do
	echo
	echo "=== $(date +%T): round $i (emails grows, reports holds, thumbnails drains)"
	show "$ext/namespaces/default/redis_queue_length"
	show "$custom/namespaces/default/deployments.apps/worker-emails/worker_queue_length"
	if [ $pg_live = yes ]; then
		show "$ext/namespaces/default/pending_jobs"
		show "$ext/namespaces/default/pgbouncer_pool_utilization"
	fi
	# The commands again now and then: the rounds push them off the screen.
	if [ $((i % 12)) = 0 ]; then try_these; fi
	if [ "$seconds" -gt 0 ] && [ $((SECONDS - start + 5)) -gt "$seconds" ]; then break; fi
	sleep 5
done
echo
echo "demo done after ${seconds}s (DEMO_SECONDS); DEMO_KEEP=1 keeps the logs in $demo"
