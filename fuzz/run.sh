#!/usr/bin/env bash
# Builds the fuzz targets with coverage instrumentation and runs each for SECONDS (default 20).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# CI runs every target briefly (a smoke run); docs/reliability.md gives the long run's command
# and figures. Corpora grow under target/fuzz/corpus/; a crashing input is saved under
# target/fuzz/artifacts/ and the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true
all=(sealed_file sealed_content manifest schema_and_policy audit_export notes_receipts_keys http_requests host_calls partial_bytes sql_query sql_plan worker_answers)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=("${all[@]}"); fi
target_dir="${CARGO_TARGET_DIR:-target}"
work="$target_dir/fuzz"
mkdir -p "$work/artifacts"
RUSTC_WORKSPACE_WRAPPER="$PWD/fuzz/instrument.sh" cargo build --quiet -p strongroom-fuzz --bins
rm -rf "$work/seeds"
export FUZZ_SEEDS="$work/seeds"
printf '%-22s %12s %8s %8s %10s\n' target executions "exec/s" edges corpus
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/seeds/$t"
  log="$work/$t.log"
  if ! "$target_dir/debug/$t" "$work/corpus/$t" "$work/seeds/$t" \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/$t-" >"$log" 2>&1; then
    echo "fuzz target $t found a failure; the input is in $work/artifacts/, the log in $log" >&2
    tail -40 "$log" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "$work/corpus/$t" -type f | wc -l)
  printf '%-22s %12s %8s %8s %10s\n' "$t" "$runs" "$speed" "${edges:-?}" "$corpus"
done
