#!/usr/bin/env bash
# Installs (Debian's package) and starts a throwaway PostgreSQL if none is running, with a
# superuser role for the current user, then prints the URL the tests take as
# STRONGROOM_TEST_POSTGRES. Prints nothing and exits 3 when PostgreSQL cannot be installed here
# (no root or sudo). Called by .ci/run.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if ! { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null; } >&2; then
    echo "PostgreSQL cannot be installed on this machine (needs root or sudo for apt-get)" >&2
    exit 3
  fi
fi
version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
as_root pg_ctlcluster "$version" main start >&2 2>/dev/null || true
for _ in $(seq 1 50); do
  as_root su postgres -c "psql -qAt -c 'select 1'" >/dev/null 2>&1 && break
  sleep 0.2
done
me="$(id -un)"
as_root su postgres -c "psql -qAt -c \"select 1 from pg_roles where rolname = '$me'\"" | grep -q 1 \
  || as_root su postgres -c "createuser -s '$me'" >&2
# Databases left by earlier test runs.
for db in $(psql -h /var/run/postgresql -d postgres -qAt -c "select datname from pg_database where datname like 'strongroom\_%'"); do
  psql -h /var/run/postgresql -d postgres -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >&2
done
echo "postgres:///postgres?host=/var/run/postgresql"
