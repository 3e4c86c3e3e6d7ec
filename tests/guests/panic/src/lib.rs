//! Panics with a message: the run ends in a trap; the message is for the bank's eyes only.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    let rows = rows::<Transaction>();
    panic!(
        "secret-from-guest: first amount is {}",
        rows.first().map_or(0.0, |r| r.amount)
    );
}
