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
    Bounding, Cells as WitCells, ColumnValues, Entities, TableRows,
};
use crate::manifest::{FixedPoint, Manifest, Metric, MetricKind};

/// One metric's bounds at its fixed-point precision, worked out once per call.
struct Bounds {
    kind: MetricKind,
    fixed: FixedPoint,
    max_contributions_per_group: u32,
}

/// Everything a call holds: the rows the room pushed, where each entity's rows start, and the
/// current entity's bounded contributions. One borrow per contribution.
struct State {
    manifest: &'static Manifest,
    tables: Vec<TableRows>,
    /// Per table, per entity, the first row (one more entry than entities).
    starts: Vec<Vec<usize>>,
    domain_sizes: Vec<Vec<u32>>,
    bounds: Vec<Bounds>,
    /// The entity `run` is serving, numbered within the call.
    entity: usize,
    groups: Vec<Group>,
    groups_per_metric: Vec<u32>,
    bounding: Bounding,
    /// The current entity's cells while they are sorted, reused from entity to entity.
    scratch: Vec<(u32, u64, u32, i64)>,
}

/// One group of one metric, for the current entity.
struct Group {
    metric: u32,
    key: [u32; 4],
    count: u32,
    sum: i128,
}

/// What a call returns, column by column, before it becomes the contract's `cells`.
#[derive(Default)]
pub(crate) struct Cells {
    entities: Vec<u32>,
    metrics: Vec<u32>,
    groups: Vec<u64>,
    counts: Vec<u32>,
    sums: Vec<i64>,
}

pub(crate) const NO_BOUNDING: Bounding = Bounding {
    dropped_over_group_limit: 0,
    dropped_over_contribution_limit: 0,
    clamped: 0,
};

impl Cells {
    pub(crate) fn into_wit(self, bounding: Bounding) -> WitCells {
        WitCells {
            entities: self.entities,
            metrics: self.metrics,
            groups: self.groups,
            counts: self.counts,
            sums: self.sums,
            bounding,
        }
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn bounds_of(m: &Metric) -> Bounds {
    Bounds {
        kind: m.kind,
        // The room's own definition (strongroom-contract), so both bound a value alike.
        fixed: FixedPoint::new(m.lower, m.upper, m.decimals),
        max_contributions_per_group: m.max_contributions_per_group,
    }
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
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            manifest,
            tables: batch.tables,
            starts,
            domain_sizes: batch.domain_sizes,
            bounds: manifest.metrics.iter().map(bounds_of).collect(),
            entity: 0,
            groups: Vec::new(),
            groups_per_metric: vec![0; manifest.metrics.len()],
            bounding: NO_BOUNDING,
            scratch: Vec::new(),
        })
    });
    let mut out = Cells::default();
    let result: Result<(), QueryError> = (0..count).try_for_each(|entity| {
        with_state(|s| {
            s.entity = entity;
            s.groups.clear();
            s.groups_per_metric.iter_mut().for_each(|g| *g = 0);
        });
        run()?;
        with_state(|s| emit(s, entity as u32, &mut out));
        Ok(())
    });
    let state = STATE.with(|s| s.borrow_mut().take());
    result?;
    Ok(out.into_wit(state.map_or(NO_BOUNDING, |s| s.bounding)))
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        f(s.as_mut()
            .expect("only called while a call serves an entity"))
    })
}

/// The current entity's groups as cells, sorted by (metric, group).
fn emit(state: &mut State, entity: u32, out: &mut Cells) {
    let sizes = &state.domain_sizes;
    let cells = &mut state.scratch;
    cells.clear();
    cells.extend(state.groups.drain(..).map(|g| {
        let parts = sizes.get(g.metric as usize).map_or(&[][..], Vec::as_slice);
        let group = g
            .key
            .iter()
            .zip(parts)
            .fold(0u64, |acc, (&k, &s)| acc * u64::from(s) + u64::from(k));
        // The room refuses modules whose bounds could overflow the sum.
        (g.metric, group, g.count, g.sum as i64)
    }));
    cells.sort_unstable_by_key(|&(metric, group, _, _)| (metric, group));
    for &(metric, group, count, sum) in cells.iter() {
        out.entities.push(entity);
        out.metrics.push(metric);
        out.groups.push(group);
        out.counts.push(count);
        out.sums.push(sum);
    }
}

/// True while a version 0.2 call serves an entity (isolated or batched mode).
pub(crate) fn active() -> bool {
    STATE.with(|s| s.borrow().is_some())
}

/// The current entity's rows of `table`: the columns the manifest reads from it (in the
/// manifest's order) and the range of rows that are the entity's. `None` outside a call, or for
/// a table the manifest does not read.
pub(crate) fn with_rows<R>(
    table: &str,
    f: impl FnOnce(&'static [crate::ColumnSpec], &[ColumnValues], Range<usize>) -> R,
) -> Option<R> {
    STATE.with(|s| {
        let state = s.borrow();
        let state = state.as_ref()?;
        let t = state.manifest.reads.iter().position(|r| r.table == table)?;
        let rows = state.tables.get(t)?;
        let starts = state.starts.get(t)?;
        let range = starts[state.entity]..starts[state.entity + 1];
        Some(f(state.manifest.reads[t].columns, &rows.columns, range))
    })
}

/// Adds one contribution to the current entity's groups, as the room bounds contributions.
pub(crate) fn add(metric: &Metric, index: u32, key: &[u32], value: f64) {
    assert!(
        !value.is_nan(),
        "metric '{}': contributed a value that is not a number",
        metric.name
    );
    with_state(|s| {
        let m = index as usize;
        let sizes = s.domain_sizes.get(m).map_or(&[][..], Vec::as_slice);
        for (part, (&k, &size)) in key.iter().zip(sizes).enumerate() {
            assert!(
                k < size,
                "metric '{}': group key part {part} is {k}, outside its public domain ({size} entries)",
                metric.name
            );
        }
        let mut padded = [u32::MAX; 4];
        padded[..key.len()].copy_from_slice(key);
        let b = &s.bounds[m];
        let at = s
            .groups
            .iter()
            .position(|g| g.metric == index && g.key == padded);
        let group = match at {
            Some(at) => &mut s.groups[at],
            None => {
                if s.groups_per_metric[m] >= s.manifest.max_groups_per_entity {
                    s.bounding.dropped_over_group_limit += 1;
                    return;
                }
                s.groups_per_metric[m] += 1;
                s.groups.push(Group {
                    metric: index,
                    key: padded,
                    count: 0,
                    sum: 0,
                });
                let last = s.groups.len() - 1;
                &mut s.groups[last]
            }
        };
        if group.count >= b.max_contributions_per_group {
            s.bounding.dropped_over_contribution_limit += 1;
            return;
        }
        group.count += 1;
        if b.kind != MetricKind::Count {
            let (clamped, was_clamped) = b.fixed.bound(value);
            s.bounding.clamped += u64::from(was_clamped);
            group.sum += i128::from(clamped);
        }
    });
}
