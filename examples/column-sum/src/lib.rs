//! Table mode: the sum of `transactions.amount` over the whole table, pulled in batches.
//!
//! The benchmark's table-mode module: it measures the data path (columnar batches across the
//! canonical ABI, a tight loop in the guest) against a native loop over the same values. It makes
//! one contribution, attributed to the first row, so it is a throughput probe rather than a query
//! a bank would approve: a real table-mode module contributes per entity (see the SDK guide).

use strongroom_guest::prelude::*;

/// Read once, for the id of the first row (the column is scanned with `column_batches`).
#[derive(Row)]
#[row(table = "transactions")]
#[allow(dead_code)]
struct Amount {
    amount: f64,
}

const TOTAL: &[Domain] = &[Domain::enumeration("table", &["transactions"])];
const SUM: Metric = Metric::sum("total_amount", TOTAL, 0.0, 1.0e15);

strongroom_guest::query! {
    manifest: Manifest {
        name: "column-sum",
        version: "0.1.0",
        mode: Mode::Table,
        reads: &[Amount::READS],
        metrics: &[SUM],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    // The first row names the contribution's source; the column itself is scanned without
    // building rows.
    let Some(first) = batches::<Amount>(1)
        .next()
        .and_then(|b| b.iter().next().map(|(id, _)| id))
    else {
        return Ok(());
    };
    let mut total = 0.0f64;
    for (_, amounts) in column_batches::<f64>("transactions", "amount", 65_536) {
        total += amounts.iter().sum::<f64>();
    }
    SUM.add_for(first, &[0], total);
    Ok(())
}
