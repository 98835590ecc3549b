#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The container image's figures (issue 20 item 4): its size (compressed, `podman save | gzip`,
# about what a registry stores and a node pulls; and unpacked), start-up from `podman run` to
# the first 200 on /readyz, and, with 10 and 10,000 series (Redis lists), the server's RSS in
# the container (VmRSS from /proc of its pid on the host), the container's memory cgroup
# (usage, and the working set as kubelet computes it: usage - inactive_file, what a memory
# limit is held against), CPU per collector round; then, at the last series count, RSS with
# CONNS keep-alive TLS connections open (each has had one answer).
#
# The container runs as manifests/base/deployment.yaml runs it: uid/gid 65532, read-only root
# with a tmpfs /tmp, no capabilities, no privilege escalation; `--network host` to reach the
# Redis and be reached on 127.0.0.1. Writes results/image.txt.
#
# Knobs: SERIES ("10 10000"), ROUNDS (20), INTERVAL (1s), STARTS (5), CONNS (250: the
#   default max_connections_per_ip is 256), IMAGE (default: what
#   `scripts/image.sh --reuse` builds or finds), SM_PODMAN_RUNTIME (runc).

source "$(dirname "$0")/lib.sh"

SERIES=${SERIES:-10 10000}
ROUNDS=${ROUNDS:-20}
INTERVAL=${INTERVAL:-1s}
STARTS=${STARTS:-5}
CONNS=${CONNS:-250}
OUT=$RESULTS/image.txt
ival_s=${INTERVAL%s}
podman=(podman --runtime "${SM_PODMAN_RUNTIME:-runc}")
NAME=sm-bench-image-$$

IMAGE=${IMAGE:-$("$ROOT/scripts/image.sh" --reuse | tail -n 1)}
[ -n "$IMAGE" ] || { echo "no image" >&2; exit 1; }

remove_container() { "${podman[@]}" rm -f -t 0 --ignore "$NAME" >/dev/null 2>&1 || true; }
trap 'remove_container; bench_cleanup' EXIT

make_certs
chmod 644 "$KEY" # the server runs as uid 65532 in the container
start_redis

# start_ctr CONFIG PORT: sets CTR_PID, READY_MS (podman run -> first 200 on /readyz).
start_ctr()
{
	local cfg=$1 port=$2 t0 t1
	remove_container
	t0=$(date +%s%N)
	"${podman[@]}" run -d --name "$NAME" --network host --read-only --read-only-tmpfs=false \
		--tmpfs /tmp:rw,size=16m,mode=1777 --user 65532:65532 --cap-drop ALL \
		--security-opt no-new-privileges --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
		-v "$WORK:$WORK:ro" "$IMAGE" serve --config "$cfg" >/dev/null
	for _ in $(seq 1 3000); do
		if [ "$(https_status "$port" /readyz)" = 200 ]; then
			t1=$(date +%s%N)
			READY_MS=$(((t1 - t0) / 1000000))
			CTR_PID=$("${podman[@]}" inspect --format '{{.State.Pid}}' "$NAME")
			return 0
		fi
		sleep 0.01
	done
	"${podman[@]}" logs "$NAME" | tail -20 >&2
	echo "the container was not ready after 30s" >&2
	return 1
}

# The container's memory cgroup (v1 or v2) from /proc/PID/cgroup.
cgroup_dir()
{
	local line
	line=$(grep -E '^[0-9]+:(memory|):' "/proc/$1/cgroup" | head -n 1)
	local rel=${line#*:*:}
	if [ -f "/sys/fs/cgroup/memory$rel/memory.usage_in_bytes" ]; then
		echo "/sys/fs/cgroup/memory$rel"
	else
		echo "/sys/fs/cgroup$rel"
	fi
}

# usage_kib working_set_kib of a memory cgroup
cgroup_mem()
{
	local d=$1 usage inactive
	if [ -f "$d/memory.usage_in_bytes" ]; then
		usage=$(cat "$d/memory.usage_in_bytes")
		inactive=$(awk '$1 == "total_inactive_file" { print $2 }' "$d/memory.stat")
	else
		usage=$(cat "$d/memory.current")
		inactive=$(awk '$1 == "inactive_file" { print $2 }' "$d/memory.stat")
	fi
	echo "$((usage / 1024)) $(((usage - ${inactive:-0}) / 1024))"
}

# podman's own share of a start: create, start and reap a container whose process exits at once.
overheads=()
for _ in $(seq 1 "$STARTS"); do
	t0=$(date +%s%N)
	"${podman[@]}" run --rm --network host --read-only --user 65532:65532 --cap-drop ALL \
		--ulimit nofile=4096:4096 --ulimit nproc=4096:4096 "$IMAGE" version >/dev/null
	overheads+=($((($(date +%s%N) - t0) / 1000000)))
done
overhead_med=$(printf '%s\n' "${overheads[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')

compressed=$("${podman[@]}" save "$IMAGE" 2>/dev/null | gzip | wc -c)
unpacked=$("${podman[@]}" image inspect --format '{{.Size}}' "$IMAGE")
{
	echo "# image, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# machine: $(machine_line)"
	echo "# $IMAGE ($("${podman[@]}" image inspect --format \
		'{{index .Labels "org.opencontainers.image.revision"}}' "$IMAGE")), podman" \
		"$(podman version --format '{{.Client.Version}}'), runtime ${SM_PODMAN_RUNTIME:-runc}"
	echo "# size: $compressed bytes compressed (podman save | gzip | wc -c)," \
		"$unpacked bytes unpacked (podman image inspect .Size)"
	echo "# podman run --rm IMAGE version (a container that exits at once): median" \
		"$overhead_med ms of ${overheads[*]}"
	echo "# interval $INTERVAL; rss after $ROUNDS idle rounds; cgroup: the container's memory" \
		"cgroup, usage and working set (usage - inactive_file, kubelet's figure)"
	printf '%7s %9s %9s %8s %9s %12s %13s %10s %9s %7s\n' series ready_ms ready_min rss_kib \
		anon_kib cgroup_kib workingset_kib cpu_ms/rnd cpu_%core threads
} | tee "$OUT"

for n in $SERIES; do
	fill_queues "$n"
	port=$(free_port)
	write_config "$WORK/sm.yaml" "$port" 10000 "$INTERVAL"
	readies=()
	for _ in $(seq 1 "$STARTS"); do
		start_ctr "$WORK/sm.yaml" "$port"
		readies+=("$READY_MS")
	done
	ready_med=$(printf '%s\n' "${readies[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	ready_min=$(printf '%s\n' "${readies[@]}" | sort -n | head -1)
	sleep $((2 * ival_s))
	t0=$(cpu_ticks "$CTR_PID")
	w0=$(date +%s%N)
	sleep $((ROUNDS * ival_s))
	t1=$(cpu_ticks "$CTR_PID")
	w1=$(date +%s%N)
	cpu_ms_round=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$ROUNDS" 'BEGIN { printf "%.2f", d * 1000 / hz / r }')
	cpu_pct=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v w=$((w1 - w0)) 'BEGIN { printf "%.2f", 100 * d / hz / (w / 1e9) }')
	read -r cg ws < <(cgroup_mem "$(cgroup_dir "$CTR_PID")")
	printf '%7s %9s %9s %8s %9s %12s %13s %10s %9s %7s\n' "$n" "$ready_med" "$ready_min" \
		"$(rss_kib "$CTR_PID")" "$(anon_kib "$CTR_PID")" "$cg" "$ws" "$cpu_ms_round" "$cpu_pct" \
		"$(ls /proc/"$CTR_PID"/task | wc -l)" | tee -a "$OUT"
	if [ "$n" = "${SERIES##* }" ]; then
		$PY - "$port" "$CA" "$CONNS" "$CTR_PID" <<'PY' | tee -a "$OUT"
import http.client, ssl, sys
port, ca, n, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
ctx = ssl.create_default_context(cafile=ca)
before, conns = rss(), []
for i in range(n):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    c.request("GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/"
              f"redis_queue_length?labelSelector=queue%3Dq{i}")
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
    conns.append(c)
after = rss()
print(f"# {n} keep-alive TLS connections open: rss {before} -> {after} KiB, "
      f"{(after - before) / n:.1f} KiB per connection")
for c in conns:
    c.close()
PY
	fi
	t0=$(date +%s%N)
	"${podman[@]}" stop -t 10 "$NAME" >/dev/null
	echo "# $n series: podman stop (SIGTERM) -> exited in $((($(date +%s%N) - t0) / 1000000)) ms," \
		"exit code $("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")" | tee -a "$OUT"
done
