//! # strongroom-guest: write a Strongroom query module
//!
//! This crate sits on the **guest side of the guest boundary**: it is what a partner compiles
//! into the WebAssembly component that runs inside a bank's room. The room hands the module rows
//! in columnar batches (never identifiers or entity keys) and the module *contributes* values to
//! metrics it declared; the room, not the module, aggregates and decides what leaves.
//!
//! A module has three parts, all plain Rust:
//!
//! ```ignore
//! use strongroom_guest::prelude::*;
//!
//! // 1. Typed rows: fields map to columns by name; types are checked before the run.
//! #[derive(Row)]
//! #[row(table = "transactions")]
//! struct Transaction { mcc_group: Category, amount: f64 }
//!
//! // 2. Declarations: metrics, group keys and their public domains.
//! const BY_MCC: &[Domain] = &[Domain::column("transactions", "mcc_group")];
//! const SPEND: Metric = Metric::sum("spend", BY_MCC, 0.0, 5_000.0).max_contributions_per_group(50);
//!
//! // 3. The manifest (embedded in the module, covered by its hash) and the entry point.
//! strongroom_guest::query! {
//!     manifest: Manifest {
//!         name: "spend-by-mcc", version: "0.1.0", mode: Mode::Isolated,
//!         reads: &[Transaction::READS], metrics: &[SPEND], max_groups_per_entity: 10,
//!     },
//!     run: run,
//! }
//!
//! fn run() -> Result<(), QueryError> {
//!     for tx in rows::<Transaction>() {
//!         SPEND.add(&[tx.mcc_group.index()], tx.amount);
//!     }
//!     Ok(())
//! }
//! ```
//!
//! `cargo build --target wasm32-wasip2 --release` then gives a component ready to submit.
//! docs/guest-sdk.md walks through it from `cargo new` to a result.

#[cfg(all(target_arch = "wasm32", feature = "arena"))]
pub mod arena;
#[doc(hidden)]
pub mod bindings;
#[cfg(not(feature = "wit-0-1"))]
mod cells;
mod contribute;
pub mod manifest;
mod rows;

pub use contribute::{Contribute, flush};
pub use manifest::{ColumnSpec, ColumnType, Domain, Manifest, Metric, MetricKind, Mode, TableRead};
pub use rows::{Batch, Category, Date, FromColumn, Row, RowId, batches, column_batches, rows};
pub use strongroom_guest_derive::Row;

#[cfg(all(target_arch = "wasm32", feature = "arena"))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena;

use bindings::strongroom::query::schema as wit_schema;
use bindings::strongroom::query::types as wit_types;

/// Why a module gave up. The text reaches the bank's audit log only; the partner sees a coarse
/// outcome code (or, in `strongroom dev run` on its own data, the text itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for QueryError {
    fn from(s: String) -> Self {
        QueryError(s)
    }
}

impl From<&str> for QueryError {
    fn from(s: &str) -> Self {
        QueryError(s.to_string())
    }
}

/// What the room tells a module about the data it may read: shape and public dictionaries.
pub mod schema {
    use super::{ColumnType, wit_schema, wit_types};

    /// A column the module may read.
    #[derive(Debug, Clone)]
    pub struct ColumnInfo {
        /// Column name.
        pub name: String,
        /// Its type.
        pub ty: ColumnType,
        /// Size of its public dictionary (category columns).
        pub dictionary_len: u32,
    }

    /// A table the module may read.
    #[derive(Debug, Clone)]
    pub struct TableInfo {
        /// Table name.
        pub name: String,
        /// The columns granted to this module.
        pub columns: Vec<ColumnInfo>,
    }

    /// The tables and columns this module may read.
    pub fn tables() -> Vec<TableInfo> {
        wit_schema::tables()
            .into_iter()
            .map(|t| TableInfo {
                name: t.name,
                columns: t
                    .columns
                    .into_iter()
                    .map(|c| ColumnInfo {
                        name: c.name,
                        ty: match c.ty {
                            wit_types::ColumnType::Int => ColumnType::Int,
                            wit_types::ColumnType::Float => ColumnType::Float,
                            wit_types::ColumnType::Boolean => ColumnType::Bool,
                            wit_types::ColumnType::Date => ColumnType::Date,
                            wit_types::ColumnType::Category => ColumnType::Category,
                        },
                        dictionary_len: c.dictionary_len,
                    })
                    .collect(),
            })
            .collect()
    }

    /// The public dictionary of a category column (index = [`crate::Category::index`]).
    pub fn dictionary(table: &str, column: &str) -> Vec<String> {
        wit_schema::dictionary(table, column)
    }

    /// The job's parameters (name, value), sorted by name, as the partner submitted them.
    pub fn parameters() -> Vec<(String, String)> {
        wit_schema::parameters()
    }

    /// One parameter's value, if the job has it.
    pub fn parameter(name: &str) -> Option<String> {
        parameters()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Whether this run is isolated (one entity at a time, batched or not) or table mode.
    pub fn mode() -> crate::Mode {
        match wit_schema::run_mode() {
            wit_types::Mode::Table => crate::Mode::Table,
            _ => crate::Mode::Isolated,
        }
    }
}

/// For an engine module: a module the bank approves once that runs queries it receives as data
/// (the SQL engine runs compiled SQL plans). Its manifest is not a constant: the room derives it
/// from the query and checks the engine's cells against it, as for any module; the engine builds
/// the same manifest from the same plan with [`engine::leak`]-ed values and declares it with
/// [`crate::engine!`]. Engines need version 0.2 of the contract (rows pushed into the call):
/// built against 0.1, an engine compiles but every run fails, saying so.
pub mod engine {
    pub use crate::bindings::strongroom::query::types::ColumnValues;

    /// Calls `f` with the current customer's rows of every table the manifest reads (in the
    /// manifest's order): each table's columns, in the manifest's column order, and the range of
    /// rows that are this customer's. `None` outside a call (table mode).
    pub fn with_customer_tables<R>(
        f: impl FnOnce(&[&[ColumnValues]], &[std::ops::Range<usize>]) -> R,
    ) -> Option<R> {
        #[cfg(not(feature = "wit-0-1"))]
        return crate::cells::with_entity_tables(f);
        #[cfg(feature = "wit-0-1")]
        {
            let _ = f;
            None
        }
    }

    /// Makes a value live as long as the instance (an instance serves one call, or one batch,
    /// then is thrown away), for a manifest built at run time.
    pub fn leak<T>(value: T) -> &'static T {
        Box::leak(Box::new(value))
    }

    /// Makes a string live as long as the instance.
    pub fn leak_str(value: &str) -> &'static str {
        Box::leak(value.to_string().into_boxed_str())
    }

    /// Makes a vector's items live as long as the instance.
    pub fn leak_slice<T>(value: Vec<T>) -> &'static [T] {
        Box::leak(value.into_boxed_slice())
    }
}

/// Everything a query module usually needs.
pub mod prelude {
    pub use crate::{
        Batch, Category, Contribute, Date, Domain, Manifest, Metric, Mode, QueryError, Row, RowId,
        batches, column_batches, contribute, rows, schema,
    };
}

/// Version 0.1: `run` is called once per entity (or once in table mode) and contributions go to
/// the host as they are made.
#[cfg(feature = "wit-0-1")]
#[doc(hidden)]
pub fn __run(
    manifest: &'static Manifest,
    run: fn() -> Result<(), QueryError>,
) -> Result<(), String> {
    contribute::install(manifest);
    let result = run();
    // Contributions made before an error are still handed over: the host decides (a failed run
    // releases nothing). Flushing always keeps behaviour identical whether or not it failed.
    flush();
    result.map_err(|e| e.0)
}

/// Version 0.2: the partner's `run` is called once per entity of the call, each seeing only its
/// own rows, and each entity's contributions are bounded here exactly as the room bounds 0.1
/// contributions, then returned as cells (which the room checks). In table mode (no entities)
/// `run` is called once and contributions go to the host as in 0.1.
#[cfg(not(feature = "wit-0-1"))]
#[doc(hidden)]
pub fn __run(
    manifest: &'static Manifest,
    run: fn() -> Result<(), QueryError>,
    batch: bindings::strongroom::query::types::Entities,
) -> Result<bindings::strongroom::query::types::Cells, String> {
    contribute::install(manifest);
    if batch.count == 0 {
        let result = run();
        flush();
        result.map_err(|e| e.0)?;
        return Ok(cells::Cells::default().into_wit(cells::NO_BOUNDING));
    }
    cells::run_entities(manifest, run, batch).map_err(|e| e.0)
}

/// Contributes to a metric with its use checked when the module compiles: the metric must be
/// listed in the manifest (`query!`, at the crate's root) and the key must have one part per
/// domain of the metric's key; either mistake is a compile error, not a failed run.
///
/// ```ignore
/// contribute!(SPEND, [tx.mcc_group.index(), age], tx.amount); // a value
/// contribute!(PURCHASES, [tx.mcc_group.index(), age]);         // one (a count, distinct)
/// ```
// `crate::__STRONGROOM_MANIFEST` is the calling crate's, which `query!` defines at its root.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! contribute {
    ($metric:expr, [$($part:expr),+ $(,)?], $value:expr $(,)?) => {{
        const _: () = $crate::manifest::check_use(
            &crate::__STRONGROOM_MANIFEST,
            &$metric,
            [$($crate::__one!($part)),+].len(),
        );
        $crate::Contribute::add(&$metric, &[$($part),+], $value)
    }};
    ($metric:expr, [$($part:expr),+ $(,)?] $(,)?) => {{
        const _: () = $crate::manifest::check_use(
            &crate::__STRONGROOM_MANIFEST,
            &$metric,
            [$($crate::__one!($part)),+].len(),
        );
        $crate::Contribute::add_one(&$metric, &[$($part),+])
    }};
}

/// One `()` per key part, to count them in a constant (used by [`contribute!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __one {
    ($part:expr) => {
        ()
    };
}

/// Declares the module: embeds the manifest as the `strongroom-manifest` custom section and
/// exports `run`. Use it once per module.
#[macro_export]
macro_rules! query {
    (manifest: $manifest:expr, run: $run:path $(,)?) => {
        const __STRONGROOM_MANIFEST: $crate::Manifest = $manifest;
        #[used]
        #[unsafe(link_section = "strongroom-manifest")]
        static __STRONGROOM_MANIFEST_SECTION: [u8; $crate::manifest::encoded_len(&__STRONGROOM_MANIFEST)] =
            $crate::manifest::encode(&__STRONGROOM_MANIFEST);
        static __STRONGROOM_MANIFEST_STATIC: $crate::Manifest = __STRONGROOM_MANIFEST;

        struct __StrongroomQuery;
        $crate::__export_run!(__StrongroomQuery, __STRONGROOM_MANIFEST_STATIC, $run);
        $crate::bindings::__export_query!(__StrongroomQuery with_types_in $crate::bindings);
    };
}

/// Declares an engine module: `section` is the manifest embedded in the module (what vetting
/// reads, and what a run without a query sees); `manifest` is a function giving the manifest of
/// the query this run carries, which the SDK bounds contributions by. Only for version 0.2.
#[cfg(not(feature = "wit-0-1"))]
#[macro_export]
macro_rules! engine {
    (section: $section:expr, manifest: $manifest:path, run: $run:path $(,)?) => {
        const __STRONGROOM_MANIFEST: $crate::Manifest = $section;
        #[used]
        #[unsafe(link_section = "strongroom-manifest")]
        static __STRONGROOM_MANIFEST_SECTION: [u8; $crate::manifest::encoded_len(&__STRONGROOM_MANIFEST)] =
            $crate::manifest::encode(&__STRONGROOM_MANIFEST);

        struct __StrongroomEngine;
        impl $crate::bindings::Guest for __StrongroomEngine {
            fn run(
                batch: $crate::bindings::strongroom::query::types::Entities,
            ) -> ::core::result::Result<
                $crate::bindings::strongroom::query::types::Cells,
                ::std::string::String,
            > {
                let manifest: &'static $crate::Manifest = $manifest()?;
                $crate::__run(manifest, $run, batch)
            }
        }
        $crate::bindings::__export_query!(__StrongroomEngine with_types_in $crate::bindings);
    };
}

/// Declares an engine module (see the version 0.2 `engine!`): built against version 0.1, the
/// module compiles, and each run fails with the reason.
#[cfg(feature = "wit-0-1")]
#[macro_export]
macro_rules! engine {
    (section: $section:expr, manifest: $manifest:path, run: $run:path $(,)?) => {
        $crate::query! { manifest: $section, run: __strongroom_engine_needs_0_2 }
        fn __strongroom_engine_needs_0_2() -> ::core::result::Result<(), $crate::QueryError> {
            let _ = $manifest
                as fn() -> ::core::result::Result<&'static $crate::Manifest, ::std::string::String>;
            let _ = $run as fn() -> ::core::result::Result<(), $crate::QueryError>;
            Err(
                "this engine was built against version 0.1 of the contract; engines need 0.2"
                    .into(),
            )
        }
    };
}

/// The `run` export of the contract version this SDK was built for (used by [`query!`]).
#[cfg(feature = "wit-0-1")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_run {
    ($query:ident, $manifest:ident, $run:path) => {
        impl $crate::bindings::Guest for $query {
            fn run() -> ::core::result::Result<(), ::std::string::String> {
                $crate::__run(&$manifest, $run)
            }
        }
    };
}

/// The `run` export of the contract version this SDK was built for (used by [`query!`]).
#[cfg(not(feature = "wit-0-1"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_run {
    ($query:ident, $manifest:ident, $run:path) => {
        impl $crate::bindings::Guest for $query {
            fn run(
                batch: $crate::bindings::strongroom::query::types::Entities,
            ) -> ::core::result::Result<
                $crate::bindings::strongroom::query::types::Cells,
                ::std::string::String,
            > {
                $crate::__run(&$manifest, $run, batch)
            }
        }
    };
}
