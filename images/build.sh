#!/usr/bin/env bash
# Build airlock's container images locally, without any container registry:
#   airlock-base:bookworm  - Debian bookworm minbase via debootstrap + import
#   airlock-agent:latest   - images/agent.Dockerfile on top of that base
# Only Debian's package mirror must be reachable (debootstrap and apt-get).
#
# Usage: bash images/build.sh [--force]
#   ENGINE=podman                    build for podman instead of docker
#   AIRLOCK_DEBIAN_MIRROR=URL        default http://deb.debian.org/debian
#   AIRLOCK_DEBIAN_SECURITY_MIRROR=URL (empty: no security repo in the base)
# Each image is labelled with a hash of this script and the Dockerfile; a
# step is skipped when its image already carries the current hash.
set -euo pipefail

ENGINE=${ENGINE:-docker}
MIRROR=${AIRLOCK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${AIRLOCK_DEBIAN_SECURITY_MIRROR-http://deb.debian.org/debian-security}
SUITE=bookworm
BASE_TAG=airlock-base:$SUITE
AGENT_TAG=airlock-agent:latest
PATH_ENV=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DOCKERFILE=$HERE/agent.Dockerfile

FORCE=0
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "build.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# Fail loudly: a missing engine must never look like "nothing to do".
command -v "$ENGINE" >/dev/null || die "'$ENGINE' not found in PATH (set ENGINE=docker|podman)"
info_err=$("$ENGINE" info 2>&1 >/dev/null) \
  || die "'$ENGINE info' failed; is the $ENGINE daemon running and accessible? ${info_err:0:300}"

HASH=$(cat "${BASH_SOURCE[0]}" "$DOCKERFILE" | sha256sum | cut -d' ' -f1)

# Prints the hash label of an image, or nothing if the image does not exist.
image_hash() {
  "$ENGINE" image inspect -f '{{ index .Config.Labels "airlock.images.hash" }}' "$1" 2>/dev/null || true
}
up_to_date() { [ "$FORCE" = 0 ] && [ "$(image_hash "$1")" = "$HASH" ]; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlock-images.XXXXXX")
SUDO=
cleanup() { $SUDO rm -rf "$WORK"; }
trap cleanup EXIT
START=$(now)
BUILT_BASE=0

# --- 1. base image -----------------------------------------------------------
if up_to_date "$BASE_TAG"; then
  log "$BASE_TAG is up to date (hash ${HASH:0:12}), skipping"
else
  t=$(now)
  DEBOOTSTRAP=$(command -v debootstrap || echo /usr/sbin/debootstrap)
  [ -x "$DEBOOTSTRAP" ] || die "debootstrap not found (Debian/Ubuntu: apt-get install debootstrap)"
  # debootstrap needs root for chroot/mknod/chown; the rootfs it creates is
  # root-owned and partly unreadable, so tar it up with the same privileges.
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "debootstrap needs root: run as root or install sudo"
    SUDO=sudo
  fi
  log "debootstrap $SUITE (minbase) from $MIRROR ..."
  $SUDO "$DEBOOTSTRAP" --variant=minbase "$SUITE" "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # Match debian:bookworm-slim's apt sources so derived images get updates.
  { echo "deb $MIRROR $SUITE main"
    echo "deb $MIRROR $SUITE-updates main"
    [ -z "$SECURITY" ] || echo "deb $SECURITY $SUITE-security main"
  } | $SUDO tee "$WORK/rootfs/etc/apt/sources.list" >/dev/null
  $SUDO rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  log "debootstrap done in $(elapsed "$t"); importing $BASE_TAG ..."
  # /dev, /proc, /sys are provided by the runtime; ship them empty.
  $SUDO tar -C "$WORK/rootfs" --numeric-owner \
      --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . \
    | "$ENGINE" import \
        --change "ENV PATH=$PATH_ENV" \
        --change 'CMD ["/bin/sh"]' \
        --change "LABEL airlock.images.hash=$HASH" \
        - "$BASE_TAG" >/dev/null
  $SUDO rm -rf "$WORK/rootfs"
  BUILT_BASE=1
  log "built $BASE_TAG in $(elapsed "$t")"
fi

# --- 2. agent image ----------------------------------------------------------
# A fresh base always forces the agent rebuild: the agent's own label cannot
# tell which base image it was built on.
if [ "$BUILT_BASE" = 0 ] && up_to_date "$AGENT_TAG"; then
  log "$AGENT_TAG is up to date (hash ${HASH:0:12}), skipping"
else
  t=$(now)
  log "building $AGENT_TAG from $DOCKERFILE ..."
  # The Dockerfile COPYs nothing, so send an empty build context.
  mkdir -p "$WORK/context"
  "$ENGINE" build \
      --build-arg "BASE=$BASE_TAG" \
      --label "airlock.images.hash=$HASH" \
      -t "$AGENT_TAG" -f "$DOCKERFILE" "$WORK/context" >&2 \
    || die "$ENGINE build of $AGENT_TAG failed (output above)"
  log "built $AGENT_TAG in $(elapsed "$t")"
fi

log "done in $(elapsed "$START"): $BASE_TAG, $AGENT_TAG ($ENGINE)"
