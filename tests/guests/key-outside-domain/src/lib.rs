//! Contributes under a group key outside its public domain (a way to smuggle a value out in a
//! key): a contract violation, and the run releases nothing.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    for tx in rows::<Transaction>() {
        // Encode the amount in the key instead of the value.
        SPEND.add(&[1_000 + tx.amount as u32], 1.0);
    }
    Ok(())
}
