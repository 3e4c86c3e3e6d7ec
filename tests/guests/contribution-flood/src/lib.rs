//! Contributes without end: must end at the contribution limit.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    loop {
        SPEND.add(&[0], 1.0);
    }
}
