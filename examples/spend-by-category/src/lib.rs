//! Example query 1: card spend by merchant category group and customer age band.
//!
//! For every customer (isolated mode: one customer per fresh instance), each card transaction
//! contributes its amount to `spend` and one to `purchases` under the group
//! (merchant category group, customer age band). The room sums across customers, bounds what
//! any one customer can move, and releases the table.

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "customers")]
struct Customer {
    age_band: Category,
}

#[derive(Row)]
#[row(table = "transactions")]
struct Transaction {
    mcc_group: Category,
    amount: f64,
}

/// Group key: (merchant category group, age band), both public dictionaries of the bank's schema.
const BY_CATEGORY_AND_AGE: &[Domain] = &[
    Domain::column("transactions", "mcc_group"),
    Domain::column("customers", "age_band"),
];

/// Card spend; one customer adds at most 50 purchases of at most 5,000 each to a group.
const SPEND: Metric =
    Metric::sum("spend", BY_CATEGORY_AND_AGE, 0.0, 5_000.0).max_contributions_per_group(50);
/// Number of purchases.
const PURCHASES: Metric =
    Metric::count("purchases", BY_CATEGORY_AND_AGE).max_contributions_per_group(50);
/// Average purchase amount.
const AVERAGE_TICKET: Metric = Metric::mean("average_ticket", BY_CATEGORY_AND_AGE, 0.0, 5_000.0)
    .max_contributions_per_group(50);

strongroom_guest::query! {
    manifest: Manifest {
        name: "spend-by-category",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Customer::READS, Transaction::READS],
        metrics: &[SPEND, PURCHASES, AVERAGE_TICKET],
        max_groups_per_entity: 16,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let Some(customer) = rows::<Customer>().into_iter().next() else {
        return Ok(());
    };
    for tx in rows::<Transaction>() {
        let key = [tx.mcc_group.index(), customer.age_band.index()];
        SPEND.add(&key, tx.amount);
        PURCHASES.add_one(&key);
        AVERAGE_TICKET.add(&key, tx.amount);
    }
    Ok(())
}
