//! Tries to read a file: the filesystem is linked with no preopened directory, so the read fails
//! and the guest returns the error.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    let secret = std::fs::read("/etc/passwd").map_err(|e| QueryError(e.to_string()))?;
    SPEND.add(&[0], secret.len() as f64);
    Ok(())
}
