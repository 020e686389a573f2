#!/usr/bin/env bash
# A PostgreSQL server for airlock's store tests, from Debian's packages:
#   installs `postgresql` if missing, starts its cluster (listening on 127.0.0.1:5432), and makes
#   sure the role `airlock` (password `airlock`, CREATEDB) exists. The tests create and drop one
#   database per test through that role: AIRLOCK_TEST_POSTGRES_URL defaults to
#   postgres://airlock:airlock@127.0.0.1:5432/postgres. The cluster must have TLS on (Debian's
#   default, with the ssl-cert snakeoil certificate): the store tests check sslmode=require.
# Idempotent and quick when the server is already up. Needs root (or sudo). Fails loudly.
set -euo pipefail

URL=postgres://airlock:airlock@127.0.0.1:5432/postgres

if [ "$(id -u)" = 0 ]; then
  sudo=()
  as_postgres() { runuser -u postgres -- "$@"; }
else
  sudo=(sudo)
  as_postgres() { sudo -u postgres "$@"; }
fi

role_ok() {
  PGPASSWORD=airlock PGCONNECT_TIMEOUT=5 psql -X -q -tA "$URL" -c 'SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user' \
    2>/dev/null | grep -qx t
}
gw_ok() {
  PGPASSWORD=gw-real-Pa55-7c1e9a PGCONNECT_TIMEOUT=5 psql -X -q -tA "postgres://airlock_gw@127.0.0.1:5432/postgres" -c 'SELECT 1' \
    2>/dev/null | grep -qx 1
}
ssl_on() {
  PGPASSWORD=airlock PGCONNECT_TIMEOUT=5 psql -X -q -tA "$URL" -c 'SHOW ssl' 2>/dev/null | grep -qx on
}

if command -v psql >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 && role_ok && gw_ok && ssl_on; then
  echo "postgres-for-tests: already running ($URL)"
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "postgres-for-tests: installing postgresql from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq postgresql
fi

# The newest installed server version; its `main` cluster (created by the package, or here).
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
  "${sudo[@]}" pg_createcluster "$version" main
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')
if [ "$port" != 5432 ]; then
  echo "postgres-for-tests: cluster $version/main uses port $port, expected 5432" >&2
  echo "  (set AIRLOCK_TEST_POSTGRES_URL to reach another server instead)" >&2
  exit 1
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $4 }' | grep -qx online; then
  echo "postgres-for-tests: starting cluster $version/main"
  "${sudo[@]}" pg_ctlcluster "$version" main start
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 -t 30; then
  echo "postgres-for-tests: the server does not accept connections on 127.0.0.1:5432" >&2
  tail -n 20 "/var/log/postgresql/postgresql-$version-main.log" >&2 || true
  exit 1
fi

as_postgres psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'airlock') THEN
    ALTER ROLE airlock LOGIN CREATEDB PASSWORD 'airlock';
  ELSE
    CREATE ROLE airlock LOGIN CREATEDB PASSWORD 'airlock';
  END IF;
  -- The database gateway's tests: the "real" password airlock holds for an upstream, distinctive
  -- so the tests can prove it never leaks (logs, audit, errors).
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'airlock_gw') THEN
    ALTER ROLE airlock_gw LOGIN CREATEDB PASSWORD 'gw-real-Pa55-7c1e9a';
  ELSE
    CREATE ROLE airlock_gw LOGIN CREATEDB PASSWORD 'gw-real-Pa55-7c1e9a';
  END IF;
END
$$;
SQL

if ! role_ok; then
  echo "postgres-for-tests: cannot sign in as airlock over TCP ($URL): check pg_hba.conf" >&2
  exit 1
fi
if ! ssl_on; then
  echo "postgres-for-tests: the cluster has ssl = off; the store's TLS test needs it on" >&2
  echo "  (Debian turns it on with the ssl-cert package's snakeoil certificate)" >&2
  exit 1
fi
echo "postgres-for-tests: ready ($URL)"
