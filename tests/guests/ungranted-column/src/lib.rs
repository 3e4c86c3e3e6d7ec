//! Reads a column its manifest does not declare (`online`): a contract violation.
#![allow(dead_code, unconditional_recursion)]

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "transactions")]
struct Transaction {
    mcc_group: Category,
    amount: f64,
}

const BY_MCC: &[Domain] = &[Domain::column("transactions", "mcc_group")];
const SPEND: Metric =
    Metric::sum("spend", BY_MCC, 0.0, 1_000.0).max_contributions_per_group(1_000_000);

strongroom_guest::query! {
    manifest: Manifest {
        name: env!("CARGO_PKG_NAME"),
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Transaction::READS],
        metrics: &[SPEND],
        max_groups_per_entity: 100,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let columns = ["online".to_string()];
    let batch =
        strongroom_guest::bindings::strongroom::query::data::read("transactions", &columns, 0, 10);
    SPEND.add(&[0], batch.rows as f64);
    Ok(())
}
