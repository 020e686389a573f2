# airlock agent base image
#
# A small Debian image for running AI agents under `airlock run`.
#
# Build (from the repository root):
#   docker build -t airlock-agent -f images/agent.Dockerfile .
# Offline / no registry: `bash images/build.sh` debootstraps a local
# airlock-base:bookworm and builds this file on top of it
# (--build-arg BASE=airlock-base:bookworm).
#
# Nothing secret is baked in: no CA certificate, no API keys, no proxy
# settings. At run time airlock mounts its CA bundle and sets HTTP(S)_PROXY
# and friends, so the same image works with any gateway instance.
#
# Extend it for a particular agent, e.g.:
#   FROM airlock-agent
#   USER root
#   RUN apt-get update && apt-get install -y --no-install-recommends npm \
#    && npm i -g @anthropic-ai/claude-code && rm -rf /var/lib/apt/lists/*
#   USER 65534:65534
ARG BASE=debian:bookworm-slim
FROM ${BASE}

LABEL org.opencontainers.image.title="airlock-agent" \
      org.opencontainers.image.description="Base image for AI agents run inside an airlock sandbox (no secrets or CA baked in)"

# nodejs: node where available (bookworm ships node 18). procps gives the
# agent ps/kill for managing its own child processes.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl git python3 nodejs procps \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

# airlock runs the container as `--user 65534:65534 --read-only --tmpfs /tmp`.
# 65534:65534 is Debian's nobody:nogroup; `agent` is a named alias for that
# uid so name lookups work and the image's default user matches what airlock
# uses. The root filesystem is read-only, so the only writable place is the
# /tmp tmpfs: make it HOME and the working directory (git, npm, pip caches).
RUN useradd --non-unique --uid 65534 --gid 65534 --no-create-home \
      --home-dir /tmp --shell /bin/sh agent
ENV HOME=/tmp \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /tmp
USER 65534:65534
CMD ["/bin/sh"]
