//! What the SDK refuses to compile: a module that contributes to a metric its manifest does not
//! list, or gives a metric a key with the wrong number of parts (`contribute!`). Each module in
//! tests/compile-fail is built for wasm32-wasip2 and must fail with the SDK's message.

use std::path::Path;
use std::process::Command;

fn build_fails(member: &str) -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("compile-fail");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            member,
        ])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", workspace.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{member} compiled:\n{stderr}");
    stderr
}

#[test]
fn misusing_a_metric_is_a_compile_error() {
    let undeclared = build_fails("undeclared-metric");
    assert!(
        undeclared.contains("this metric is not listed in the manifest's metrics"),
        "{undeclared}"
    );
    let arity = build_fails("wrong-arity");
    assert!(
        arity.contains("this group key has a different number of parts"),
        "{arity}"
    );
}
