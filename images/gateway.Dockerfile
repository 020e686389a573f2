# airlock gateway image: `airlock serve` as a non-root user, its data directory a volume.
#
# Build (from a checkout, no registry needed): `bash images/gateway.sh target/release/airlock`
# after `cargo build --release --locked` and `bash images/build.sh` (airlock-base:bookworm).
#
# The binary is built on the host and copied in (build arg AIRLOCK_BIN, a path inside the
# build context): there is no Rust toolchain image to compile in without a registry. So the
# image's glibc must be as new as the build host's: build on Debian bookworm (or older).
# CI builds it from the debug binary to save ten minutes of release build; use release for
# real deployments.
#
# Stages: `certs` installs Debian's CA bundle (and apt's lists, openssl, ...); the runtime
# stage is the minbase image plus that one bundle file and the binary. The binary links only
# glibc and libgcc_s (it uses rustls and compiled-in roots), both already in minbase; the
# build fails if it ever needs a library the runtime lacks.
ARG BASE=airlock-base:bookworm

FROM ${BASE} AS certs
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM ${BASE}
ARG AIRLOCK_BIN=airlock
LABEL org.opencontainers.image.title="airlock-gateway" \
      org.opencontainers.image.description="airlock, the security gateway for AI agents (proxy :3128, control plane :8080)"

COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY ${AIRLOCK_BIN} /usr/local/bin/airlock

# A fixed uid/gid (10001) so volume and secret file ownership can be set from outside.
# The data directory (CA, keys, control token, per-agent sockets, audit anchor) is the
# only place airlock writes; 0700 like `airlock init` makes it.
RUN groupadd --system --gid 10001 airlock \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/airlock --no-create-home \
      --shell /usr/sbin/nologin airlock \
 && mkdir -p /etc/airlock /var/lib/airlock \
 && chown 10001:10001 /var/lib/airlock && chmod 0700 /var/lib/airlock \
 && if ldd /usr/local/bin/airlock | grep 'not found'; then \
      echo "the airlock binary needs a library this image lacks (above)" >&2; exit 1; fi \
 && /usr/local/bin/airlock --version

# The config is mounted at /etc/airlock/airlock.toml; its [gateway] data_dir must be
# /var/lib/airlock and listen/control must bind 0.0.0.0 to be reachable from outside.
ENV AIRLOCK_CONFIG=/etc/airlock/airlock.toml \
    AIRLOCK_LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
WORKDIR /var/lib/airlock
VOLUME ["/var/lib/airlock"]
EXPOSE 3128 8080
# No curl here: the binary probes its own control plane's /readyz (exit 0 only on 200).
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/airlock", "healthcheck"]
# SIGTERM: airlock drains, flushes its audit log and ends its replica lease.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/airlock"]
CMD ["serve"]
