//! Compiles the web console's log verifier (`console/verifier/lib.rs` over `strongroom-verify`) for
//! `wasm32-unknown-unknown`, so that the binary embeds it (`OUT_DIR/verifier.wasm`). The verify
//! crate says where its sources are (`DEP_STRONGROOM_VERIFY_ROOT`), so this works from the
//! repository and from the published packages alike. The wasm target is added through rustup
//! when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let verify_root = PathBuf::from(
        std::env::var("DEP_STRONGROOM_VERIFY_ROOT").expect("strongroom-verify says where it is"),
    );
    let source = manifest_dir.join("console/verifier/lib.rs");
    println!("cargo::rerun-if-changed={}", source.display());
    println!(
        "cargo::rerun-if-changed={}",
        verify_root.join("src").display()
    );
    println!(
        "cargo::rerun-if-changed={}",
        verify_root.join("Cargo.toml").display()
    );

    // The cargo target directory this build runs in: OUT_DIR is TARGET_DIR/[triple/]profile/build/pkg/out.
    let target_dir = out
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent()?.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.clone());
    let crate_dir = target_dir.join("console-verifier");
    std::fs::create_dir_all(&crate_dir).expect("create the verifier's build directory");
    let verify_version = std::env::var("CARGO_PKG_VERSION").expect("set by cargo");
    write_if_changed(
        &crate_dir.join("Cargo.toml"),
        &format!(
            r#"# Written by strongroom-server's build script.
[package]
name = "strongroom-console-verifier"
version = "{verify_version}"
edition = "2024"
publish = false

[lib]
path = {source:?}
crate-type = ["cdylib"]

[dependencies]
strongroom-verify = {{ path = {verify_root:?} }}
base64 = "0.22"
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
debug = false

[workspace]
"#,
            source = source.display().to_string(),
            verify_root = verify_root.display().to_string(),
        ),
    );
    // The repository's lock, when there is one, so the browser gets the versions the room tested.
    let lock = manifest_dir.join("../Cargo.lock");
    if lock.exists() && !crate_dir.join("Cargo.lock").exists() {
        let _ = std::fs::copy(&lock, crate_dir.join("Cargo.lock"));
    }
    // Adding an installed target does nothing; without rustup, the build below says what is
    // missing. (No workspace crate helps here: the fuzz build instruments every workspace crate,
    // and a build script cannot link the instrumented one.)
    let _ = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            TARGET,
            "--manifest-path",
        ])
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", crate_dir.join("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET");
    let result = command.output().expect("cannot run cargo");
    if !result.status.success() {
        panic!(
            "building the console's log verifier for {TARGET} failed (is the target installed? \
             `rustup target add {TARGET}`):\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    let wasm = crate_dir
        .join("target")
        .join(TARGET)
        .join("release/strongroom_console_verifier.wasm");
    std::fs::copy(&wasm, out.join("verifier.wasm"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", wasm.display()));
}
