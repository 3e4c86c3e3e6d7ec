//! # strongroom-sql: a partner's SQL, compiled outside the sandbox
//!
//! A partner writes one query in a dialect that follows BigQuery's differential-privacy clause
//! (`SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (...)`, contribution bounds on each aggregate;
//! docs/sql.md lists every difference). This crate parses it with `sqlparser`, checks it against
//! the tables and columns the bank's schema grants, and compiles it to:
//!
//! - a typed [`Plan`] (crate `strongroom-sql-plan`), which the bank-approved SQL engine module
//!   evaluates inside the sandbox one customer at a time; and
//! - the [`Manifest`] derived from that plan: what it reads, its metrics with their bounds, the
//!   public domains of its group key, the groups per customer. The room checks it exactly as it
//!   checks the manifest a compiled module carries, and bounds the engine's cells by it.
//!
//! The customer is the implicit join key and the privacy unit: every table holds one customer's
//! rows while the plan runs, so a query cannot compare two customers. Group keys come only from
//! public domains; aggregates carry explicit bounds. Anything else is refused here with the line
//! and column, what is not allowed and what would be ([`SqlError`]).

mod catalog;
mod clause;
mod compile;
mod manifest;

pub use catalog::{Catalog, CatalogColumn, CatalogTable};
pub use manifest::manifest_of;
pub use strongroom_sql_plan::{self as plan, PLAN_PARAMETER, Plan};

use strongroom_contract::manifest::Manifest;

/// Name of the manifest a SQL query's plan derives (the module name the room shows for it).
pub const MANIFEST_NAME: &str = "sql";
/// The name the SQL engine module gives itself in its own manifest.
pub const ENGINE_NAME: &str = "strongroom-sql-engine";
/// Longest query text, bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Why a query was refused: where (1-based line and column of the query text) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SqlError {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
    /// What is not allowed, and what would be.
    pub message: String,
}

impl SqlError {
    pub(crate) fn at(loc: sqlparser::tokenizer::Location, message: impl Into<String>) -> SqlError {
        SqlError {
            line: loc.line.max(1),
            column: loc.column.max(1),
            message: message.into(),
        }
    }
}

/// A compiled query.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The plan the engine runs.
    pub plan: Plan,
    /// The manifest derived from the plan, checked as a module's would be.
    pub manifest: Manifest,
    /// The query in normal form (comments, spacing and keyword case do not matter): what a
    /// template's hash covers. Named parameters stay as written.
    pub normalized: String,
    /// SHA-256 of [`Compiled::normalized`], hex: the query's identity (a template's hash).
    pub query_sha256: String,
    /// SHA-256 of the plan's bytes, hex.
    pub plan_sha256: String,
    /// Each released metric as the query wrote it, with how one customer's rows become its
    /// contributions, for `strongroom sql explain`.
    pub metrics: Vec<MetricSource>,
}

/// Where a released metric comes from in the query.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSource {
    /// The metric's name.
    pub name: String,
    /// The aggregate as written.
    pub sql: String,
    /// How one customer's rows become contributions, in words.
    pub bounding: String,
}

/// Compiles `text` against `catalog`, with the job's named parameters (`@name` in the query).
pub fn compile(
    text: &str,
    catalog: &Catalog,
    parameters: &[(String, String)],
) -> Result<Compiled, SqlError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(SqlError {
            line: 1,
            column: 1,
            message: format!(
                "the query is {} bytes; at most {MAX_QUERY_BYTES}",
                text.len()
            ),
        });
    }
    let parsed = clause::parse(text)?;
    let (plan, metrics) = compile::compile(&parsed, catalog, parameters)?;
    let manifest = manifest_of(&plan).map_err(|e| SqlError {
        line: 1,
        column: 1,
        message: format!("the query's manifest is not acceptable: {e}"),
    })?;
    let plan_sha256 = sha256_hex(&plan.to_bytes());
    Ok(Compiled {
        plan,
        manifest,
        query_sha256: sha256_hex(parsed.normalized.as_bytes()),
        normalized: parsed.normalized,
        plan_sha256,
        metrics,
    })
}

/// The template hash of `text` (SHA-256 of its normal form) without compiling it against a
/// schema: what a bank lists in a policy's `sql.templates`.
pub fn template_sha256(text: &str) -> Result<String, SqlError> {
    let parsed = clause::parse(text)?;
    Ok(sha256_hex(parsed.normalized.as_bytes()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}
