#!/usr/bin/env bash
# Installs and starts a throwaway PostgreSQL (Debian's package) if none is running, then runs
# postgres_check.py: every migration and every SQL statement of the control plane, checked by
# PostgreSQL itself. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if ! { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null; }; then
    echo "SKIPPED: PostgreSQL cannot be installed on this machine (needs root or sudo for apt-get)"
    exit 0
  fi
fi
version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
as_root pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 1 50); do
  as_root su postgres -c "psql -qAt -c 'select 1'" >/dev/null 2>&1 && break
  sleep 0.2
done
me="$(id -un)"
as_root su postgres -c "psql -qAt -c \"select 1 from pg_roles where rolname = '$me'\"" | grep -q 1 \
  || as_root su postgres -c "createuser -s '$me'"
python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]>=3' 2>&1 | grep -v "Running pip as the 'root' user" || true
python3 tests/reference/postgres_check.py "host=/var/run/postgresql"
