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
        "tests/guests-cells",
        "guest-sdk",
        "contract/src",
        "contract/wit",
    ] {
        watch(&root.join(dir));
    }
    // The examples against both versions of the contract (0.2, the SDK's default, and 0.1, for
    // the differential tests). The hostile modules of tests/guests pin 0.1 in their workspace,
    // whose host calls they attack one by one; tests/guests-cells forges 0.2's cells.
    let v0_1 = ["strongroom-guest/wit-0-1"];
    for (var, dir, features, target) in [
        ("STRONGROOM_EXAMPLES_WASM", "examples", &[][..], "target"),
        (
            "STRONGROOM_EXAMPLES_V0_1_WASM",
            "examples",
            &v0_1[..],
            "target/wit-0-1",
        ),
        ("STRONGROOM_GUESTS_WASM", "tests/guests", &[][..], "target"),
        (
            "STRONGROOM_CELL_GUESTS_WASM",
            "tests/guests-cells",
            &[][..],
            "target",
        ),
    ] {
        let dir = root.join(dir);
        let out = strongroom_contract::toolchain::build_guest_workspace_with(
            &dir,
            features,
            &dir.join(target),
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!("cargo::rustc-env={var}={}", out.display());
    }
}
