//! Every function a guest can call that is ours: the `strongroom:query` imports. A reviewer reads
//! this one file to know what a query module can ask of the room. (The only other imports a
//! module may have are the virtual WASI interfaces in `wasi.rs`.)
//!
//! Rules enforced here, on every call:
//! - only the tables and columns the manifest declared (and the run granted) exist; entity keys and
//!   identifier columns are not even nameable;
//! - isolated mode sees one entity's rows; table mode sees whole tables;
//! - a contribution names a declared metric, a group key inside its public domains, a finite
//!   value, and (table mode) a real row; anything else is a contract violation that ends the run.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::RunContext;
use super::limits::RunLimits;
use crate::dataset::ColumnData;
use crate::output_gate::{EntityContributions, GroupKey};
use strongroom_contract::manifest::{ColumnType, Domain, Mode};

use bindings::strongroom::query::types::{Batch, ColumnInfo, ColumnValues, TableInfo};
use bindings::strongroom::query::{contribute, data, schema, types};
pub use bindings::{Query, QueryPre};
use strongroom_contract::host as bindings;

/// Why the host ended a run early, recorded before trapping the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The guest broke the contract.
    Violation(String),
    /// Too many contributions.
    ContributionLimit,
}

/// What the guest's memory and table growth is checked against.
pub struct Limiter {
    limits: RunLimits,
    memory_bytes: usize,
    table_elements: usize,
    /// Set when a memory request was refused.
    pub memory_refused: bool,
    /// Set when a table request was refused.
    pub table_refused: bool,
}

impl Limiter {
    fn new(limits: &RunLimits) -> Limiter {
        Limiter {
            limits: limits.clone(),
            memory_bytes: 0,
            table_elements: 0,
            memory_refused: false,
            table_refused: false,
        }
    }
}

impl Limiter {
    /// Linear memory the instance holds now (all memories together).
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_bytes
            .saturating_add(desired.saturating_sub(current));
        if total > self.limits.max_memory_bytes {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .table_elements
            .saturating_add(desired.saturating_sub(current));
        if total > self.limits.max_table_elements {
            self.table_refused = true;
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.max_instances
    }

    fn tables(&self) -> usize {
        self.limits.max_tables
    }

    fn memories(&self) -> usize {
        self.limits.max_memories
    }
}

/// The store data of one instance.
pub struct GuestState {
    wasi: WasiCtx,
    resources: ResourceTable,
    /// Memory and table accounting.
    pub limiter: Limiter,
    ctx: Arc<RunContext>,
    /// Isolated mode: the entity this instance serves.
    entity: Option<u32>,
    /// Isolated mode: the entity's bounded contributions.
    pub entity_contributions: EntityContributions,
    /// Table mode: bounded contributions per entity ordinal.
    pub table_contributions: Vec<EntityContributions>,
    contributions: u64,
    /// Why the host stopped the guest, if it did.
    pub stop: Option<Stop>,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.resources,
        }
    }
}

impl GuestState {
    /// State for one instance: `entity` is `Some` in isolated mode.
    pub fn new(ctx: Arc<RunContext>, entity: Option<u32>, wasi: WasiCtx) -> GuestState {
        GuestState {
            wasi,
            resources: ResourceTable::new(),
            limiter: Limiter::new(&ctx.limits),
            ctx,
            entity,
            entity_contributions: EntityContributions::default(),
            table_contributions: Vec::new(),
            contributions: 0,
            stop: None,
        }
    }

    /// Batched mode: the instance now serves `entity`, with nothing contributed yet. Returns
    /// what the previous entity contributed.
    pub fn next_entity(&mut self, entity: u32) -> EntityContributions {
        self.entity = Some(entity);
        self.contributions = 0;
        std::mem::take(&mut self.entity_contributions)
    }

    fn violation<T>(&mut self, what: String) -> wasmtime::Result<T> {
        self.stop = Some(Stop::Violation(what.clone()));
        Err(wasmtime::format_err!("contract violation: {what}"))
    }

    fn granted_table(&self, table: &str) -> Option<usize> {
        self.ctx.grants.iter().position(|g| g.name == table)
    }

    fn rows_in_scope(&self, grant: usize) -> std::ops::Range<usize> {
        let table = &self.ctx.dataset.tables[self.ctx.grants[grant].table];
        match self.entity {
            Some(e) => table.entity_rows(e),
            None => 0..table.rows(),
        }
    }
}

fn wit_type(ty: ColumnType) -> types::ColumnType {
    match ty {
        ColumnType::Int => types::ColumnType::Int,
        ColumnType::Float => types::ColumnType::Float,
        ColumnType::Bool => types::ColumnType::Boolean,
        ColumnType::Date => types::ColumnType::Date,
        ColumnType::Category => types::ColumnType::Category,
    }
}

impl types::Host for GuestState {}

impl schema::Host for GuestState {
    fn tables(&mut self) -> wasmtime::Result<Vec<TableInfo>> {
        let dataset = &self.ctx.dataset;
        Ok(self
            .ctx
            .grants
            .iter()
            .map(|g| TableInfo {
                name: g.name.clone(),
                columns: g
                    .columns
                    .iter()
                    .map(|&(ref name, c)| {
                        let column = &dataset.tables[g.table].guest_columns[c];
                        ColumnInfo {
                            name: name.clone(),
                            ty: wit_type(column.data.ty()),
                            dictionary_len: column
                                .dictionary
                                .as_ref()
                                .map_or(0, |d| d.len() as u32),
                        }
                    })
                    .collect(),
            })
            .collect())
    }

    fn dictionary(&mut self, table: String, column: String) -> wasmtime::Result<Vec<String>> {
        let Some(g) = self.granted_table(&table) else {
            return self.violation(format!(
                "asked for the dictionary of table '{table}', which was not granted"
            ));
        };
        let grant = &self.ctx.grants[g];
        let Some(&(_, c)) = grant.columns.iter().find(|(n, _)| *n == column) else {
            return self.violation(format!(
                "asked for the dictionary of {table}.{column}, which was not granted"
            ));
        };
        match &self.ctx.dataset.tables[grant.table].guest_columns[c].dictionary {
            Some(d) => Ok(d.to_vec()),
            None => self.violation(format!(
                "asked for the dictionary of {table}.{column}, which is not a category column"
            )),
        }
    }

    fn run_mode(&mut self) -> wasmtime::Result<types::Mode> {
        Ok(match self.ctx.mode {
            Mode::Isolated => types::Mode::Isolated,
            Mode::Table => types::Mode::Table,
        })
    }

    fn parameters(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.ctx.parameters.clone())
    }
}

impl data::Host for GuestState {
    fn row_count(&mut self, table: String) -> wasmtime::Result<u64> {
        match self.granted_table(&table) {
            Some(g) => Ok(self.rows_in_scope(g).len() as u64),
            None => self.violation(format!(
                "asked for rows of table '{table}', which was not granted"
            )),
        }
    }

    fn read(
        &mut self,
        table: String,
        columns: Vec<String>,
        first_row: u64,
        max_rows: u32,
    ) -> wasmtime::Result<Batch> {
        let Some(g) = self.granted_table(&table) else {
            return self.violation(format!("read table '{table}', which was not granted"));
        };
        let grant = &self.ctx.grants[g];
        let mut picked = Vec::with_capacity(columns.len());
        for name in &columns {
            match grant.columns.iter().find(|(n, _)| n == name) {
                Some(&(_, c)) => picked.push(c),
                None => {
                    return self
                        .violation(format!("read column {table}.{name}, which was not granted"));
                }
            }
        }
        let scope = self.rows_in_scope(g);
        let len = scope.len() as u64;
        let start = first_row.min(len);
        let take = u64::from(max_rows.min(self.ctx.limits.max_batch_rows)).min(len - start);
        let from = scope.start + start as usize;
        let to = from + take as usize;
        let source = &self.ctx.dataset.tables[grant.table];
        let values = picked
            .iter()
            .map(|&c| match &source.guest_columns[c].data {
                ColumnData::Int(v) => ColumnValues::Int(v[from..to].to_vec()),
                ColumnData::Float(v) => ColumnValues::Float(v[from..to].to_vec()),
                ColumnData::Bool(v) => ColumnValues::Boolean(v[from..to].to_vec()),
                ColumnData::Date(v) => ColumnValues::Date(v[from..to].to_vec()),
                ColumnData::Category(v) => ColumnValues::Category(v[from..to].to_vec()),
            })
            .collect();
        let entities = match self.entity {
            Some(_) => Vec::new(),
            None => source.entity_of_row[from..to]
                .iter()
                .map(|&e| self.ctx.entity_alias[e as usize])
                .collect(),
        };
        Ok(Batch {
            first_row: start,
            rows: take as u32,
            more: start + take < len,
            columns: values,
            entities,
        })
    }
}

impl contribute::Host for GuestState {
    fn contribute(&mut self, batch: contribute::Contributions) -> wasmtime::Result<()> {
        let ctx = Arc::clone(&self.ctx);
        let Some(metric) = ctx.manifest.metrics.get(batch.metric as usize) else {
            return self.violation(format!(
                "contributed to metric #{}, which the manifest does not declare",
                batch.metric
            ));
        };
        let n = batch.values.len();
        let arity = metric.key.len();
        if batch.keys.len() != n * arity {
            return self.violation(format!(
                "metric '{}': {} key indices for {n} values, expected {arity} per value",
                metric.name,
                batch.keys.len()
            ));
        }
        let limit = match self.entity {
            Some(_) => ctx.limits.max_contributions_per_entity,
            None => ctx.limits.max_contributions_per_table_run,
        };
        self.contributions = self.contributions.saturating_add(n as u64);
        if self.contributions > limit {
            self.stop = Some(Stop::ContributionLimit);
            return Err(wasmtime::format_err!(
                "contribution limit of {limit} reached"
            ));
        }
        let sizes = &ctx.domain_sizes[batch.metric as usize];
        for (i, key) in batch.keys.chunks_exact(arity.max(1)).enumerate() {
            for (part, (&index, &size)) in key.iter().zip(sizes).enumerate() {
                if index >= size {
                    let domain = match &metric.key[part] {
                        Domain::Column { table, column } => format!("{table}.{column}"),
                        Domain::Enumeration { name, .. } => name.clone(),
                    };
                    return self.violation(format!(
                        "metric '{}': group key part {part} is {index}, outside its public domain {domain} ({size} entries)",
                        metric.name
                    ));
                }
            }
            if batch.values[i].is_nan() {
                return self.violation(format!(
                    "metric '{}': contributed a value that is not a number",
                    metric.name
                ));
            }
        }
        let m = batch.metric as usize;
        match self.entity {
            Some(_) => {
                for (key, &value) in batch.keys.chunks_exact(arity).zip(&batch.values) {
                    ctx.bounds
                        .add(&mut self.entity_contributions, m, GroupKey::new(key), value);
                }
            }
            None => {
                let Some(g) = self.granted_table(&batch.source_table) else {
                    return self.violation(format!(
                        "contributions name rows of table '{}', which was not granted",
                        batch.source_table
                    ));
                };
                if batch.rows.len() != n {
                    return self.violation(format!(
                        "metric '{}': table mode needs one source row per value ({} rows for {n} values)",
                        metric.name,
                        batch.rows.len()
                    ));
                }
                let table = &ctx.dataset.tables[ctx.grants[g].table];
                for ((key, &value), &row) in batch
                    .keys
                    .chunks_exact(arity)
                    .zip(&batch.values)
                    .zip(&batch.rows)
                {
                    let Some(&entity) = table.entity_of_row.get(row as usize) else {
                        return self.violation(format!(
                            "metric '{}': source row {row} is past the end of table '{}'",
                            metric.name, batch.source_table
                        ));
                    };
                    // Indexed by entity ordinal: one slot per entity, no hashing per contribution.
                    if self.table_contributions.is_empty() {
                        self.table_contributions
                            .resize_with(ctx.dataset.entities(), EntityContributions::default);
                    }
                    let Some(cell) = self.table_contributions.get_mut(entity as usize) else {
                        return self.violation(format!(
                            "metric '{}': source row {row} names no entity",
                            metric.name
                        ));
                    };
                    ctx.bounds.add(cell, m, GroupKey::new(key), value);
                }
            }
        }
        Ok(())
    }
}
