//! Contributions: the only thing that leaves a module. Buffered here, handed to the host in
//! batches, aggregated and bounded by the host.

use std::cell::RefCell;

use crate::bindings::strongroom::query::contribute::{Contributions, contribute};
use crate::manifest::{Manifest, Metric};
use crate::rows::RowId;

const FLUSH_AT: usize = 4096;

struct Buffer {
    metric: u32,
    arity: usize,
    keys: Vec<u32>,
    values: Vec<f64>,
    table: &'static str,
    rows: Vec<u64>,
}

thread_local! {
    static MANIFEST: RefCell<Option<&'static Manifest>> = const { RefCell::new(None) };
    static BUFFERS: RefCell<Vec<Buffer>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn install(manifest: &'static Manifest) {
    MANIFEST.with(|m| *m.borrow_mut() = Some(manifest));
}

fn metric_index(metric: &Metric) -> u32 {
    MANIFEST.with(|m| {
        let manifest = m
            .borrow()
            .expect("strongroom_guest::query! installs the manifest before run");
        index_in(manifest, metric)
    })
}

/// The index of `metric` in `manifest`'s metrics; a metric the manifest does not list is the
/// module's mistake, named.
pub(crate) fn index_in(manifest: &Manifest, metric: &Metric) -> u32 {
    // The same `&'static str` almost always: its address settles it without comparing.
    manifest
        .metrics
        .iter()
        .position(|candidate| std::ptr::eq(candidate.name, metric.name))
        .or_else(|| {
            manifest
                .metrics
                .iter()
                .position(|candidate| candidate.name == metric.name)
        })
        .map(|i| i as u32)
        .unwrap_or_else(|| {
            panic!(
                "metric '{}' is not listed in the manifest's metrics",
                metric.name
            )
        })
}

fn push(metric: &Metric, key: &[u32], value: f64, row: Option<RowId>) {
    assert_eq!(
        key.len(),
        metric.key.len(),
        "metric '{}' has a group key of {} part(s), got {}",
        metric.name,
        metric.key.len(),
        key.len()
    );
    // Version 0.2, isolated or batched: bounded here into the entity's cells.
    #[cfg(not(feature = "wit-0-1"))]
    if row.is_none() && crate::cells::add(metric, key, value) {
        return;
    }
    let index = metric_index(metric);
    let full = BUFFERS.with(|buffers| {
        let mut buffers = buffers.borrow_mut();
        let table = row.map(|r| r.table).unwrap_or("");
        let pos = match buffers
            .iter()
            .position(|b| b.metric == index && b.table == table)
        {
            Some(pos) => pos,
            None => {
                buffers.push(Buffer {
                    metric: index,
                    arity: key.len(),
                    keys: Vec::new(),
                    values: Vec::new(),
                    table,
                    rows: Vec::new(),
                });
                buffers.len() - 1
            }
        };
        let buffer = &mut buffers[pos];
        buffer.keys.extend_from_slice(key);
        buffer.values.push(value);
        if let Some(row) = row {
            buffer.rows.push(row.index);
        }
        buffer.values.len() >= FLUSH_AT
    });
    if full {
        flush();
    }
}

/// Hands every buffered contribution to the host. Called for you when `run` returns.
pub fn flush() {
    let pending: Vec<Buffer> = BUFFERS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    for buffer in pending {
        if buffer.values.is_empty() {
            continue;
        }
        debug_assert_eq!(buffer.keys.len(), buffer.values.len() * buffer.arity);
        contribute(&Contributions {
            metric: buffer.metric,
            keys: buffer.keys,
            values: buffer.values,
            source_table: buffer.table.to_string(),
            rows: buffer.rows,
        });
    }
}

/// Contributing to a declared [`Metric`]; in the prelude, so `SPEND.add(&key, amount)` reads as a
/// method of the metric.
pub trait Contribute {
    /// Contributes `value` to the group `key` (isolated mode: attributed to the current entity).
    /// For a count, the value is ignored; [`Contribute::add_one`] reads better.
    fn add(&self, key: &[u32], value: f64);

    /// Contributes one to a count under `key` (isolated mode).
    fn add_one(&self, key: &[u32]);

    /// Contributes `value` to `key` on behalf of `row` (table mode: the room attributes it to the
    /// row's entity and bounds that entity's influence).
    fn add_for(&self, row: RowId, key: &[u32], value: f64);
}

impl Contribute for Metric {
    fn add(&self, key: &[u32], value: f64) {
        push(self, key, value, None);
    }

    fn add_one(&self, key: &[u32]) {
        push(self, key, 1.0, None);
    }

    fn add_for(&self, row: RowId, key: &[u32], value: f64) {
        push(self, key, value, Some(row));
    }
}
