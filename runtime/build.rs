//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! migrations directories at compile time.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations/postgres");
}
