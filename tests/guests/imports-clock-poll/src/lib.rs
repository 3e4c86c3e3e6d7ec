//! Sleeps, to build a timing channel: subscribes to the monotonic clock and polls. Against the
//! frozen clock every subscription is ready at once, so the sleep carries no time.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    for tx in rows::<Transaction>() {
        std::thread::sleep(std::time::Duration::from_millis(tx.amount as u64));
    }
    SPEND.add(&[0], 1.0);
    Ok(())
}
