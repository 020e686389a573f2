#!/usr/bin/env bash
# Build the images of the compose deployment (deploy/compose) locally, without a registry,
# on airlock-base:bookworm (made by images/build.sh, which must have run first):
#   airlock-postgres:15      - images/postgres.Dockerfile (Debian's PostgreSQL 15)
#   airlock-gateway:latest   - images/gateway.Dockerfile around an airlock binary built on
#                              this host (only when BINARY is given)
#
# Usage: bash images/gateway.sh [--force] [BINARY]
#   e.g. cargo build --release --locked && bash images/gateway.sh target/release/airlock
#   ENGINE=podman                  build for podman instead of docker
#   GATEWAY_TAG=NAME:TAG           default airlock-gateway:latest
# airlock-postgres is labelled with a hash of its files and base, skipped when current; the
# gateway image is rebuilt every time (the binary is the point of it).
set -euo pipefail

ENGINE=${ENGINE:-docker}
BASE_TAG=airlock-base:bookworm
PG_TAG=airlock-postgres:15
GATEWAY_TAG=${GATEWAY_TAG:-airlock-gateway:latest}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

FORCE=0
BIN=
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "gateway.sh: unknown argument: $arg" >&2; exit 2 ;;
    *) [ -z "$BIN" ] || { echo "gateway.sh: one binary only" >&2; exit 2; }; BIN=$arg ;;
  esac
done

log() { echo "gateway.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

command -v "$ENGINE" >/dev/null || die "'$ENGINE' not found in PATH (set ENGINE=docker|podman)"
info_err=$("$ENGINE" info 2>&1 >/dev/null) \
  || die "'$ENGINE info' failed; is the $ENGINE daemon running and accessible? ${info_err:0:300}"
"$ENGINE" image inspect "$BASE_TAG" >/dev/null 2>&1 \
  || die "$BASE_TAG is missing: run 'bash images/build.sh' first"
if [ -n "$BIN" ]; then
  [ -f "$BIN" ] && [ -x "$BIN" ] || die "$BIN is not an executable file (cargo build --release first?)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlock-gateway.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$(now)

# --- airlock-postgres --------------------------------------------------------
# The base image's id is part of the hash: a rebuilt base (images/build.sh) rebuilds this too.
BASE_ID=$("$ENGINE" image inspect -f '{{.Id}}' "$BASE_TAG")
PG_HASH=$({ cat "${BASH_SOURCE[0]}" "$HERE/postgres.Dockerfile" "$HERE/postgres-entrypoint.sh"; echo "$BASE_ID"; } \
  | sha256sum | cut -d' ' -f1)
have=$("$ENGINE" image inspect -f '{{ index .Config.Labels "airlock.images.hash" }}' "$PG_TAG" 2>/dev/null || true)
if [ "$FORCE" = 0 ] && [ "$have" = "$PG_HASH" ]; then
  log "$PG_TAG is up to date (hash ${PG_HASH:0:12}), skipping"
else
  t=$(now)
  log "building $PG_TAG ..."
  mkdir -p "$WORK/pg"
  cp "$HERE/postgres-entrypoint.sh" "$WORK/pg/"
  "$ENGINE" build --build-arg "BASE=$BASE_TAG" --label "airlock.images.hash=$PG_HASH" \
      -t "$PG_TAG" -f "$HERE/postgres.Dockerfile" "$WORK/pg" >&2 \
    || die "$ENGINE build of $PG_TAG failed (output above)"
  log "built $PG_TAG in $(elapsed "$t")"
fi

# --- airlock-gateway ---------------------------------------------------------
if [ -n "$BIN" ]; then
  t=$(now)
  log "building $GATEWAY_TAG from $BIN ..."
  mkdir -p "$WORK/gw"
  # The context holds the binary alone; debug info is not needed at run time (line tables
  # of a debug build are most of its size) and only slows the copy into the engine.
  if command -v objcopy >/dev/null; then
    objcopy --strip-debug "$BIN" "$WORK/gw/airlock"
  else
    cp "$BIN" "$WORK/gw/airlock"
  fi
  "$ENGINE" build --build-arg "BASE=$BASE_TAG" --build-arg AIRLOCK_BIN=airlock \
      -t "$GATEWAY_TAG" -f "$HERE/gateway.Dockerfile" "$WORK/gw" >&2 \
    || die "$ENGINE build of $GATEWAY_TAG failed (output above)"
  log "built $GATEWAY_TAG in $(elapsed "$t")"
fi

log "done in $(elapsed "$START")"
