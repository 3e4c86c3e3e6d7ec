//! Example query 4: a table-mode module the bank approves (by hash) for its own analysts.
//!
//! Table mode pulls whole tables in batches, so it can join a customer's rows across tables
//! through the opaque entity ordinal each row carries (fresh for every run). It still contributes
//! per customer, naming the customer's row, so the room bounds each customer's influence exactly
//! as in isolated mode:
//! - `spend`: a customer's yearly card spend (clamped to [0, 20,000]) under the customer's region;
//! - `customers`: one per customer, under the region.

use std::collections::HashMap;

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "customers")]
struct Customer {
    region: Category,
}

#[derive(Row)]
#[row(table = "transactions")]
struct Transaction {
    amount: f64,
}

const BY_REGION: &[Domain] = &[Domain::column("customers", "region")];
/// A customer's yearly spend.
const SPEND: Metric = Metric::sum("spend", BY_REGION, 0.0, 20_000.0);
/// Customers per region.
const CUSTOMERS: Metric = Metric::count("customers", BY_REGION);

strongroom_guest::query! {
    manifest: Manifest {
        name: "analyst-spend-by-region",
        version: "0.1.0",
        mode: Mode::Table,
        reads: &[Customer::READS, Transaction::READS],
        metrics: &[SPEND, CUSTOMERS],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    // Each customer's region and row, by entity ordinal.
    let mut customers: HashMap<u32, (u32, RowId)> = HashMap::new();
    for batch in batches::<Customer>(65_536) {
        for (row, customer) in batch.iter() {
            customers.insert(row.entity, (customer.region.index(), row));
        }
    }
    // Each customer's total spend, summed in row order.
    let mut spend: HashMap<u32, f64> = HashMap::new();
    for batch in batches::<Transaction>(65_536) {
        for (row, tx) in batch.iter() {
            *spend.entry(row.entity).or_default() += tx.amount;
        }
    }
    for (entity, (region, row)) in customers {
        SPEND.add_for(row, &[region], spend.get(&entity).copied().unwrap_or(0.0));
        CUSTOMERS.add_for(row, &[region], 1.0);
    }
    Ok(())
}
