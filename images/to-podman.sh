#!/usr/bin/env bash
# Load Docker's airlock-agent:latest into Podman's storage (no registry: docker save |
# podman load). Skipped when Podman already holds the same image: image IDs are content
# hashes that survive save and load. Build Docker's first with images/build.sh.
# (A separate script: images/build.sh labels its images with a hash of itself.)
#
# Usage: bash images/to-podman.sh [IMAGE]   (default airlock-agent:latest)
#   PODMAN_USER=NAME   into that user's rootless storage instead (run as root)
set -euo pipefail

IMAGE=${1:-airlock-agent:latest}
log() { echo "to-podman.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { echo "${EPOCHREALTIME/,/.}"; }

# Fail loudly: a missing engine must never look like "nothing to do".
command -v podman >/dev/null || die "'podman' not found in PATH"
podman() {
  if [ -n "${PODMAN_USER:-}" ]; then
    setpriv --reuid="$PODMAN_USER" --regid="$(id -g "$PODMAN_USER")" --init-groups --reset-env -- podman "$@"
  else
    command podman "$@"
  fi
}
want=$(docker image inspect -f '{{.Id}}' "$IMAGE") || die "docker has no $IMAGE: run images/build.sh first"
have=$(podman image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if [ "${want#sha256:}" = "${have#sha256:}" ]; then
  log "podman's $IMAGE is up to date${PODMAN_USER:+ (user $PODMAN_USER)}"
  exit 0
fi
t=$(now)
docker save "$IMAGE" | podman load -q >/dev/null || die "loading $IMAGE into podman failed"
# The image it replaces, now untagged (kept if a container still uses it).
[ -z "$have" ] || podman rmi "$have" >/dev/null 2>&1 || true
log "loaded $IMAGE into podman${PODMAN_USER:+ (user $PODMAN_USER)} in $(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }')"
