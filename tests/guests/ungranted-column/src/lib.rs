//! Reads a column its manifest does not declare (`online`): a contract violation.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    let columns = ["online".to_string()];
    let batch =
        strongroom_guest::bindings::strongroom::query::data::read("transactions", &columns, 0, 10);
    SPEND.add(&[0], batch.rows as f64);
    Ok(())
}
