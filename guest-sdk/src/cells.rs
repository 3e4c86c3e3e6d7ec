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

/// One metric while a call runs: its bounds at its fixed-point precision, its domain's sizes,
/// and the current entity's groups.
struct MetricState {
    kind: MetricKind,
    fixed: FixedPoint,
    max_contributions_per_group: u32,
    /// The size of each key part's domain, as the room sent them.
    sizes: Vec<u32>,
    /// The current entity's groups of this metric, in the order it first contributed to them
    /// (at most `max_groups_per_entity`, so a scan finds one quickly).
    groups: Vec<Group>,
}

/// Everything a call holds: the rows the room pushed, where each entity's rows start, and the
/// current entity's bounded contributions. One borrow per contribution.
struct State {
    manifest: &'static Manifest,
    metrics: Vec<MetricState>,
    /// The entity `run` is serving, numbered within the call.
    entity: usize,
    bounding: Bounding,
}

/// The rows the room pushed into a call, apart from [`State`], so that a module may read them
/// while it contributes.
struct Pushed {
    manifest: &'static Manifest,
    tables: Vec<TableRows>,
    /// Per table, per entity, the first row (one more entry than entities).
    starts: Vec<Vec<usize>>,
    /// The entity `run` is serving (as in [`State`]).
    entity: usize,
}

/// One group of one metric, for the current entity.
struct Group {
    /// The key's dense index in the bases of the domain sizes (what a cell carries).
    group: u64,
    count: u32,
    /// Fits: the room refuses modules whose bounds could overflow a cell's sum.
    sum: i64,
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
    static PUSHED: RefCell<Option<Pushed>> = const { RefCell::new(None) };
}

fn metric_state(m: &Metric, sizes: Option<&Vec<u32>>) -> MetricState {
    MetricState {
        kind: m.kind,
        // The room's own definition (strongroom-contract), so both bound a value alike.
        fixed: FixedPoint::new(m.lower, m.upper, m.decimals),
        max_contributions_per_group: m.max_contributions_per_group,
        sizes: sizes.cloned().unwrap_or_default(),
        groups: Vec::new(),
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
    let metrics = manifest
        .metrics
        .iter()
        .enumerate()
        .map(|(m, metric)| metric_state(metric, batch.domain_sizes.get(m)))
        .collect();
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            manifest,
            metrics,
            entity: 0,
            bounding: NO_BOUNDING,
        })
    });
    PUSHED.with(|p| {
        *p.borrow_mut() = Some(Pushed {
            manifest,
            tables: batch.tables,
            starts,
            entity: 0,
        })
    });
    let mut out = Cells::default();
    let result: Result<(), QueryError> = (0..count).try_for_each(|entity| {
        with_state(|s| s.entity = entity);
        PUSHED.with(|p| {
            if let Some(p) = p.borrow_mut().as_mut() {
                p.entity = entity;
            }
        });
        run()?;
        with_state(|s| emit(s, entity as u32, &mut out));
        Ok(())
    });
    let state = STATE.with(|s| s.borrow_mut().take());
    PUSHED.with(|p| p.borrow_mut().take());
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

/// The current entity's groups as cells, sorted by (metric, group), leaving it none.
fn emit(state: &mut State, entity: u32, out: &mut Cells) {
    for (m, metric) in state.metrics.iter_mut().enumerate() {
        metric.groups.sort_unstable_by_key(|g| g.group);
        for g in metric.groups.drain(..) {
            out.entities.push(entity);
            out.metrics.push(m as u32);
            out.groups.push(g.group);
            out.counts.push(g.count);
            out.sums.push(g.sum);
        }
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
    PUSHED.with(|s| {
        let state = s.borrow();
        let state = state.as_ref()?;
        let t = state.manifest.reads.iter().position(|r| r.table == table)?;
        let rows = state.tables.get(t)?;
        let starts = state.starts.get(t)?;
        let range = starts[state.entity]..starts[state.entity + 1];
        Some(f(state.manifest.reads[t].columns, &rows.columns, range))
    })
}

/// The current entity's rows of every table the manifest reads, in the manifest's order: each
/// table's columns (in the manifest's column order) and the range of rows that are the
/// entity's. `None` outside a call.
pub(crate) fn with_entity_tables<R>(
    f: impl FnOnce(&[&[ColumnValues]], &[Range<usize>]) -> R,
) -> Option<R> {
    PUSHED.with(|s| {
        let state = s.borrow();
        let state = state.as_ref()?;
        // On the stack for the usual few tables: this runs once per customer.
        const ON_STACK: usize = 8;
        let n = state.tables.len();
        let range = |t: usize| -> Option<Range<usize>> {
            let starts = state.starts.get(t)?;
            Some(starts[state.entity]..starts[state.entity + 1])
        };
        if n <= ON_STACK {
            let mut columns: [&[ColumnValues]; ON_STACK] = [&[]; ON_STACK];
            let mut ranges: [Range<usize>; ON_STACK] = Default::default();
            for (t, rows) in state.tables.iter().enumerate() {
                columns[t] = &rows.columns;
                ranges[t] = range(t)?;
            }
            return Some(f(&columns[..n], &ranges[..n]));
        }
        let columns: Vec<&[ColumnValues]> = state.tables.iter().map(|r| &r.columns[..]).collect();
        let ranges = (0..n).map(range).collect::<Option<Vec<_>>>()?;
        Some(f(&columns, &ranges))
    })
}

/// Adds one contribution to the current entity's groups, as the room bounds contributions.
/// Returns false outside a version 0.2 call (the contribution then goes to the host as in 0.1).
pub(crate) fn add(metric: &Metric, key: &[u32], value: f64) -> bool {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let Some(s) = s.as_mut() else {
            return false;
        };
        assert!(
            !value.is_nan(),
            "metric '{}': contributed a value that is not a number",
            metric.name
        );
        let m = crate::contribute::index_in(s.manifest, metric) as usize;
        let max_groups = s.manifest.max_groups_per_entity;
        let state = &mut s.metrics[m];
        let mut group = 0u64;
        for (part, (&k, &size)) in key.iter().zip(&state.sizes).enumerate() {
            assert!(
                k < size,
                "metric '{}': group key part {part} is {k}, outside its public domain ({size} entries)",
                metric.name
            );
            group = group * u64::from(size) + u64::from(k);
        }
        let at = match state.groups.iter().position(|g| g.group == group) {
            Some(at) => at,
            None => {
                if state.groups.len() as u32 >= max_groups {
                    s.bounding.dropped_over_group_limit += 1;
                    return true;
                }
                state.groups.push(Group {
                    group,
                    count: 0,
                    sum: 0,
                });
                state.groups.len() - 1
            }
        };
        let g = &mut state.groups[at];
        if g.count >= state.max_contributions_per_group {
            // A distinct metric counts the customer once, however often it says so.
            if state.kind != MetricKind::Distinct {
                s.bounding.dropped_over_contribution_limit += 1;
            }
            return true;
        }
        g.count += 1;
        if !state.kind.counts_only() {
            let (clamped, was_clamped) = state.fixed.bound(value);
            s.bounding.clamped += u64::from(was_clamped);
            g.sum += clamped;
        }
        true
    })
}
