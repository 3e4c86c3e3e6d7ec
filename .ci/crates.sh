#!/usr/bin/env bash
# The crate boundaries, checked: who may depend on what, the verify crate's browser build, and
# that every crate meant to be published packages and builds from its package alone.
set -euo pipefail
cd "$(dirname "$0")/.."

# Crates (and their families) a crate must not pull in, by name.
deps_of() {
  cargo tree -p "$1" --edges normal,build --prefix none --format '{p}' | awk '{print $1}' | sort -u
}
forbid() {
  local crate=$1 pattern=$2 deps found
  deps=$(deps_of "$crate")
  found=$(echo "$deps" | grep -xE "$pattern" || true)
  if [ -n "$found" ]; then
    echo "$crate depends on what it must not: $(echo "$found" | tr '\n' ' ')" >&2
    exit 1
  fi
  echo "$crate: none of $pattern"
}
forbid strongroom-verify 'wasmtime.*|cranelift.*|sqlx.*|tokio.*|axum.*|clap.*|ring'
forbid strongroom-contract 'wasmtime.*|sqlx.*|tokio.*|axum.*|clap.*'
# The API types are for every client, a browser's too; their schemas only behind `openapi`.
forbid strongroom-api 'wasmtime.*|sqlx.*|tokio.*|axum.*|clap.*|ring|utoipa.*'
# The plan crate is compiled into the SQL engine module: serde and postcard, nothing else.
forbid strongroom-sql-plan 'wasmtime.*|sqlx.*|tokio.*|axum.*|clap.*|ring|sqlparser|strongroom-contract'
forbid strongroom-sql 'wasmtime.*|sqlx.*|tokio.*|axum.*|clap.*'
forbid strongroom 'clap.*|axum.*|ureq|strongroom-synthetic'
forbid strongroom-server 'clap.*|ureq|strongroom-synthetic'

# The verify crate runs in a browser.
rustup target add wasm32-unknown-unknown >/dev/null
cargo build --quiet -p strongroom-verify --target wasm32-unknown-unknown
echo "strongroom-verify builds for wasm32-unknown-unknown"

# Every published crate, packaged and built from the package (no path leaves it). Cargo takes a
# registry crate of a given name and version to be immutable: it unpacks it once and keeps what
# it compiled from it. So the packages are built in a target directory of their own, and what an
# earlier run (of an older tree, same version) left of our crates goes first.
published=(strongroom-contract strongroom-verify strongroom-api strongroom-sql-plan strongroom-sql strongroom strongroom-server
  strongroom-synthetic strongroom-cli strongroom-guest strongroom-guest-derive)
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rm -rf "$cargo_home"/registry/src/*/strongroom-* "$cargo_home"/registry/cache/*/strongroom-*
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/package-check"
if [ -d "$CARGO_TARGET_DIR" ]; then
  for crate in "${published[@]}"; do
    rm -rf "$CARGO_TARGET_DIR"/debug/.fingerprint/"$crate"-* "$CARGO_TARGET_DIR"/debug/deps/lib"${crate//-/_}"-*
  done
fi
cargo package --quiet --workspace --exclude strongroom-tests --exclude strongroom-fuzz
echo "cargo package: every published crate builds from its package"
# On a CI machine the disk is the limit, and nothing later uses these builds.
if [ "${CI:-}" = "true" ]; then
  rm -rf "$CARGO_TARGET_DIR" "${CARGO_TARGET_DIR%/package-check}/package"
fi
