#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Builds the container image from Containerfile with podman, tags it scalemetrics:VERSION
# (VERSION: meson.build's project version) and prints that reference as its last line.
#
# Usage: scripts/image.sh [--tree] [--reuse] [--pull] [--tag REF]
#   (default)  build the committed HEAD (git archive): uncommitted edits stay out of the image
#   --tree     build the working tree as it is (.containerignore leaves build*/ out); the
#              only way outside a git checkout
#   --reuse    when REF exists and was built from this commit (label
#              org.opencontainers.image.revision), print it without building
#   --pull     let podman pull the base images from a registry instead of bootstrapping them
#   --tag REF  tag REF instead of scalemetrics:VERSION
#
# As root on Debian it installs what is missing (podman, runc, mmdebstrap). When podman has no
# debian:bookworm or debian:bookworm-slim, they are bootstrapped from Debian's own packages
# (mmdebstrap --variant=minbase, the slim one without docs, man pages and locales, as the
# official images are made) and imported under the names FROM uses: no image registry needed,
# and the Containerfile stays what `podman build` / `docker build` use anywhere else.
#
# Environment: SM_PODMAN_RUNTIME (default runc: crun fails under cgroup v1 hybrid mode),
#   SM_NO_INSTALL=1 (never apt-get).
# Exit status: 0 built (or reused); 1 the build failed; 2 usage; 77 cannot build here (podman
#   missing and not installable, podman cannot run a container, a base image cannot be had).
set -uo pipefail

SM_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$SM_ROOT/scripts/lib.sh"

tree=0 reuse=0 pull=0 ref=
while [ $# -gt 0 ]; do
	case $1 in
	--tree) tree=1; shift ;;
	--reuse) reuse=1; shift ;;
	--pull) pull=1; shift ;;
	--tag) ref=$2; shift 2 ;;
	-h | --help) sed -n '3,26p' "$0"; exit 0 ;;
	*) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
done

cannot() {
	printf 'image: cannot build here: %s\n' "$*" >&2
	exit 77
}

version=$(sed -nE "s/^[[:space:]]*version:[[:space:]]*'([^']+)'.*/\1/p" "$SM_ROOT/meson.build" |
	head -n 1)
[ -n "$version" ] || sm_die "no project version in meson.build"
ref=${ref:-scalemetrics:$version}

runtime=${SM_PODMAN_RUNTIME:-runc}
# In a subshell: a failed apt-get means podman cannot run here (exit 77 below), not a failure.
(sm_install_packages podman "$runtime" mmdebstrap) ||
	sm_warn "could not install podman, $runtime, mmdebstrap"
command -v podman >/dev/null || cannot "podman is not installed (apt-get install podman runc)"
podman=(podman --runtime "$runtime")
# Containers here cannot raise their limits above the caller's hard limits (no
# CAP_SYS_RESOURCE), and podman's defaults ask for more than that.
ulimits=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

commit=
if [ $tree = 0 ] && git -C "$SM_ROOT" rev-parse --verify -q HEAD >/dev/null 2>&1; then
	commit=$(git -C "$SM_ROOT" rev-parse HEAD)
elif [ $tree = 0 ]; then
	sm_warn "not a git checkout: building the tree as it is"
	tree=1
fi

if [ $reuse = 1 ] && [ -n "$commit" ] &&
	[ "$("${podman[@]}" image inspect --format \
		'{{index .Labels "org.opencontainers.image.revision"}}' "$ref" 2>/dev/null)" = "$commit" ]; then
	sm_log "reusing $ref, built from $commit"
	echo "$ref"
	exit 0
fi

# bootstrap NAME SLIM: imports a Debian bookworm minbase root file system as NAME.
bootstrap() {
	local name=$1 slim=$2 dir opts=()
	command -v mmdebstrap >/dev/null || cannot "$name is missing and mmdebstrap is not installed"
	dir=$(mktemp -d /tmp/sm-bootstrap.XXXXXX) || return 1
	if [ "$slim" = 1 ]; then
		# What the official -slim images leave out (their dpkg.cfg.d/docker), kept in the
		# image so later installs leave it out too.
		local p
		for p in 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/groff/*' \
			'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/lintian/*' \
			'path-exclude=/usr/share/linda/*' 'path-exclude=/usr/share/locale/*' \
			'path-include=/usr/share/locale/locale.alias' 'path-exclude=/usr/share/doc/*' \
			'path-include=/usr/share/doc/*/copyright'; do
			opts+=(--dpkgopt="$p")
		done
	fi
	# Merged /usr made by mmdebstrap's hook, as in the official images (without it, bookworm
	# gets the usrmerge package, and perl with it).
	local hooks=/usr/share/mmdebstrap/hooks/merged-usr
	[ -d "$hooks" ] && opts+=(--hook-dir="$hooks")
	sm_log "bootstrapping $name from Debian packages (mmdebstrap, once: podman keeps it)"
	# No mirror given: mmdebstrap's default, with bookworm-updates and bookworm-security.
	if ! mmdebstrap --variant=minbase "${opts[@]}" bookworm "$dir/rootfs.tar" \
		</dev/null >"$dir/log" 2>&1; then
		tail -n 20 "$dir/log" >&2
		rm -rf "$dir"
		cannot "mmdebstrap could not bootstrap $name (is Debian's mirror reachable?)"
	fi
	# The fully qualified name the short name resolves to (containers' shortnames.conf, and
	# Docker's default), so FROM finds it without a registry.
	"${podman[@]}" import --quiet \
		--change 'CMD ["bash"]' \
		--change 'LABEL org.opencontainers.image.description="Debian bookworm minbase bootstrapped by scalemetrics scripts/image.sh"' \
		"$dir/rootfs.tar" "docker.io/library/$name" >/dev/null ||
		{ rm -rf "$dir"; cannot "podman import of $name failed"; }
	rm -rf "$dir"
}

if [ $pull = 0 ]; then
	for base in debian:bookworm debian:bookworm-slim; do
		"${podman[@]}" image exists "$base" && continue
		slim=0
		[[ $base == *-slim ]] && slim=1
		bootstrap "$base" $slim
	done
fi

# Can podman run a container at all here (runtime, cgroups, limits)?
probe=$("${podman[@]}" run --rm --pull=never --network none "${ulimits[@]}" \
	--entrypoint /bin/true debian:bookworm-slim 2>&1) ||
	cannot "podman cannot run a container: $(tail -n 2 <<<"$probe" | tr '\n' ' ')"

context=$SM_ROOT
if [ $tree = 0 ]; then
	context=$(mktemp -d /tmp/sm-image-context.XXXXXX) || exit 1
	trap 'rm -rf "$context"' EXIT
	git -C "$SM_ROOT" archive --format=tar HEAD | tar -x -C "$context" ||
		sm_die "git archive HEAD failed"
	if [ -n "$(git -C "$SM_ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		sm_warn "uncommitted changes are not in the image (building $commit; --tree builds them)"
	fi
fi

labels=(--label "org.opencontainers.image.version=$version"
	--label "org.opencontainers.image.title=scalemetrics")
[ -n "$commit" ] && labels+=(--label "org.opencontainers.image.revision=$commit")

sm_log "building $ref from ${commit:-the working tree} (podman build, runtime $runtime)"
previous=$("${podman[@]}" image inspect --format '{{.Id}}' "$ref" 2>/dev/null)
start=$(date +%s)
# --network host: the RUN steps fetch Debian packages; the host's network needs no bridge
# (CNI, iptables) set up for them.
"${podman[@]}" build --runtime "$runtime" --network host "${ulimits[@]}" --pull=missing \
	--layers "${labels[@]}" -t "$ref" -f "$context/Containerfile" "$context" >&2 ||
	sm_die "podman build failed"
sm_log "built $ref in $(($(date +%s) - start))s"
# The image that held the tag before, now untagged, unless a container still uses it (the
# build stages' layers stay: they are the cache of the next build).
if [ -n "$previous" ] && [ "$previous" != "$("${podman[@]}" image inspect --format '{{.Id}}' "$ref")" ]; then
	"${podman[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi
echo "$ref"
