//! Contributes to a metric the manifest does not list: a compile error.

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "transactions")]
struct Transaction {
    mcc_group: Category,
    amount: f64,
}

const BY_CATEGORY: &[Domain] = &[Domain::column("transactions", "mcc_group")];
const SPEND: Metric = Metric::sum("spend", BY_CATEGORY, 0.0, 1_000.0);
const FORGOTTEN: Metric = Metric::count("forgotten", BY_CATEGORY);

strongroom_guest::query! {
    manifest: Manifest {
        name: "undeclared-metric",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Transaction::READS],
        metrics: &[SPEND],
        max_groups_per_entity: 10,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    for tx in rows::<Transaction>() {
        contribute!(SPEND, [tx.mcc_group.index()], tx.amount);
        contribute!(FORGOTTEN, [tx.mcc_group.index()]);
    }
    Ok(())
}
