//! Contributes a NaN value: a contract violation.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    SPEND.add(&[0], f64::NAN);
    Ok(())
}
