//! Prints without end: must end at the output limit, capture bounded.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    let line = "x".repeat(1000);
    loop {
        println!("{line}");
    }
}
