//! Building guest modules from source needs Rust's `wasm32-wasip2` target; a fresh machine does
//! not have it. These helpers add it through rustup when it is missing.

use std::path::PathBuf;
use std::process::Command;

/// The wasm target query modules build for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

fn target_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    sysroot
        .join("lib")
        .join("rustlib")
        .join(GUEST_TARGET)
        .exists()
}

/// Makes sure the guest target is installed, running `rustup target add` if it is not.
pub fn ensure_wasm_target() -> Result<(), String> {
    if target_installed() {
        return Ok(());
    }
    eprintln!("installing the {GUEST_TARGET} target (rustup target add {GUEST_TARGET}) ...");
    match Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "`rustup target add {GUEST_TARGET}` failed ({status}); install the target and retry"
        )),
        Err(e) => Err(format!(
            "cannot run rustup ({e}); install the {GUEST_TARGET} target and retry"
        )),
    }
}
