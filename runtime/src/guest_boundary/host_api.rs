//! Every function a guest can call that is ours: the `strongroom:query` imports. A reviewer reads
//! this one file to know what a query module can ask of the room. (The only other imports a
//! module may have are the virtual WASI interfaces in `wasi.rs`.)
//!
//! Rules enforced here, on every call:
//! - only the tables and columns the manifest declared (and the run granted) exist; entity keys and
//!   identifier columns are not even nameable;
//! - isolated mode sees one entity's rows; table mode sees whole tables;
//! - a contribution names a declared metric, a group key inside its public domains, a finite
//!   value, and (table mode) a real row; anything else is a contract violation that ends the run;
//! - version 0.2 modules read and contribute through these imports in table mode only (in
//!   isolated and batched mode the host pushes rows into `run` and checks the cells it returns:
//!   `crate::output_gate::ContributionBounds::accept_cells`).
//!
//! Both versions of the world (`contract/wit/0.1`, `contract/wit/0.2`) share these rules: each
//! import below is written once, and [`imports!`] binds it to both versions' traits.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::wasi::{self, CapturedOutput};

use super::RunContext;
use super::limits::RunLimits;
use crate::dataset::ColumnData;
use crate::output_gate::{EntityContributions, GroupKey};
use strongroom_contract::manifest::{ColumnType, Domain, Mode};

use strongroom_contract::host::{v0_1, v0_2};

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
    /// Made when the guest first calls a WASI function: most instances never do, and making a
    /// context (its generators, its table of streams) would otherwise be part of every unit.
    wasi: Option<WasiCtx>,
    output: CapturedOutput,
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

/// A column's values for a range of rows, before they become either version's `column-values`.
pub enum ColumnSlice<'a> {
    /// Integers.
    Int(&'a [i64]),
    /// Floats.
    Float(&'a [f64]),
    /// Booleans.
    Bool(&'a [bool]),
    /// Dates.
    Date(&'a [i32]),
    /// Dictionary indices.
    Category(&'a [u32]),
}

impl ColumnSlice<'_> {
    /// Rows `range` of `data`.
    pub fn of(data: &ColumnData, range: std::ops::Range<usize>) -> ColumnSlice<'_> {
        match data {
            ColumnData::Int(v) => ColumnSlice::Int(&v[range]),
            ColumnData::Float(v) => ColumnSlice::Float(&v[range]),
            ColumnData::Bool(v) => ColumnSlice::Bool(&v[range]),
            ColumnData::Date(v) => ColumnSlice::Date(&v[range]),
            ColumnData::Category(v) => ColumnSlice::Category(&v[range]),
        }
    }
}

/// Converts a [`ColumnSlice`] into one version's `column-values` (the two are the same shape).
macro_rules! column_values {
    ($version:ident, $slice:expr) => {
        match $slice {
            ColumnSlice::Int(v) => {
                $version::strongroom::query::types::ColumnValues::Int(v.to_vec())
            }
            ColumnSlice::Float(v) => {
                $version::strongroom::query::types::ColumnValues::Float(v.to_vec())
            }
            ColumnSlice::Bool(v) => {
                $version::strongroom::query::types::ColumnValues::Boolean(v.to_vec())
            }
            ColumnSlice::Date(v) => {
                $version::strongroom::query::types::ColumnValues::Date(v.to_vec())
            }
            ColumnSlice::Category(v) => {
                $version::strongroom::query::types::ColumnValues::Category(v.to_vec())
            }
        }
    };
}
pub(crate) use column_values;

/// A `read` call's answer, before it becomes either version's `batch`.
struct Rows<'a> {
    first_row: u64,
    rows: u32,
    more: bool,
    columns: Vec<ColumnSlice<'a>>,
    entities: Vec<u32>,
}

/// A `contribute` call's argument, from either version.
struct Contributions {
    metric: u32,
    keys: Vec<u32>,
    values: Vec<f64>,
    source_table: String,
    rows: Vec<u64>,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (keys, output) = (&self.ctx.keys, &self.output);
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| wasi::context(keys, output)),
            table: &mut self.resources,
        }
    }
}

impl GuestState {
    /// State for one instance, its WASI writing to `output`: `entity` is `Some` in isolated
    /// mode.
    pub fn new(ctx: Arc<RunContext>, entity: Option<u32>, output: &CapturedOutput) -> GuestState {
        GuestState {
            wasi: None,
            output: output.clone(),
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

    /// Version 0.2 in isolated or batched mode: rows arrive in `run` and cells leave it, so the
    /// pull and contribute imports (table mode's) are a contract violation.
    fn table_mode_only<T>(&mut self, what: &str) -> Option<wasmtime::Result<T>> {
        (self.ctx.mode != Mode::Table).then(|| {
            self.violation(format!(
                "called {what}, which version 0.2 of the contract offers in table mode only (rows arrive in `run`)"
            ))
        })
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

/// A granted table, as `schema.tables` describes it: its name, and each column's name, type and
/// dictionary size.
type TableShape = (String, Vec<(String, ColumnType, u32)>);

impl GuestState {
    fn tables(&self) -> Vec<TableShape> {
        let dataset = &self.ctx.dataset;
        self.ctx
            .grants
            .iter()
            .map(|g| {
                let columns = g
                    .columns
                    .iter()
                    .map(|&(ref name, c)| {
                        let column = &dataset.tables[g.table].guest_columns[c];
                        let len = column.dictionary.as_ref().map_or(0, |d| d.len() as u32);
                        (name.clone(), column.data.ty(), len)
                    })
                    .collect();
                (g.name.clone(), columns)
            })
            .collect()
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
    ) -> wasmtime::Result<Rows<'_>> {
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
        let ctx = &self.ctx;
        let source = &ctx.dataset.tables[ctx.grants[g].table];
        let entities = match self.entity {
            Some(_) => Vec::new(),
            None => source.entity_of_row[from..to]
                .iter()
                .map(|&e| ctx.entity_alias[e as usize])
                .collect(),
        };
        Ok(Rows {
            first_row: start,
            rows: take as u32,
            more: start + take < len,
            columns: picked
                .iter()
                .map(|&c| ColumnSlice::of(&source.guest_columns[c].data, from..to))
                .collect(),
            entities,
        })
    }

    fn contribute(&mut self, batch: Contributions) -> wasmtime::Result<()> {
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

/// Binds the imports above to one version's traits. `$table_only` is true for version 0.2,
/// whose `data` and `contribute` exist for table mode alone; `$mode` maps the run's mode.
macro_rules! imports {
    ($version:ident, $table_only:expr, $mode:expr) => {
        impl $version::strongroom::query::types::Host for GuestState {}

        impl $version::strongroom::query::schema::Host for GuestState {
            fn tables(
                &mut self,
            ) -> wasmtime::Result<Vec<$version::strongroom::query::types::TableInfo>> {
                use $version::strongroom::query::types::{ColumnInfo, ColumnType as Ty, TableInfo};
                Ok(GuestState::tables(self)
                    .into_iter()
                    .map(|(name, columns)| TableInfo {
                        name,
                        columns: columns
                            .into_iter()
                            .map(|(name, ty, dictionary_len)| ColumnInfo {
                                name,
                                ty: match ty {
                                    ColumnType::Int => Ty::Int,
                                    ColumnType::Float => Ty::Float,
                                    ColumnType::Bool => Ty::Boolean,
                                    ColumnType::Date => Ty::Date,
                                    ColumnType::Category => Ty::Category,
                                },
                                dictionary_len,
                            })
                            .collect(),
                    })
                    .collect())
            }

            fn dictionary(
                &mut self,
                table: String,
                column: String,
            ) -> wasmtime::Result<Vec<String>> {
                GuestState::dictionary(self, table, column)
            }

            fn run_mode(&mut self) -> wasmtime::Result<$version::strongroom::query::types::Mode> {
                let mode: fn(&GuestState) -> $version::strongroom::query::types::Mode = $mode;
                Ok(mode(self))
            }

            fn parameters(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
                Ok(self.ctx.parameters.clone())
            }
        }

        impl $version::strongroom::query::data::Host for GuestState {
            fn row_count(&mut self, table: String) -> wasmtime::Result<u64> {
                if $table_only {
                    if let Some(refused) = self.table_mode_only("data.row-count") {
                        return refused;
                    }
                }
                GuestState::row_count(self, table)
            }

            fn read(
                &mut self,
                table: String,
                columns: Vec<String>,
                first_row: u64,
                max_rows: u32,
            ) -> wasmtime::Result<$version::strongroom::query::types::Batch> {
                if $table_only {
                    if let Some(refused) = self.table_mode_only("data.read") {
                        return refused;
                    }
                }
                let rows = GuestState::read(self, table, columns, first_row, max_rows)?;
                Ok($version::strongroom::query::types::Batch {
                    first_row: rows.first_row,
                    rows: rows.rows,
                    more: rows.more,
                    columns: rows
                        .columns
                        .into_iter()
                        .map(|c| column_values!($version, c))
                        .collect(),
                    entities: rows.entities,
                })
            }
        }

        impl $version::strongroom::query::contribute::Host for GuestState {
            fn contribute(
                &mut self,
                batch: $version::strongroom::query::contribute::Contributions,
            ) -> wasmtime::Result<()> {
                if $table_only {
                    if let Some(refused) = self.table_mode_only("contribute") {
                        return refused;
                    }
                }
                GuestState::contribute(
                    self,
                    Contributions {
                        metric: batch.metric,
                        keys: batch.keys,
                        values: batch.values,
                        source_table: batch.source_table,
                        rows: batch.rows,
                    },
                )
            }
        }
    };
}

imports!(v0_1, false, |state| match state.ctx.mode {
    Mode::Isolated => v0_1::strongroom::query::types::Mode::Isolated,
    Mode::Table => v0_1::strongroom::query::types::Mode::Table,
});

imports!(v0_2, true, |state| match state.ctx.mode {
    Mode::Isolated if state.ctx.batched => v0_2::strongroom::query::types::Mode::Batched,
    Mode::Isolated => v0_2::strongroom::query::types::Mode::Isolated,
    Mode::Table => v0_2::strongroom::query::types::Mode::Table,
});
