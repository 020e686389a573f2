# PostgreSQL 15 from Debian's packages, for the compose example (deploy/compose): no
# registry needed. Built by `bash images/gateway.sh` on airlock-base:bookworm.
#
# First start: initdb with superuser $POSTGRES_USER (default airlock), password
# $POSTGRES_PASSWORD (required), database $POSTGRES_DB (default airlock); password
# (scram-sha-256) authentication over TCP. Data in the /var/lib/postgresql/data volume.
# For production prefer a managed or separately operated PostgreSQL server.
ARG BASE=airlock-base:bookworm
FROM ${BASE}
LABEL org.opencontainers.image.title="airlock-postgres" \
      org.opencontainers.image.description="PostgreSQL 15 (Debian) for airlock's compose example"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
HEALTHCHECK --interval=2s --timeout=5s --start-period=60s --retries=3 \
  CMD ["pg_isready", "-h", "127.0.0.1", "-q"]
# SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
