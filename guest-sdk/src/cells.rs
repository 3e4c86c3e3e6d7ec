//! Version 0.2 of the contract: the rows the room pushed into one call, and each entity's
//! contributions bounded here into cells.
//!
//! Bounding follows the room's rules for 0.1 contributions to the letter (and the room checks
//! every cell against them): a value is scaled to the metric's decimals, rounded half away from
//! zero and clamped to its bounds; an entity keeps the first `max_contributions_per_group`
//! contributions to a group and the first `max_groups_per_entity` groups of a metric, in the
//! order it made them. A module therefore gives the same exact aggregates under both versions.

use std::cell::RefCell;
use std::ops::Range;

use crate::QueryError;
use crate::bindings::strongroom::query::types::{
    Bounding, Cell as WitCell, Cells as WitCells, ColumnValues, Entities, TableRows,
};
use crate::manifest::{Manifest, Metric, MetricKind};

/// The rows of the call, and where each entity's rows start in every table.
struct Pushed {
    manifest: &'static Manifest,
    tables: Vec<TableRows>,
    /// Per table, per entity, the first row (one more entry than entities).
    starts: Vec<Vec<usize>>,
    domain_sizes: Vec<Vec<u32>>,
    /// The entity `run` is serving, numbered within the call.
    entity: usize,
}

/// One group of one metric, for the current entity.
struct Group {
    metric: u32,
    key: [u32; 4],
    count: u32,
    sum: i128,
}

/// The current entity's bounded contributions.
#[derive(Default)]
struct Accumulator {
    groups: Vec<Group>,
    groups_per_metric: Vec<u32>,
}

/// What a call returns, before it becomes the contract's `cells`.
pub(crate) struct Cells {
    cells: Vec<WitCell>,
    bounding: Bounding,
}

const NO_BOUNDING: Bounding = Bounding {
    dropped_over_group_limit: 0,
    dropped_over_contribution_limit: 0,
    clamped: 0,
};

impl Cells {
    pub(crate) fn empty() -> Cells {
        Cells {
            cells: Vec::new(),
            bounding: NO_BOUNDING,
        }
    }

    pub(crate) fn into_wit(self) -> WitCells {
        WitCells {
            cells: self.cells,
            bounding: self.bounding,
        }
    }
}

thread_local! {
    static PUSHED: RefCell<Option<Pushed>> = const { RefCell::new(None) };
    static CURRENT: RefCell<Accumulator> = RefCell::new(Accumulator::default());
    static BOUNDING: RefCell<Bounding> = const { RefCell::new(NO_BOUNDING) };
}

/// Runs `run` once for each entity of `batch`, each seeing its own rows, and gives their cells.
/// The first entity whose `run` fails fails the call (the room then runs each entity on its
/// own, so only that entity loses its contributions).
pub(crate) fn run_entities(
    manifest: &'static Manifest,
    run: fn() -> Result<(), QueryError>,
    batch: Entities,
) -> Result<WitCells, QueryError> {
    let count = batch.count as usize;
    let mut starts = Vec::with_capacity(batch.tables.len());
    for (t, table) in batch.tables.iter().enumerate() {
        if table.row_counts.len() != count {
            return Err(format!(
                "the room sent {} row counts for table #{t}, for {count} entities",
                table.row_counts.len()
            )
            .into());
        }
        let mut at = Vec::with_capacity(count + 1);
        let mut next = 0usize;
        at.push(0);
        for &n in &table.row_counts {
            next += n as usize;
            at.push(next);
        }
        starts.push(at);
    }
    PUSHED.with(|p| {
        *p.borrow_mut() = Some(Pushed {
            manifest,
            tables: batch.tables,
            starts,
            domain_sizes: batch.domain_sizes,
            entity: 0,
        })
    });
    BOUNDING.with(|b| *b.borrow_mut() = NO_BOUNDING);
    let mut out = Cells::empty();
    let result: Result<(), QueryError> = (0..count).try_for_each(|entity| {
        PUSHED.with(|p| {
            if let Some(p) = p.borrow_mut().as_mut() {
                p.entity = entity;
            }
        });
        CURRENT.with(|c| *c.borrow_mut() = Accumulator::default());
        run()?;
        let accumulated = CURRENT.with(|c| std::mem::take(&mut *c.borrow_mut()));
        emit(entity as u32, accumulated, &mut out.cells);
        Ok(())
    });
    PUSHED.with(|p| *p.borrow_mut() = None);
    result?;
    out.bounding = BOUNDING.with(|b| std::mem::replace(&mut *b.borrow_mut(), NO_BOUNDING));
    Ok(out.into_wit())
}

/// The current entity's groups as cells, sorted by (metric, group).
fn emit(entity: u32, accumulated: Accumulator, out: &mut Vec<WitCell>) {
    let sizes = PUSHED.with(|p| {
        p.borrow()
            .as_ref()
            .map(|p| p.domain_sizes.clone())
            .unwrap_or_default()
    });
    let first = out.len();
    for g in accumulated.groups {
        let parts = sizes.get(g.metric as usize).map_or(&[][..], Vec::as_slice);
        let group = g
            .key
            .iter()
            .zip(parts)
            .fold(0u64, |acc, (&k, &s)| acc * u64::from(s) + u64::from(k));
        out.push(WitCell {
            entity,
            metric: g.metric,
            group,
            count: g.count,
            // The room refuses modules whose bounds could overflow this.
            sum: g.sum as i64,
        });
    }
    out[first..].sort_unstable_by_key(|c| (c.metric, c.group));
}

/// True while a version 0.2 call serves an entity (isolated or batched mode).
pub(crate) fn active() -> bool {
    PUSHED.with(|p| p.borrow().is_some())
}

/// The current entity's rows of `table`: the columns the manifest reads from it (in the
/// manifest's order) and the range of rows that are the entity's. `None` outside a call, or for
/// a table the manifest does not read.
pub(crate) fn with_rows<R>(
    table: &str,
    f: impl FnOnce(&'static [crate::ColumnSpec], &[ColumnValues], Range<usize>) -> R,
) -> Option<R> {
    PUSHED.with(|p| {
        let pushed = p.borrow();
        let pushed = pushed.as_ref()?;
        let t = pushed
            .manifest
            .reads
            .iter()
            .position(|r| r.table == table)?;
        let rows = pushed.tables.get(t)?;
        let starts = pushed.starts.get(t)?;
        let range = starts[pushed.entity]..starts[pushed.entity + 1];
        Some(f(pushed.manifest.reads[t].columns, &rows.columns, range))
    })
}

/// Adds one contribution to the current entity's groups, as the room bounds contributions.
pub(crate) fn add(metric: &Metric, index: u32, key: &[u32], value: f64) {
    let (max_groups, sizes) = PUSHED.with(|p| {
        let pushed = p.borrow();
        let pushed = pushed
            .as_ref()
            .expect("only called while a call serves an entity");
        (
            pushed.manifest.max_groups_per_entity,
            pushed
                .domain_sizes
                .get(index as usize)
                .cloned()
                .unwrap_or_default(),
        )
    });
    for (part, (&k, &size)) in key.iter().zip(&sizes).enumerate() {
        assert!(
            k < size,
            "metric '{}': group key part {part} is {k}, outside its public domain ({size} entries)",
            metric.name
        );
    }
    assert!(
        !value.is_nan(),
        "metric '{}': contributed a value that is not a number",
        metric.name
    );
    let mut padded = [u32::MAX; 4];
    padded[..key.len()].copy_from_slice(key);
    CURRENT.with(|c| {
        let mut acc = c.borrow_mut();
        let acc = &mut *acc;
        let m = index as usize;
        if acc.groups_per_metric.len() <= m {
            acc.groups_per_metric.resize(m + 1, 0);
        }
        let at = acc
            .groups
            .iter()
            .position(|g| g.metric == index && g.key == padded);
        let group = match at {
            Some(at) => &mut acc.groups[at],
            None => {
                if acc.groups_per_metric[m] >= max_groups {
                    BOUNDING.with(|b| b.borrow_mut().dropped_over_group_limit += 1);
                    return;
                }
                acc.groups_per_metric[m] += 1;
                acc.groups.push(Group {
                    metric: index,
                    key: padded,
                    count: 0,
                    sum: 0,
                });
                let last = acc.groups.len() - 1;
                &mut acc.groups[last]
            }
        };
        if group.count >= metric.max_contributions_per_group {
            BOUNDING.with(|b| b.borrow_mut().dropped_over_contribution_limit += 1);
            return;
        }
        group.count += 1;
        if metric.kind != MetricKind::Count {
            let scale = 10f64.powi(i32::from(metric.decimals));
            let lower = (metric.lower * scale).round() as i64;
            let upper = (metric.upper * scale).round() as i64;
            let fixed = (value * scale).round();
            let clamped = if fixed < lower as f64 {
                BOUNDING.with(|b| b.borrow_mut().clamped += 1);
                lower
            } else if fixed > upper as f64 {
                BOUNDING.with(|b| b.borrow_mut().clamped += 1);
                upper
            } else {
                fixed as i64
            };
            group.sum += i128::from(clamped);
        }
    });
}
