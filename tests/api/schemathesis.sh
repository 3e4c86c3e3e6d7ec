#!/usr/bin/env bash
# Fuzzes the served API with schemathesis (PyPI) from the OpenAPI document the server serves,
# once per role: no response may be a 5xx, and every response must match the document (status,
# content type, schema). Called by .ci/run; needs python3 and network access to PyPI once.
#
#   bash tests/api/schemathesis.sh            # MAX_EXAMPLES=30 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
MAX_EXAMPLES="${MAX_EXAMPLES:-30}"

python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5' 2>&1 | grep -v "Running pip as the 'root' user" || true
cargo build --quiet -p strongroom-cli --bin strongroom
cargo build --quiet --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml
BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/strongroom"
WASM="$PWD/examples/target/wasm32-wasip2/release"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
export STRONGROOM_PASSPHRASE="schemathesis run"
unset STRONGROOM_SERVER STRONGROOM_TOKEN

ROOM="$WORK/room"
"$BIN" keygen --room "$ROOM" >/dev/null
BANK="$("$BIN" party add bigbank --role bank --room "$ROOM" 2>/dev/null)"
PARTNER="$("$BIN" party add socialco --role partner --room "$ROOM" 2>/dev/null)"
AUDITOR="$("$BIN" party add secteam --role auditor --room "$ROOM" 2>/dev/null)"
"$BIN" demo-data --customers 300 --out "$WORK/data" >/dev/null
"$BIN" party-key --name bigbank --out "$WORK/bank.key" >/dev/null
"$BIN" seal --schema "$WORK/data/schema.toml" --room-key "$ROOM/keys/room.pub" --party-key "$WORK/bank.key" \
  --table "customers=$WORK/data/customers.csv" --table "transactions=$WORK/data/transactions.csv" \
  --out "$WORK/bank.sealed" >/dev/null
printf 'partner = "socialco"\ndataset = "bank"\nbudget_rho = "5.0"\nresult_delay_seconds = 0\nmin_group_size = 20\n' > "$WORK/policy.toml"

"$BIN" serve --room "$ROOM" --listen 127.0.0.1:0 --rate 10000 > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  URL="$(grep -o 'http://[0-9.:]*' "$WORK/serve.log" | head -1 || true)"
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/serve.log"; echo "the server did not start"; exit 1; }

# Something to find: a dataset, a policy, a module, a finished job.
"$BIN" --server "$URL" --token "$BANK" dataset upload "$WORK/bank.sealed" >/dev/null
"$BIN" --server "$URL" --token "$BANK" policy set --file "$WORK/policy.toml" >/dev/null
SHA="$("$BIN" --server "$URL" --token "$PARTNER" module submit "$WASM/fraud_alerts_by_region.wasm" | python3 -c 'import json,sys; print(json.load(sys.stdin)["module_sha256"])')"
"$BIN" --server "$URL" --token "$PARTNER" job submit --module-sha256 "$SHA" --dataset bank --cost 0.1 --wait >/dev/null

status=0
for role in bank partner auditor; do
  case "$role" in bank) T="$BANK";; partner) T="$PARTNER";; auditor) T="$AUDITOR";; esac
  echo "== schemathesis as $role"
  schemathesis run "$URL/v1/openapi.json" \
    --header "Authorization: Bearer $T" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance \
    --max-examples "$MAX_EXAMPLES" --generation-deterministic --request-timeout 30 \
    --suppress-health-check all || status=1
done
if grep -q "internal error" "$WORK/serve.log"; then
  echo "the server logged internal errors:"; grep "internal error" "$WORK/serve.log"; status=1
fi
exit $status
