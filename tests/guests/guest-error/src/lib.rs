//! Returns an error from run: outcome guest_error, text for the bank only.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    Err(QueryError::from("refusing on purpose"))
}
