//! Builds every guest module the tests run (examples/ and tests/guests/, each its own workspace
//! for wasm32-wasip2) once, before the tests compile, and tells them where the `.wasm` files are
//! (`STRONGROOM_EXAMPLES_WASM`, `STRONGROOM_GUESTS_WASM`). Hostile modules are always built from
//! source: no binary is committed.

use std::path::{Path, PathBuf};

fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
}

fn main() {
    let root =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo")).join("..");
    // What the guests are built from: their own sources, the SDK and the contract.
    for dir in [
        "examples",
        "tests/guests",
        "guest-sdk",
        "contract/src",
        "contract/wit",
    ] {
        watch(&root.join(dir));
    }
    for (var, dir) in [
        ("STRONGROOM_EXAMPLES_WASM", root.join("examples")),
        ("STRONGROOM_GUESTS_WASM", root.join("tests").join("guests")),
    ] {
        let out = strongroom_contract::toolchain::build_guest_workspace(&dir, false)
            .unwrap_or_else(|e| panic!("{e}"));
        println!("cargo::rustc-env={var}={}", out.display());
    }
}
