//! Forges version 0.2 cells instead of letting the SDK bound contributions: the job parameter
//! `attack` picks the forgery, and every entity of a call gets it (with `attack=on-mcc-3`, only
//! the entities with a purchase in merchant category group 3). Without a forgery (`honest`) each
//! entity gives one valid cell, so a test can tell the forgeries' refusals from a module that
//! does not run at all. `spin` and `memory` attack the sandbox's fuel and memory limits from
//! a version 0.2 `run`.
//!
//! Manifest: `spend` (a sum in [0, 1000], 2 decimals, at most 5 contributions per group) and
//! `purchases` (a count, at most 5 per group), both keyed by `transactions.mcc_group`, at most
//! 3 groups per entity.

use strongroom_guest::bindings::Guest;
use strongroom_guest::bindings::strongroom::query::types::{
    Bounding, Cells, ColumnValues, Entities,
};

/// One cell, before the cells go out column by column.
#[derive(Clone, Copy)]
struct Cell {
    entity: u32,
    metric: u32,
    group: u64,
    count: u32,
    sum: i64,
}
use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "transactions")]
#[allow(dead_code)]
struct Transaction {
    mcc_group: Category,
    amount: f64,
}

const BY_MCC: &[Domain] = &[Domain::column("transactions", "mcc_group")];
const SPEND: Metric = Metric::sum("spend", BY_MCC, 0.0, 1_000.0).max_contributions_per_group(5);
const PURCHASES: Metric = Metric::count("purchases", BY_MCC).max_contributions_per_group(5);

const MANIFEST: Manifest = Manifest {
    name: "forged-cells",
    version: "0.1.0",
    mode: Mode::Isolated,
    reads: &[Transaction::READS],
    metrics: &[SPEND, PURCHASES],
    max_groups_per_entity: 3,
};

#[used]
#[unsafe(link_section = "strongroom-manifest")]
static MANIFEST_SECTION: [u8; strongroom_guest::manifest::encoded_len(&MANIFEST)] =
    strongroom_guest::manifest::encode(&MANIFEST);

/// One valid cell: one purchase of 1.00 in group 0.
fn valid(entity: u32) -> Cell {
    Cell {
        entity,
        metric: 0,
        group: 0,
        count: 1,
        sum: 100,
    }
}

/// The cells of one entity under `attack`.
fn forge(attack: &str, entity: u32, groups: u64, out: &mut Vec<Cell>) {
    let cell = valid(entity);
    match attack {
        "group-outside-domain" => out.push(Cell {
            group: groups,
            ..cell
        }),
        "unsorted" => {
            out.push(Cell { group: 1, ..cell });
            out.push(cell);
        }
        // One group in two cells, to get past max_contributions_per_group.
        "split-group" => {
            out.push(Cell { count: 5, ..cell });
            out.push(Cell { count: 5, ..cell });
        }
        "too-many-groups" => {
            for group in 0..4 {
                out.push(Cell { group, ..cell });
            }
        }
        "count-zero" => out.push(Cell {
            count: 0,
            sum: 0,
            ..cell
        }),
        "count-over-limit" => out.push(Cell {
            count: 6,
            sum: 600,
            ..cell
        }),
        "sum-over-bound" => out.push(Cell {
            sum: 100_001,
            ..cell
        }),
        "sum-under-bound" => out.push(Cell { sum: -1, ..cell }),
        "count-with-sum" => out.push(Cell {
            metric: 1,
            sum: 1,
            ..cell
        }),
        "undeclared-metric" => out.push(Cell { metric: 2, ..cell }),
        "entity-outside-call" => out.push(Cell {
            entity: u32::MAX,
            ..cell
        }),
        // One list shorter than the others.
        "ragged" => {
            out.push(cell);
            out.push(Cell { group: 1, ..cell });
        }
        _ => out.push(cell),
    }
}

struct Forged;

impl Guest for Forged {
    fn run(batch: Entities) -> Result<Cells, String> {
        let attack = strongroom_guest::schema::parameter("attack").unwrap_or_default();
        if attack == "spin" {
            // The sandbox's limits hold whatever the version: fuel ends this.
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        if attack == "memory" {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(Vec::with_capacity(16 << 20));
                std::hint::black_box(&hoard);
            }
        }
        if attack == "pull-rows" {
            // Version 0.2 pushes rows in isolated and batched mode; pulling them is refused.
            strongroom_guest::bindings::strongroom::query::data::row_count("transactions");
        }
        let groups = u64::from(batch.domain_sizes[0][0]);
        let mut cells = Vec::new();
        let table = &batch.tables[0];
        let ColumnValues::Category(mcc) = &table.columns[0] else {
            return Err("mcc_group is not a category column".into());
        };
        let mut start = 0usize;
        for (entity, &rows) in table.row_counts.iter().enumerate() {
            let own = &mcc[start..start + rows as usize];
            start += rows as usize;
            let attack = match attack.as_str() {
                "on-mcc-3" if own.contains(&3) => "count-over-limit",
                "on-mcc-3" => "honest",
                other => other,
            };
            forge(attack, entity as u32, groups, &mut cells);
        }
        let ragged = attack == "ragged";
        Ok(Cells {
            entities: cells.iter().map(|c| c.entity).collect(),
            metrics: cells.iter().map(|c| c.metric).collect(),
            groups: cells.iter().map(|c| c.group).collect(),
            counts: cells.iter().map(|c| c.count).collect(),
            sums: cells
                .iter()
                .skip(usize::from(ragged))
                .map(|c| c.sum)
                .collect(),
            bounding: Bounding {
                dropped_over_group_limit: 0,
                dropped_over_contribution_limit: 0,
                clamped: 0,
            },
        })
    }
}

strongroom_guest::bindings::__export_query!(Forged with_types_in strongroom_guest::bindings);
