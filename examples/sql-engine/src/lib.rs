//! The SQL engine module: it runs a partner's SQL query, compiled by the room into a plan
//! (crate `strongroom-sql-plan`), one customer at a time inside the sandbox.
//!
//! A plan is data, not code: the bank reviews and approves this engine once, by hash, and every
//! SQL query then runs through it. The room hands the plan over as the run's only parameter
//! (`strongroom_sql_plan`, hex). The engine builds the plan's manifest exactly as the room does,
//! and its contributions are bounded by the SDK and checked again by the room against the
//! manifest the room derived itself: a hostile plan can do no more than a hostile module, which
//! sees one customer and only contributes.
//!
//! Its own manifest (below) declares nothing to read: a run without a plan fails at once.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;

use strongroom_guest::engine::{ColumnValues, leak, leak_slice, leak_str, with_customer_tables};
use strongroom_guest::prelude::*;
use strongroom_guest::{ColumnSpec, ColumnType, MetricKind, TableRead};
use strongroom_sql_plan::eval::{Data, Evaluator, Sink};
use strongroom_sql_plan::{self as plan, PLAN_PARAMETER, Plan, Value};

const NO_PLAN: &[Domain] = &[Domain::enumeration("plan", &["none"])];

strongroom_guest::engine! {
    section: Manifest {
        name: "strongroom-sql-engine",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[],
        metrics: &[Metric::count("no_plan", NO_PLAN)],
        max_groups_per_entity: 1,
    },
    manifest: manifest,
    run: run,
}

/// The plan this instance serves, and its manifest.
struct Loaded {
    plan: &'static Plan,
    manifest: &'static Manifest,
}

static LOADED: OnceLock<Result<Loaded, String>> = OnceLock::new();

thread_local! {
    static EVALUATOR: RefCell<Option<Evaluator<'static>>> = const { RefCell::new(None) };
}

fn loaded() -> Result<&'static Loaded, String> {
    LOADED
        .get_or_init(|| {
            let hex = schema::parameter(PLAN_PARAMETER).ok_or_else(|| {
                "this engine runs SQL plans, which the room gives it for SQL jobs (--sql)"
                    .to_string()
            })?;
            let plan: &'static Plan = leak(Plan::from_hex(&hex).map_err(|e| e.0)?);
            Ok(Loaded {
                plan,
                manifest: leak(manifest_of(plan)),
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn manifest() -> Result<&'static Manifest, String> {
    loaded().map(|l| l.manifest)
}

/// The plan's manifest, as the room derives it (crate `strongroom-sql`, `manifest_of`).
fn manifest_of(plan: &'static Plan) -> Manifest {
    let key: &'static [Domain] = leak_slice(
        plan.domains
            .iter()
            .map(|d| match d {
                plan::Domain::Column { table, column } => Domain::Column {
                    table: leak_str(table),
                    column: leak_str(column),
                },
                plan::Domain::Enumeration { name, members } => Domain::Enumeration {
                    name: leak_str(name),
                    members: leak_slice(members.iter().map(|m| leak_str(m)).collect()),
                },
            })
            .collect(),
    );
    Manifest {
        name: leak_str(&plan.name),
        version: "plan",
        mode: Mode::Isolated,
        reads: leak_slice(
            plan.tables
                .iter()
                .map(|t| TableRead {
                    table: leak_str(&t.table),
                    columns: leak_slice(
                        t.columns
                            .iter()
                            .map(|(name, ty)| ColumnSpec {
                                name: leak_str(name),
                                ty: match ty {
                                    plan::ColumnType::Int => ColumnType::Int,
                                    plan::ColumnType::Float => ColumnType::Float,
                                    plan::ColumnType::Bool => ColumnType::Bool,
                                    plan::ColumnType::Date => ColumnType::Date,
                                    plan::ColumnType::Category => ColumnType::Category,
                                },
                            })
                            .collect(),
                    ),
                })
                .collect(),
        ),
        metrics: leak_slice(
            plan.metrics
                .iter()
                .map(|m| Metric {
                    name: leak_str(&m.name),
                    kind: match m.kind {
                        plan::MetricKind::Sum => MetricKind::Sum,
                        plan::MetricKind::Count => MetricKind::Count,
                        plan::MetricKind::Mean => MetricKind::Mean,
                        plan::MetricKind::Distinct => MetricKind::Distinct,
                    },
                    key,
                    lower: m.lower,
                    upper: m.upper,
                    decimals: m.decimals,
                    max_contributions_per_group: m.max_contributions_per_group,
                })
                .collect(),
        ),
        max_groups_per_entity: plan.max_groups_per_entity,
    }
}

/// The current customer's rows, as the room pushed them.
struct Pushed<'a> {
    columns: &'a [&'a [ColumnValues]],
    ranges: &'a [Range<usize>],
}

impl Data for Pushed<'_> {
    #[inline]
    fn rows(&self, table: usize) -> usize {
        self.ranges.get(table).map_or(0, |r| r.len())
    }

    #[inline]
    fn value(&self, table: usize, column: usize, row: usize) -> Value {
        let i = self.ranges[table].start + row;
        match &self.columns[table][column] {
            ColumnValues::Int(v) => Value::Int(v[i]),
            ColumnValues::Float(v) => Value::Float(v[i]),
            ColumnValues::Boolean(v) => Value::Bool(v[i]),
            ColumnValues::Date(v) => Value::Date(v[i]),
            ColumnValues::Category(v) => Value::Category(v[i]),
        }
    }
}

/// Contributions go to the SDK, which bounds them into the customer's cells.
struct Contributions(&'static [Metric]);

impl Sink for Contributions {
    fn contribute(&mut self, metric: usize, key: &[u32], value: f64) {
        self.0[metric].add(key, value);
    }
}

fn run() -> Result<(), QueryError> {
    let loaded = loaded().map_err(QueryError)?;
    EVALUATOR.with(|e| {
        let mut e = e.borrow_mut();
        let evaluator = e.get_or_insert_with(|| Evaluator::new(loaded.plan));
        with_customer_tables(|columns, ranges| {
            evaluator.run_customer(
                &Pushed { columns, ranges },
                &mut Contributions(loaded.manifest.metrics),
            )
        })
        .ok_or_else(|| QueryError("the room pushed no rows (SQL runs isolated or batched)".into()))?
        .map_err(|e| QueryError(e.0))
    })
}
