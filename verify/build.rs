//! Tells the crates that depend on this one where its sources are (`DEP_STRONGROOM_VERIFY_ROOT`),
//! so the server's build script can compile it for the browser.

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    println!("cargo::metadata=root={root}");
    println!("cargo::rerun-if-changed=build.rs");
}
