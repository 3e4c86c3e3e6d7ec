//! Building guest modules from source needs Rust's `wasm32-wasip2` target; a fresh machine does
//! not have it. These helpers add it through rustup when it is missing.

use std::path::PathBuf;
use std::process::Command;

/// The wasm target query modules build for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Why modules could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolchainError(pub String);

impl From<String> for ToolchainError {
    fn from(message: String) -> Self {
        ToolchainError(message)
    }
}

impl From<&str> for ToolchainError {
    fn from(message: &str) -> Self {
        ToolchainError(message.to_string())
    }
}

fn target_installed(target: &str) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    sysroot.join("lib").join("rustlib").join(target).exists()
}

/// Makes sure the guest target is installed, running `rustup target add` if it is not.
pub fn ensure_wasm_target() -> Result<(), ToolchainError> {
    ensure_target(GUEST_TARGET)
}

/// Makes sure Rust's `target` is installed (the guests' `wasm32-wasip2`, the web console's
/// `wasm32-unknown-unknown`), running `rustup target add` if it is not.
pub fn ensure_target(target: &str) -> Result<(), ToolchainError> {
    if target_installed(target) {
        return Ok(());
    }
    eprintln!("installing the {target} target (rustup target add {target}) ...");
    match Command::new("rustup")
        .args(["target", "add", target])
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "`rustup target add {target}` failed ({status}); install the target and retry"
        )
        .into()),
        Err(e) => {
            Err(format!("cannot run rustup ({e}); install the {target} target and retry").into())
        }
    }
}

/// Builds a guest workspace (`dir/Cargo.toml`) for the guest target in release mode, into
/// `dir/target` whatever `CARGO_TARGET_DIR` says, and returns the directory holding the `.wasm`
/// files. With `show_progress`, cargo's own output goes to the terminal; otherwise it is kept and
/// returned in the error.
pub fn build_guest_workspace(
    dir: &std::path::Path,
    show_progress: bool,
) -> Result<PathBuf, ToolchainError> {
    build_guest_workspace_with(dir, &[], &dir.join("target"), show_progress)
}

/// [`build_guest_workspace`] with cargo `features` (such as `strongroom-guest/wit-0-1`, to build
/// against version 0.1 of the contract) into the target directory `target`.
pub fn build_guest_workspace_with(
    dir: &std::path::Path,
    features: &[&str],
    target: &std::path::Path,
    show_progress: bool,
) -> Result<PathBuf, ToolchainError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        return Err(format!("no guest workspace at {}", dir.display()).into());
    }
    ensure_wasm_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "--manifest-path",
        ])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target)
        // Host flags (say, for coverage or sanitizers) do not apply to guests.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    let (ok, log) = if show_progress {
        let status = command
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        (status.success(), String::new())
    } else {
        let out = command
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    if !ok {
        return Err(format!(
            "building the guest modules in {} failed\n{log}",
            dir.display()
        )
        .into());
    }
    Ok(target.join(GUEST_TARGET).join("release"))
}
