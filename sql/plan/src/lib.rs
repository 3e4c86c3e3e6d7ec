//! # strongroom-sql-plan: what a SQL query becomes
//!
//! The room compiles a partner's SQL (crate `strongroom-sql`, outside the sandbox) into a
//! [`Plan`]: typed expressions over the columns the query reads, the per-customer relations
//! (CTEs and subqueries) it builds, the group key's public domains, and the metrics it
//! contributes to with their bounds. The SQL engine module (`examples/sql-engine`, built with
//! the guest SDK and approved by the bank by hash) receives the plan's bytes and evaluates it
//! inside the sandbox, one customer at a time, with [`eval::run_customer`].
//!
//! This crate is the boundary between the two: the types, their one encoding
//! ([`Plan::to_bytes`], [`Plan::from_bytes`]) and the evaluator. It has no I/O and builds for
//! the host and for `wasm32-wasip2`. The plan says nothing the room does not check again: the
//! room derives the manifest from the plan it compiled and checks every cell the engine returns
//! against it, exactly as for a module a partner wrote by hand.

#![no_std]
extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

pub mod eval;

/// The version of the plan layout; the engine refuses plans of another version.
pub const PLAN_VERSION: u16 = 1;
/// The name under which the engine finds the plan (hex) among the run's parameters; the
/// room adds it for SQL jobs only, beside no other parameter.
pub const PLAN_PARAMETER: &str = "strongroom_sql_plan";
/// Most tables and relations one `FROM` joins.
pub const MAX_SOURCES: usize = 8;
/// Most parts a group key has (the manifest's limit).
pub const MAX_KEY_PARTS: usize = 4;

/// A compiled query: everything the engine needs, nothing about the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_VERSION`].
    pub version: u16,
    /// The manifest name the room gives the query's module view (e.g. `sql`).
    pub name: String,
    /// Distinct groups one customer may contribute to, per metric.
    pub max_groups_per_entity: u32,
    /// The base tables read, with the columns in the order the room pushes them.
    pub tables: Vec<TableRead>,
    /// The public domain of each group key part.
    pub domains: Vec<Domain>,
    /// The released metrics, in the manifest's order.
    pub metrics: Vec<Metric>,
    /// Per-customer relations (CTEs, subqueries in `FROM`), each after those it reads.
    pub relations: Vec<Relation>,
    /// The differentially private `SELECT`: its rows, its filter and its group key.
    pub body: Body,
}

/// A column's type, as the room's schema names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    /// 64-bit signed integer.
    Int,
    /// 64-bit float.
    Float,
    /// Boolean.
    Bool,
    /// Days since 1970-01-01.
    Date,
    /// Index into the column's public dictionary.
    Category,
}

/// The columns read from one base table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRead {
    /// Table name.
    pub table: String,
    /// (column, type), in the order the room pushes them.
    pub columns: Vec<(String, ColumnType)>,
}

/// The public domain of one group key part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Domain {
    /// A category column's dictionary.
    Column {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
    /// Labels written in the query (a `CASE`'s literal outputs, a date part's range, true and
    /// false), in index order.
    Enumeration {
        /// Name (the key's alias).
        name: String,
        /// Members, in index order.
        members: Vec<String>,
    },
}

/// What a metric computes per group, as the manifest says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricKind {
    /// Sum of the contributions.
    Sum,
    /// Number of contributions.
    Count,
    /// Mean of the contributions.
    Mean,
    /// Number of distinct customers.
    Distinct,
}

/// How a customer's rows become contributions to a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Contribution {
    /// Every row in a group contributes (its value, or one for a count), up to the metric's
    /// `max_contributions_per_group`, in row order.
    EachRow,
    /// The customer's rows in a group are summed first; the total is one contribution.
    GroupTotal,
    /// The customer's rows in a group are averaged first; the mean is one contribution.
    GroupMean,
}

/// A released metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Name (the aggregate's alias).
    pub name: String,
    /// What the room computes from the contributions.
    pub kind: MetricKind,
    /// Each contribution is clamped into `[lower, upper]`.
    pub lower: f64,
    /// See `lower`.
    pub upper: f64,
    /// Decimal places kept.
    pub decimals: u8,
    /// Contributions one customer may make to one group.
    pub max_contributions_per_group: u32,
    /// How rows become contributions.
    pub contribution: Contribution,
    /// The aggregated expression: `None` for `COUNT(*)` and distinct customers. A row whose
    /// value is NULL contributes nothing (a count counts the rows where it is not NULL).
    pub value: Option<Expr>,
}

/// The rows of a `FROM`: a first source, then each joined one. The customer is the implicit
/// join key: every source holds the current customer's rows only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct From {
    /// The first source.
    pub first: Source,
    /// The sources joined to it, in order.
    pub joins: Vec<Join>,
}

/// A joined source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// The source.
    pub source: Source,
    /// `LEFT JOIN`: a row with no match is kept once, with this source's columns NULL.
    pub left: bool,
    /// The join condition beyond the customer (over this and earlier sources).
    pub on: Option<Expr>,
}

/// Where rows come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// A base table, by index into [`Plan::tables`].
    Table(u16),
    /// A per-customer relation, by index into [`Plan::relations`].
    Relation(u16),
}

/// A per-customer relation: a CTE or a subquery in `FROM`, evaluated on one customer's rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Relation {
    /// Its rows.
    pub from: From,
    /// `WHERE`.
    pub filter: Option<Expr>,
    /// Projection or aggregation.
    pub shape: Shape,
}

/// What a relation does with its rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    /// One output row per input row: these expressions.
    Project(Vec<Expr>),
    /// Grouped (per customer, then by `keys`): one output row per group, or exactly one row when
    /// there are no keys. `having` and `outputs` read the grouped row: the keys, then the
    /// aggregates, as source 0.
    Aggregate {
        /// `GROUP BY` expressions.
        keys: Vec<Expr>,
        /// The aggregates computed per group.
        aggregates: Vec<Aggregate>,
        /// `HAVING`.
        having: Option<Expr>,
        /// The `SELECT` list.
        outputs: Vec<Expr>,
    },
}

/// An aggregate inside a per-customer relation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// The function.
    pub func: AggregateFn,
    /// Its argument; `None` for `COUNT(*)`.
    pub arg: Option<Expr>,
    /// `DISTINCT` (for `COUNT`).
    pub distinct: bool,
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggregateFn {
    /// `COUNT`: never NULL.
    Count,
    /// `SUM`: NULL over no non-NULL values.
    Sum,
    /// `AVG`: a float; NULL over no non-NULL values.
    Avg,
    /// `MIN`.
    Min,
    /// `MAX`.
    Max,
}

/// The differentially private `SELECT`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// Its rows.
    pub from: From,
    /// `WHERE`.
    pub filter: Option<Expr>,
    /// The group key, one part per [`Plan::domains`] entry.
    pub keys: Vec<Key>,
}

/// One part of the group key: an expression and how its value becomes an index into the
/// part's public domain. A row whose key is NULL contributes to no group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// The expression.
    pub expr: Expr,
    /// Value to index.
    pub index: KeyIndex,
}

/// How a key value becomes an index into its domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum KeyIndex {
    /// A category value is already its index.
    Category,
    /// false is 0, true is 1.
    Bool,
    /// An integer in `[min, min + size)` is `value - min`.
    Range {
        /// Smallest value.
        min: i64,
        /// Number of values.
        size: u32,
    },
    /// The position of the value in this list.
    List(Vec<i64>),
}

/// A value while a query runs. Text exists only in the query and is resolved before the run:
/// a label of a category column or of a `CASE`'s outputs is its index.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// 64-bit integer.
    Int(i64),
    /// 64-bit float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Index into a public dictionary or enumeration.
    Category(u32),
}

/// An expression over one row of a `FROM`: its sources' columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// Column `column` of source `source` (0 the first source of the `FROM`, then each join).
    Column {
        /// Source.
        source: u8,
        /// Column within it.
        column: u16,
    },
    /// A constant (named parameters are substituted when the query compiles).
    Literal(Value),
    /// `NOT e`.
    Not(Box<Expr>),
    /// `-e`.
    Neg(Box<Expr>),
    /// `e IS NULL` (or `IS NOT NULL` when `negated`).
    IsNull {
        /// The operand.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// A binary operator.
    Binary {
        /// Operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `e [NOT] IN (list)`.
    InList {
        /// The operand.
        expr: Box<Expr>,
        /// The list.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] BETWEEN low AND high`.
    Between {
        /// The operand.
        expr: Box<Expr>,
        /// Lower end, included.
        low: Box<Expr>,
        /// Upper end, included.
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `CASE WHEN c THEN r ... [ELSE e] END` (a simple `CASE x WHEN v` is compiled to this).
    Case {
        /// (condition, result), tried in order.
        whens: Vec<(Expr, Expr)>,
        /// `ELSE`; NULL when absent.
        otherwise: Option<Box<Expr>>,
    },
    /// A scalar function.
    Call {
        /// The function.
        func: Func,
        /// Its arguments.
        args: Vec<Expr>,
    },
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryOp {
    /// `+` (also date + days).
    Add,
    /// `-` (also date - days, date - date).
    Sub,
    /// `*`.
    Mul,
    /// `/`: always a float; NULL when dividing by zero.
    Div,
    /// `%` on integers; NULL when dividing by zero.
    Mod,
    /// `=`.
    Eq,
    /// `<>`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
    /// `AND`, three-valued.
    And,
    /// `OR`, three-valued.
    Or,
}

/// Scalar functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Func {
    /// `ABS(x)`.
    Abs,
    /// `LEAST(a, b, ...)`: NULL arguments are ignored.
    Least,
    /// `GREATEST(a, b, ...)`: NULL arguments are ignored.
    Greatest,
    /// `COALESCE(a, b, ...)`.
    Coalesce,
    /// `NULLIF(a, b)`.
    NullIf,
    /// `ROUND(x[, digits])`: half away from zero, a float.
    Round,
    /// `FLOOR(x)`: a float.
    Floor,
    /// `CEIL(x)`: a float.
    Ceil,
    /// `CAST(x AS FLOAT64)`.
    ToFloat,
    /// `CAST(x AS INT64)`: half away from zero.
    ToInt,
    /// `EXTRACT(YEAR FROM d)`.
    Year,
    /// `EXTRACT(MONTH FROM d)`: 1 to 12.
    Month,
    /// `EXTRACT(QUARTER FROM d)`: 1 to 4.
    Quarter,
    /// `EXTRACT(DAY FROM d)`: 1 to 31.
    Day,
    /// `EXTRACT(DAYOFWEEK FROM d)`: 1 (Sunday) to 7 (Saturday), as BigQuery.
    DayOfWeek,
    /// `EXTRACT(DAYOFYEAR FROM d)`: 1 to 366.
    DayOfYear,
}

/// Why plan bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError(pub String);

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Plan {
    /// The plan's one encoding (postcard): what the engine receives and what the plan's hash
    /// covers.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing owned, plain data into a vector cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a plan, refusing trailing bytes and other versions.
    pub fn from_bytes(bytes: &[u8]) -> Result<Plan, PlanError> {
        let (plan, rest): (Plan, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| PlanError(alloc::format!("malformed plan: {e}")))?;
        if !rest.is_empty() {
            return Err(PlanError(alloc::format!(
                "malformed plan: {} trailing bytes",
                rest.len()
            )));
        }
        if plan.version != PLAN_VERSION {
            return Err(PlanError(alloc::format!(
                "plan version {} (this engine runs version {PLAN_VERSION})",
                plan.version
            )));
        }
        Ok(plan)
    }

    /// The plan as lower-case hex (how it travels as text).
    pub fn to_hex(&self) -> String {
        let bytes = self.to_bytes();
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
        out
    }

    /// Decodes [`Plan::to_hex`]'s text.
    pub fn from_hex(text: &str) -> Result<Plan, PlanError> {
        let digits = text.as_bytes();
        if !digits.len().is_multiple_of(2) {
            return Err(PlanError("malformed plan: odd number of hex digits".into()));
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(PlanError("malformed plan: not lower-case hex".into())),
        };
        let bytes = digits
            .chunks_exact(2)
            .map(|p| Ok((nibble(p[0])? << 4) | nibble(p[1])?))
            .collect::<Result<Vec<u8>, PlanError>>()?;
        Plan::from_bytes(&bytes)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";
