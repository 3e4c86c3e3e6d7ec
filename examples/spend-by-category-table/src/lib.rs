//! Example query 1 written for table mode: the same metrics as `spend-by-category`, computed by
//! scanning whole tables in batches instead of one customer per instance. Every contribution
//! names its customer's row, so the room bounds each customer exactly as in isolated mode and
//! the aggregates are identical. Table mode needs the bank's approval by hash; the benchmark
//! (tests/benches/versus_duckdb.rs) runs it beside the isolated module, DuckDB and native Rust.

use std::collections::HashMap;

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

const BY_CATEGORY_AND_AGE: &[Domain] = &[
    Domain::column("transactions", "mcc_group"),
    Domain::column("customers", "age_band"),
];
const SPEND: Metric = Metric::sum("spend", BY_CATEGORY_AND_AGE, 0.0, 3_000.0);
const PURCHASES: Metric =
    Metric::count("purchases", BY_CATEGORY_AND_AGE).max_contributions_per_group(30);
const AVERAGE_TICKET: Metric =
    Metric::mean("average_ticket", BY_CATEGORY_AND_AGE, 0.0, 300.0).max_contributions_per_group(30);

strongroom_guest::query! {
    manifest: Manifest {
        name: "spend-by-category-table",
        version: "0.1.0",
        mode: Mode::Table,
        reads: &[Customer::READS, Transaction::READS],
        metrics: &[SPEND, PURCHASES, AVERAGE_TICKET],
        max_groups_per_entity: 10,
    },
    run: run,
}

/// Each customer's age band by entity ordinal. Tables list customers in the same order, so the
/// lookup walks forward through the customers as transactions arrive (a merge join); the hash
/// map (entity to position) is the fallback that also re-synchronizes the walk, e.g. after
/// customers without transactions.
struct AgeBands {
    in_order: Vec<(u32, u32)>,
    next: usize,
    by_entity: HashMap<u32, usize>,
}

impl AgeBands {
    fn get(&mut self, entity: u32) -> Option<u32> {
        if let Some(&(e, band)) = self.in_order.get(self.next)
            && e == entity
        {
            return Some(band);
        }
        if let Some(&(e, band)) = self.in_order.get(self.next + 1)
            && e == entity
        {
            self.next += 1;
            return Some(band);
        }
        let position = *self.by_entity.get(&entity)?;
        self.next = position;
        Some(self.in_order[position].1)
    }
}

fn run() -> Result<(), QueryError> {
    let mut in_order = Vec::new();
    for batch in batches::<Customer>(65_536) {
        for (row, customer) in batch.iter() {
            in_order.push((row.entity, customer.age_band.index()));
        }
    }
    let by_entity = in_order
        .iter()
        .enumerate()
        .map(|(position, &(entity, _))| (entity, position))
        .collect();
    let mut age = AgeBands {
        in_order,
        next: 0,
        by_entity,
    };
    // Rows come grouped by customer: a customer's totals are complete when the entity changes.
    let mut current: Option<(u32, RowId, u32)> = None;
    let mut totals: Vec<(u32, f64)> = Vec::new();
    let flush = |row: RowId, band: u32, totals: &mut Vec<(u32, f64)>| {
        for (group, total) in totals.drain(..) {
            SPEND.add_for(row, &[group, band], total);
        }
    };
    for batch in batches::<Transaction>(65_536) {
        for (row, tx) in batch.iter() {
            let Some(band) = age.get(row.entity) else {
                continue;
            };
            match current {
                Some((entity, first, prev)) if entity != row.entity => {
                    flush(first, prev, &mut totals);
                    current = Some((row.entity, row, band));
                }
                None => current = Some((row.entity, row, band)),
                _ => {}
            }
            let key = [tx.mcc_group.index(), band];
            PURCHASES.add_for(row, &key, 1.0);
            AVERAGE_TICKET.add_for(row, &key, tx.amount);
            let group = tx.mcc_group.index();
            match totals.iter_mut().find(|(g, _)| *g == group) {
                Some((_, t)) => *t += tx.amount,
                None => totals.push((group, tx.amount)),
            }
        }
    }
    if let Some((_, first, band)) = current {
        flush(first, band, &mut totals);
    }
    Ok(())
}
