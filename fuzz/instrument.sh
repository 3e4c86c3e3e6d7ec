#!/bin/sh
# RUSTC_WORKSPACE_WRAPPER for fuzz builds: adds libFuzzer's coverage instrumentation (the flags
# cargo-fuzz uses, without a sanitizer) to this workspace's crates only. Dependencies, wasmtime
# among them, keep the artifacts of the ordinary build, so a fuzz build recompiles two crates,
# not the sandbox. Proc macros and build scripts run inside the compiler and stay plain.
rustc="$1"; shift
case " $* " in
  *" --crate-type proc-macro "*|*" --crate-name build_script_"*) exec "$rustc" "$@" ;;
esac
exec "$rustc" "$@" \
  -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares
