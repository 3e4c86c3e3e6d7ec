#!/usr/bin/env bash
# Starts a throwaway PostgreSQL (tests/reference/postgres_start.sh), then runs postgres_check.py:
# every PostgreSQL migration and every SQL statement of the control plane, checked by PostgreSQL
# itself. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! bash tests/reference/postgres_start.sh >/dev/null; then
  echo "SKIPPED: PostgreSQL cannot be installed on this machine (needs root or sudo for apt-get)"
  exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]>=3' 2>&1 | grep -v "Running pip as the 'root' user" || true
python3 tests/reference/postgres_check.py "host=/var/run/postgresql"
