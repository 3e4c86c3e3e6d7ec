//! Example query 1: card spend by merchant category group and customer age band.
//!
//! For every customer (isolated mode: one customer per fresh instance), under the group
//! (merchant category group, customer age band):
//! - `spend`: the customer's total card spend in the group (one value per customer and group,
//!   clamped to [0, 3,000]);
//! - `purchases`: one per purchase (at most 30 per customer and group);
//! - `average_ticket`: the mean purchase amount (each clamped to [0, 300], at most 30 per
//!   customer and group).
//!
//! A customer has one age band, so reaches at most 10 groups (the 10 merchant category groups):
//! that is `max_groups_per_entity`, and with the bounds above it fixes how much any one customer
//! can move any released number. The room sums across customers, adds noise and releases.

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

/// A customer's yearly card spend in a group, at most 3,000.
const SPEND: Metric = Metric::sum("spend", BY_CATEGORY_AND_AGE, 0.0, 3_000.0);
/// Number of purchases, at most 30 per customer and group.
const PURCHASES: Metric =
    Metric::count("purchases", BY_CATEGORY_AND_AGE).max_contributions_per_group(30);
/// Average purchase amount; purchases above 300 count as 300.
const AVERAGE_TICKET: Metric =
    Metric::mean("average_ticket", BY_CATEGORY_AND_AGE, 0.0, 300.0).max_contributions_per_group(30);

strongroom_guest::query! {
    manifest: Manifest {
        name: "spend-by-category",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Customer::READS, Transaction::READS],
        metrics: &[SPEND, PURCHASES, AVERAGE_TICKET],
        max_groups_per_entity: 10,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let Some(customer) = rows::<Customer>().into_iter().next() else {
        return Ok(());
    };
    // The customer's total per merchant category group, in first-seen order.
    let mut spend: Vec<(u32, f64)> = Vec::new();
    let age = customer.age_band.index();
    for tx in rows::<Transaction>() {
        // `contribute!` checks, when the module compiles, that each metric is in the manifest
        // and that its key has one part per domain.
        contribute!(PURCHASES, [tx.mcc_group.index(), age]);
        contribute!(AVERAGE_TICKET, [tx.mcc_group.index(), age], tx.amount);
        match spend
            .iter_mut()
            .find(|(group, _)| *group == tx.mcc_group.index())
        {
            Some((_, total)) => *total += tx.amount,
            None => spend.push((tx.mcc_group.index(), tx.amount)),
        }
    }
    for (group, total) in spend {
        contribute!(SPEND, [group, age], total);
    }
    Ok(())
}
