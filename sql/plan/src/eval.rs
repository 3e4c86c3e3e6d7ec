//! Evaluating a [`Plan`] on one customer's rows: the engine module calls
//! [`Evaluator::run_customer`] once per customer, inside the sandbox.
//!
//! SQL's semantics where the dialect follows them: three-valued logic, NULL propagating through
//! arithmetic and comparisons, aggregates skipping NULLs, `WHERE` and `ON` keeping rows whose
//! condition is true. Where it departs (division by zero is NULL; integer overflow fails the
//! customer's run, which the room then drops), docs/sql.md says so.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::{
    AggregateFn, BinaryOp, Contribution, Expr, From, Func, Key, KeyIndex, MAX_KEY_PARTS,
    MAX_SOURCES, MetricKind, Plan, Relation, Shape, Source, Value,
};

/// The current customer's base tables, as the engine reads them from what the room pushed.
pub trait Data {
    /// Rows of table `table` (index into [`Plan::tables`]).
    fn rows(&self, table: usize) -> usize;
    /// The value of column `column` (index into the table's read columns) at row `row`.
    fn value(&self, table: usize, column: usize, row: usize) -> Value;
}

/// Where contributions go: the guest SDK's bounding, in the engine.
pub trait Sink {
    /// Contributes `value` to metric `metric` (index into [`Plan::metrics`]) under `key`.
    fn contribute(&mut self, metric: usize, key: &[u32], value: f64);
}

/// Why a customer's run failed (the room drops the customer, as for a module that failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError(pub String);

impl core::fmt::Display for EvalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

fn error<T>(text: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError(text.into()))
}

/// A relation's rows for the current customer, row-major.
#[derive(Default)]
struct Rows {
    width: usize,
    values: Vec<Value>,
}

impl Rows {
    fn len(&self) -> usize {
        self.values.len().checked_div(self.width).unwrap_or(0)
    }
}

/// A group key's parts packed into one number, to find a group with one comparison.
fn packed(key: &[u32]) -> u128 {
    key.iter()
        .fold(0u128, |acc, &part| (acc << 32) | u128::from(part))
}

/// One group of a per-group metric for the current customer.
struct GroupAcc {
    packed: u128,
    key: [u32; MAX_KEY_PARTS],
    int_sum: i64,
    float_sum: f64,
    float: bool,
    n: u64,
}

/// Evaluates one plan customer after customer, keeping its scratch space between them.
pub struct Evaluator<'p> {
    plan: &'p Plan,
    relations: Vec<Rows>,
    /// Per metric, the current customer's groups (per-group metrics only), in first-seen order.
    groups: Vec<Vec<GroupAcc>>,
}

impl<'p> Evaluator<'p> {
    /// An evaluator for `plan`.
    pub fn new(plan: &'p Plan) -> Evaluator<'p> {
        Evaluator {
            plan,
            relations: plan.relations.iter().map(|_| Rows::default()).collect(),
            groups: plan.metrics.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// Runs the plan on one customer's rows, handing its contributions to `sink`.
    pub fn run_customer<D: Data>(
        &mut self,
        data: &D,
        sink: &mut impl Sink,
    ) -> Result<(), EvalError> {
        let plan = self.plan;
        for (i, relation) in plan.relations.iter().enumerate() {
            let mut out = core::mem::take(&mut self.relations[i]);
            out.values.clear();
            materialize(data, &self.relations[..i], relation, &mut out)?;
            self.relations[i] = out;
        }
        for groups in &mut self.groups {
            groups.clear();
        }
        let relations = &self.relations;
        let groups = &mut self.groups;
        let body = &plan.body;
        let mut key = [0u32; MAX_KEY_PARTS];
        let parts = body.keys.len();
        each_row(data, relations, &body.from, &mut |row| {
            if let Some(filter) = &body.filter
                && !is_true(eval(filter, row)?)
            {
                return Ok(());
            }
            for (slot, part) in key.iter_mut().zip(&body.keys) {
                match key_index(part, quick_eval(&part.expr, row)?)? {
                    Some(index) => *slot = index,
                    None => return Ok(()),
                }
            }
            let key = &key[..parts];
            for (m, metric) in plan.metrics.iter().enumerate() {
                let value = match &metric.value {
                    None => Value::Int(1),
                    Some(e) => quick_eval(e, row)?,
                };
                let Some(number) = number(value)? else {
                    continue;
                };
                match metric.contribution {
                    Contribution::EachRow => {
                        let v = if matches!(metric.kind, MetricKind::Count | MetricKind::Distinct) {
                            1.0
                        } else {
                            number
                        };
                        sink.contribute(m, key, v);
                    }
                    Contribution::GroupTotal | Contribution::GroupMean => {
                        let accs = &mut groups[m];
                        let id = packed(key);
                        let at = match accs.iter().position(|g| g.packed == id) {
                            Some(at) => at,
                            None => {
                                let mut k = [0u32; MAX_KEY_PARTS];
                                k[..parts].copy_from_slice(key);
                                accs.push(GroupAcc {
                                    packed: id,
                                    key: k,
                                    int_sum: 0,
                                    float_sum: 0.0,
                                    float: false,
                                    n: 0,
                                });
                                accs.len() - 1
                            }
                        };
                        let g = &mut accs[at];
                        match value {
                            Value::Int(i) => {
                                g.int_sum = g.int_sum.checked_add(i).ok_or_else(|| {
                                    EvalError(format!("metric '{}': integer overflow", metric.name))
                                })?;
                            }
                            _ => {
                                g.float = true;
                                g.float_sum += number;
                            }
                        }
                        g.n += 1;
                    }
                }
            }
            Ok(())
        })?;
        for (m, metric) in plan.metrics.iter().enumerate() {
            for g in &groups[m] {
                let total = if g.float {
                    g.float_sum + g.int_sum as f64
                } else {
                    g.int_sum as f64
                };
                let value = match metric.contribution {
                    Contribution::GroupMean => total / g.n as f64,
                    _ => total,
                };
                sink.contribute(m, &g.key[..parts], value);
            }
        }
        Ok(())
    }
}

/// A value as the number a metric receives; `None` for NULL (and NaN, which no bound can place).
fn number(value: Value) -> Result<Option<f64>, EvalError> {
    Ok(match value {
        Value::Null => None,
        Value::Int(i) => Some(i as f64),
        Value::Float(f) if f.is_nan() => None,
        Value::Float(f) => Some(f),
        Value::Bool(_) | Value::Date(_) | Value::Category(_) => Some(1.0),
    })
}

fn key_index(key: &Key, value: Value) -> Result<Option<u32>, EvalError> {
    Ok(match (&key.index, value) {
        (_, Value::Null) => None,
        (KeyIndex::Category, Value::Category(i)) => Some(i),
        (KeyIndex::Bool, Value::Bool(b)) => Some(u32::from(b)),
        (KeyIndex::Range { min, size }, Value::Int(v)) => {
            let at = v
                .checked_sub(*min)
                .filter(|&d| d >= 0 && d < i64::from(*size));
            match at {
                Some(at) => Some(at as u32),
                None => return error(format!("group key value {v} is outside its domain")),
            }
        }
        (KeyIndex::List(members), Value::Int(v)) => match members.iter().position(|&m| m == v) {
            Some(at) => Some(at as u32),
            None => return error(format!("group key value {v} is outside its domain")),
        },
        (index, value) => return error(format!("group key {index:?} cannot index {value:?}")),
    })
}

fn is_true(v: Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// A row to evaluate expressions over.
trait Row {
    fn column(&self, source: u8, column: u16) -> Value;
}

/// A row of a `FROM`: one row (or NULL, for a `LEFT JOIN` without a match) of each source.
struct Joined<'a, D> {
    data: &'a D,
    relations: &'a [Rows],
    sources: [Source; MAX_SOURCES],
    rows: [Option<usize>; MAX_SOURCES],
}

impl<D: Data> Row for Joined<'_, D> {
    #[inline]
    fn column(&self, source: u8, column: u16) -> Value {
        let s = source as usize;
        let (Some(row), Some(src)) = (self.rows.get(s).copied().flatten(), self.sources.get(s))
        else {
            return Value::Null;
        };
        match *src {
            Source::Table(t) => self.data.value(t as usize, column as usize, row),
            Source::Relation(r) => self
                .relations
                .get(r as usize)
                .and_then(|rel| rel.values.get(row * rel.width + column as usize))
                .copied()
                .unwrap_or(Value::Null),
        }
    }
}

/// A grouped row (keys, then aggregates), as source 0.
struct Flat<'a>(&'a [Value]);

impl Row for Flat<'_> {
    fn column(&self, _source: u8, column: u16) -> Value {
        self.0.get(column as usize).copied().unwrap_or(Value::Null)
    }
}

fn source_rows<D: Data>(data: &D, relations: &[Rows], source: Source) -> usize {
    match source {
        Source::Table(t) => data.rows(t as usize),
        Source::Relation(r) => relations.get(r as usize).map_or(0, Rows::len),
    }
}

/// Calls `f` for every row of `from`: the current customer's rows of each source, joined.
fn each_row<D: Data>(
    data: &D,
    relations: &[Rows],
    from: &From,
    f: &mut dyn FnMut(&Joined<'_, D>) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    if from.joins.len() + 1 > MAX_SOURCES {
        return error(format!("more than {MAX_SOURCES} sources in one FROM"));
    }
    let mut joined = Joined {
        data,
        relations,
        sources: [Source::Table(0); MAX_SOURCES],
        rows: [None; MAX_SOURCES],
    };
    joined.sources[0] = from.first;
    for (i, j) in from.joins.iter().enumerate() {
        joined.sources[i + 1] = j.source;
    }
    for r in 0..source_rows(data, relations, from.first) {
        joined.rows[0] = Some(r);
        join_level(&mut joined, from, 0, f)?;
    }
    Ok(())
}

fn join_level<D: Data>(
    joined: &mut Joined<'_, D>,
    from: &From,
    level: usize,
    f: &mut dyn FnMut(&Joined<'_, D>) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    let Some(join) = from.joins.get(level) else {
        return f(joined);
    };
    let slot = level + 1;
    let mut matched = false;
    for r in 0..source_rows(joined.data, joined.relations, join.source) {
        joined.rows[slot] = Some(r);
        let keep = match &join.on {
            None => true,
            Some(on) => is_true(eval(on, joined)?),
        };
        if keep {
            matched = true;
            join_level(joined, from, level + 1, f)?;
        }
    }
    joined.rows[slot] = None;
    if join.left && !matched {
        join_level(joined, from, level + 1, f)?;
    }
    Ok(())
}

/// One aggregate's running state.
enum Acc {
    Count(i64),
    Distinct(Vec<Value>),
    Sum {
        int: i64,
        float: f64,
        is_float: bool,
        any: bool,
    },
    Avg {
        sum: f64,
        n: u64,
    },
    Min(Value),
    Max(Value),
}

impl Acc {
    fn new(func: AggregateFn, distinct: bool) -> Acc {
        match func {
            AggregateFn::Count if distinct => Acc::Distinct(Vec::new()),
            AggregateFn::Count => Acc::Count(0),
            AggregateFn::Sum => Acc::Sum {
                int: 0,
                float: 0.0,
                is_float: false,
                any: false,
            },
            AggregateFn::Avg => Acc::Avg { sum: 0.0, n: 0 },
            AggregateFn::Min => Acc::Min(Value::Null),
            AggregateFn::Max => Acc::Max(Value::Null),
        }
    }

    fn add(&mut self, v: Value) -> Result<(), EvalError> {
        if v == Value::Null {
            return Ok(());
        }
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Distinct(seen) => {
                if !seen.iter().any(|s| same(*s, v)) {
                    seen.push(v);
                }
            }
            Acc::Sum {
                int,
                float,
                is_float,
                any,
            } => {
                *any = true;
                match v {
                    Value::Int(i) => {
                        *int = int
                            .checked_add(i)
                            .ok_or_else(|| EvalError("SUM: integer overflow".into()))?;
                    }
                    Value::Float(f) => {
                        *is_float = true;
                        *float += f;
                    }
                    other => return error(format!("SUM of {other:?}")),
                }
            }
            Acc::Avg { sum, n } => {
                *sum += match v {
                    Value::Int(i) => i as f64,
                    Value::Float(f) => f,
                    other => return error(format!("AVG of {other:?}")),
                };
                *n += 1;
            }
            Acc::Min(best) => {
                if *best == Value::Null || compare(v, *best)? == Some(Ordering::Less) {
                    *best = v;
                }
            }
            Acc::Max(best) => {
                if *best == Value::Null || compare(v, *best)? == Some(Ordering::Greater) {
                    *best = v;
                }
            }
        }
        Ok(())
    }

    fn finish(&self) -> Value {
        match self {
            Acc::Count(n) => Value::Int(*n),
            Acc::Distinct(seen) => Value::Int(seen.len() as i64),
            Acc::Sum { any: false, .. } => Value::Null,
            Acc::Sum {
                int,
                float,
                is_float: true,
                ..
            } => Value::Float(float + *int as f64),
            Acc::Sum { int, .. } => Value::Int(*int),
            Acc::Avg { n: 0, .. } => Value::Null,
            Acc::Avg { sum, n } => Value::Float(sum / *n as f64),
            Acc::Min(v) | Acc::Max(v) => *v,
        }
    }
}

/// Grouping equality: NULL groups with NULL.
fn same(a: Value, b: Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits() || x == y,
        (Value::Int(i), Value::Float(f)) | (Value::Float(f), Value::Int(i)) => i as f64 == f,
        _ => a == b,
    }
}

fn materialize<D: Data>(
    data: &D,
    done: &[Rows],
    relation: &Relation,
    out: &mut Rows,
) -> Result<(), EvalError> {
    match &relation.shape {
        Shape::Project(exprs) => {
            out.width = exprs.len();
            each_row(data, done, &relation.from, &mut |row| {
                if let Some(filter) = &relation.filter
                    && !is_true(eval(filter, row)?)
                {
                    return Ok(());
                }
                for e in exprs {
                    out.values.push(eval(e, row)?);
                }
                Ok(())
            })
        }
        Shape::Aggregate {
            keys,
            aggregates,
            having,
            outputs,
        } => {
            out.width = outputs.len();
            let mut groups: Vec<(Vec<Value>, Vec<Acc>)> = Vec::new();
            if keys.is_empty() {
                groups.push((
                    Vec::new(),
                    aggregates
                        .iter()
                        .map(|a| Acc::new(a.func, a.distinct))
                        .collect(),
                ));
            }
            let mut key = Vec::with_capacity(keys.len());
            each_row(data, done, &relation.from, &mut |row| {
                if let Some(filter) = &relation.filter
                    && !is_true(eval(filter, row)?)
                {
                    return Ok(());
                }
                key.clear();
                for k in keys {
                    key.push(eval(k, row)?);
                }
                let at = match groups.iter().position(|(g, _)| {
                    g.len() == key.len() && g.iter().zip(&key).all(|(a, b)| same(*a, *b))
                }) {
                    Some(at) => at,
                    None => {
                        groups.push((
                            key.clone(),
                            aggregates
                                .iter()
                                .map(|a| Acc::new(a.func, a.distinct))
                                .collect(),
                        ));
                        groups.len() - 1
                    }
                };
                let accs = &mut groups[at].1;
                for (acc, a) in accs.iter_mut().zip(aggregates) {
                    let v = match &a.arg {
                        None => Value::Int(1),
                        Some(e) => eval(e, row)?,
                    };
                    acc.add(v)?;
                }
                Ok(())
            })?;
            let mut grouped = Vec::with_capacity(keys.len() + aggregates.len());
            for (key, accs) in &groups {
                grouped.clear();
                grouped.extend_from_slice(key);
                grouped.extend(accs.iter().map(Acc::finish));
                let row = Flat(&grouped);
                if let Some(h) = having
                    && !is_true(eval(h, &row)?)
                {
                    continue;
                }
                for e in outputs {
                    out.values.push(eval(e, &row)?);
                }
            }
            Ok(())
        }
    }
}

fn as_f64(v: Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        _ => None,
    }
}

/// Orders two non-NULL values of comparable types; `None` when either is NULL.
fn compare(a: Value, b: Value) -> Result<Option<Ordering>, EvalError> {
    Ok(match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(&y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(&y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(&y)),
        (Value::Category(x), Value::Category(y)) => Some(x.cmp(&y)),
        (x, y) => match (as_f64(x), as_f64(y)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => return error(format!("cannot compare {a:?} with {b:?}")),
        },
    })
}

fn truth(v: Value) -> Result<Option<bool>, EvalError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        other => error(format!("{other:?} is not a condition")),
    }
}

/// [`eval`], with a column or a constant (most keys and aggregated values) read in place.
#[inline(always)]
fn quick_eval<R: Row>(expr: &Expr, row: &R) -> Result<Value, EvalError> {
    match expr {
        Expr::Column { source, column } => Ok(row.column(*source, *column)),
        Expr::Literal(v) => Ok(*v),
        other => eval(other, row),
    }
}

fn eval<R: Row>(expr: &Expr, row: &R) -> Result<Value, EvalError> {
    Ok(match expr {
        Expr::Column { source, column } => row.column(*source, *column),
        Expr::Literal(v) => *v,
        Expr::Not(e) => match truth(eval(e, row)?)? {
            None => Value::Null,
            Some(b) => Value::Bool(!b),
        },
        Expr::Neg(e) => match eval(e, row)? {
            Value::Null => Value::Null,
            Value::Int(i) => Value::Int(
                i.checked_neg()
                    .ok_or_else(|| EvalError("integer overflow".into()))?,
            ),
            Value::Float(f) => Value::Float(-f),
            other => return error(format!("cannot negate {other:?}")),
        },
        Expr::IsNull { expr, negated } => {
            Value::Bool((eval(expr, row)? == Value::Null) != *negated)
        }
        Expr::Binary { op, left, right } => binary(*op, left, right, row)?,
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let v = eval(expr, row)?;
            if v == Value::Null {
                return Ok(Value::Null);
            }
            let mut any_null = false;
            for item in list {
                let w = eval(item, row)?;
                match compare(v, w)? {
                    None => any_null = true,
                    Some(Ordering::Equal) => return Ok(Value::Bool(!negated)),
                    Some(_) => {}
                }
            }
            if any_null {
                Value::Null
            } else {
                Value::Bool(*negated)
            }
        }
        Expr::Between {
            expr,
            low,
            high,
            negated,
        } => {
            let v = eval(expr, row)?;
            let above = compare(v, eval(low, row)?)?.map(|o| o != Ordering::Less);
            let below = compare(v, eval(high, row)?)?.map(|o| o != Ordering::Greater);
            match and(above, below) {
                None => Value::Null,
                Some(b) => Value::Bool(b != *negated),
            }
        }
        Expr::Case { whens, otherwise } => {
            for (condition, result) in whens {
                if is_true(eval(condition, row)?) {
                    return eval(result, row);
                }
            }
            match otherwise {
                Some(e) => eval(e, row)?,
                None => Value::Null,
            }
        }
        Expr::Call { func, args } => call(*func, args, row)?,
    })
}

fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn overflow() -> EvalError {
    EvalError("integer overflow".into())
}

fn binary<R: Row>(op: BinaryOp, left: &Expr, right: &Expr, row: &R) -> Result<Value, EvalError> {
    use BinaryOp::*;
    match op {
        And => {
            let l = truth(eval(left, row)?)?;
            if l == Some(false) {
                return Ok(Value::Bool(false));
            }
            let r = truth(eval(right, row)?)?;
            return Ok(and(l, r).map_or(Value::Null, Value::Bool));
        }
        Or => {
            let l = truth(eval(left, row)?)?;
            if l == Some(true) {
                return Ok(Value::Bool(true));
            }
            let r = truth(eval(right, row)?)?;
            return Ok(match (l, r) {
                (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            });
        }
        _ => {}
    }
    let l = eval(left, row)?;
    let r = eval(right, row)?;
    if l == Value::Null || r == Value::Null {
        return Ok(Value::Null);
    }
    let ordering = |want: fn(Ordering) -> bool| -> Result<Value, EvalError> {
        Ok(compare(l, r)?.map_or(Value::Null, |o| Value::Bool(want(o))))
    };
    match op {
        Eq => ordering(|o| o == Ordering::Equal),
        NotEq => ordering(|o| o != Ordering::Equal),
        Lt => ordering(|o| o == Ordering::Less),
        LtEq => ordering(|o| o != Ordering::Greater),
        Gt => ordering(|o| o == Ordering::Greater),
        GtEq => ordering(|o| o != Ordering::Less),
        Add | Sub | Mul | Div | Mod => arithmetic(op, l, r),
        And | Or => unreachable_op(),
    }
}

fn unreachable_op() -> Result<Value, EvalError> {
    error("AND/OR handled above")
}

fn arithmetic(op: BinaryOp, l: Value, r: Value) -> Result<Value, EvalError> {
    use BinaryOp::*;
    Ok(match (op, l, r) {
        (Add, Value::Date(d), Value::Int(n)) | (Add, Value::Int(n), Value::Date(d)) => {
            Value::Date(date_plus(d, n)?)
        }
        (Sub, Value::Date(d), Value::Int(n)) => {
            Value::Date(date_plus(d, n.checked_neg().ok_or_else(overflow)?)?)
        }
        (Sub, Value::Date(a), Value::Date(b)) => Value::Int(i64::from(a) - i64::from(b)),
        (Div, l, r) => match (as_f64(l), as_f64(r)) {
            (Some(_), Some(0.0)) => Value::Null,
            (Some(x), Some(y)) => Value::Float(x / y),
            _ => return error(format!("cannot divide {l:?} by {r:?}")),
        },
        (Mod, Value::Int(_), Value::Int(0)) => Value::Null,
        (Mod, Value::Int(x), Value::Int(y)) => Value::Int(x.checked_rem(y).ok_or_else(overflow)?),
        (Add, Value::Int(x), Value::Int(y)) => Value::Int(x.checked_add(y).ok_or_else(overflow)?),
        (Sub, Value::Int(x), Value::Int(y)) => Value::Int(x.checked_sub(y).ok_or_else(overflow)?),
        (Mul, Value::Int(x), Value::Int(y)) => Value::Int(x.checked_mul(y).ok_or_else(overflow)?),
        (op, l, r) => match (as_f64(l), as_f64(r)) {
            (Some(x), Some(y)) => Value::Float(match op {
                Add => x + y,
                Sub => x - y,
                Mul => x * y,
                Mod if y == 0.0 => return Ok(Value::Null),
                Mod => x % y,
                _ => return error(format!("{op:?} of {l:?} and {r:?}")),
            }),
            _ => return error(format!("{op:?} of {l:?} and {r:?}")),
        },
    })
}

fn date_plus(d: i32, n: i64) -> Result<i32, EvalError> {
    i64::from(d)
        .checked_add(n)
        .and_then(|x| i32::try_from(x).ok())
        .ok_or_else(|| EvalError("date out of range".into()))
}

/// Rounds half away from zero, as the room bounds values.
fn round_half_away(x: f64) -> f64 {
    let t = trunc(x);
    if (x - t).abs() >= 0.5 {
        t + x.signum()
    } else {
        t
    }
}

fn trunc(x: f64) -> f64 {
    // `as i64` truncates; beyond 2^53 every float is already whole.
    if x.abs() >= 9_007_199_254_740_992.0 || x.is_nan() {
        x
    } else {
        (x as i64) as f64
    }
}

fn floor(x: f64) -> f64 {
    let t = trunc(x);
    if t > x { t - 1.0 } else { t }
}

fn ceil(x: f64) -> f64 {
    let t = trunc(x);
    if t < x { t + 1.0 } else { t }
}

fn powi10(n: i64) -> f64 {
    let mut p = 1.0;
    for _ in 0..n.unsigned_abs().min(30) {
        p *= 10.0;
    }
    if n < 0 { 1.0 / p } else { p }
}

/// (year, month 1-12, day 1-31) of days since 1970-01-01 (Howard Hinnant's civil_from_days).
pub fn civil(days: i32) -> (i64, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a (year, month, day) (Howard Hinnant's days_from_civil).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn call<R: Row>(func: Func, args: &[Expr], row: &R) -> Result<Value, EvalError> {
    let arg = |i: usize| -> Result<Value, EvalError> {
        match args.get(i) {
            Some(e) => eval(e, row),
            None => error(format!("{func:?} needs argument {}", i + 1)),
        }
    };
    Ok(match func {
        Func::Coalesce => {
            for e in args {
                let v = eval(e, row)?;
                if v != Value::Null {
                    return Ok(v);
                }
            }
            Value::Null
        }
        Func::Least | Func::Greatest => {
            let mut best = Value::Null;
            for e in args {
                let v = eval(e, row)?;
                if v == Value::Null {
                    continue;
                }
                let better = best == Value::Null
                    || match compare(v, best)? {
                        Some(Ordering::Less) => func == Func::Least,
                        Some(Ordering::Greater) => func == Func::Greatest,
                        _ => false,
                    };
                if better {
                    best = v;
                }
            }
            // A mix of integers and floats compares as floats and yields a float.
            let any_float = args.len() > 1 && best != Value::Null && {
                let mut f = false;
                for e in args {
                    f |= matches!(eval(e, row)?, Value::Float(_));
                }
                f
            };
            match (best, any_float) {
                (Value::Int(i), true) => Value::Float(i as f64),
                (v, _) => v,
            }
        }
        Func::NullIf => {
            let a = arg(0)?;
            let b = arg(1)?;
            if compare(a, b)? == Some(Ordering::Equal) {
                Value::Null
            } else {
                a
            }
        }
        Func::Abs => match arg(0)? {
            Value::Int(i) => Value::Int(i.checked_abs().ok_or_else(overflow)?),
            Value::Float(f) => Value::Float(f.abs()),
            Value::Null => Value::Null,
            other => return error(format!("ABS of {other:?}")),
        },
        Func::Round => {
            let x = arg(0)?;
            let digits = if args.len() > 1 {
                arg(1)?
            } else {
                Value::Int(0)
            };
            match (as_f64(x), digits) {
                (None, _) | (_, Value::Null) => Value::Null,
                (Some(x), Value::Int(0)) => Value::Float(round_half_away(x)),
                (Some(x), Value::Int(n)) => {
                    let p = powi10(n);
                    Value::Float(round_half_away(x * p) / p)
                }
                _ => return error("ROUND's digits must be an integer"),
            }
        }
        Func::Floor | Func::Ceil => match as_f64(arg(0)?) {
            None => Value::Null,
            Some(x) => Value::Float(if func == Func::Floor {
                floor(x)
            } else {
                ceil(x)
            }),
        },
        Func::ToFloat => match arg(0)? {
            Value::Int(i) => Value::Float(i as f64),
            Value::Float(f) => Value::Float(f),
            Value::Bool(b) => Value::Float(if b { 1.0 } else { 0.0 }),
            Value::Null => Value::Null,
            other => return error(format!("cannot cast {other:?} to FLOAT64")),
        },
        Func::ToInt => match arg(0)? {
            Value::Int(i) => Value::Int(i),
            Value::Float(f) => {
                let r = round_half_away(f);
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
                    return Err(overflow());
                }
                Value::Int(r as i64)
            }
            Value::Bool(b) => Value::Int(i64::from(b)),
            Value::Null => Value::Null,
            other => return error(format!("cannot cast {other:?} to INT64")),
        },
        Func::Year
        | Func::Month
        | Func::Quarter
        | Func::Day
        | Func::DayOfWeek
        | Func::DayOfYear => {
            let d = match arg(0)? {
                Value::Null => return Ok(Value::Null),
                Value::Date(d) => d,
                other => return error(format!("EXTRACT from {other:?}")),
            };
            let (y, m, day) = civil(d);
            Value::Int(match func {
                Func::Year => y,
                Func::Month => i64::from(m),
                Func::Quarter => i64::from((m - 1) / 3 + 1),
                Func::Day => i64::from(day),
                // 1970-01-01 was a Thursday: Sunday is 1.
                Func::DayOfWeek => (i64::from(d) + 4).rem_euclid(7) + 1,
                _ => i64::from(d) - days_from_civil(y, 1, 1) + 1,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_weekdays_follow_bigquery() {
        for d in [-800_000, -1, 0, 1, 59, 60, 19_000, 20_000, 2_000_000] {
            let (y, m, day) = civil(d);
            assert_eq!(days_from_civil(y, m, day), i64::from(d));
        }
        // 2024-01-07 was a Sunday: BigQuery's DAYOFWEEK is 1.
        let sunday = days_from_civil(2024, 1, 7) as i32;
        let row = Flat(&[Value::Date(sunday)]);
        let day = Expr::Call {
            func: Func::DayOfWeek,
            args: alloc::vec![Expr::Column {
                source: 0,
                column: 0
            }],
        };
        assert_eq!(eval(&day, &row), Ok(Value::Int(1)));
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        for (x, want) in [
            (2.5, 3.0),
            (-2.5, -3.0),
            (2.4999, 2.0),
            (-0.5, -1.0),
            (7.0, 7.0),
        ] {
            assert_eq!(round_half_away(x), want, "{x}");
        }
        assert_eq!(floor(-1.5), -2.0);
        assert_eq!(ceil(-1.5), -1.0);
    }

    #[test]
    fn three_valued_logic() {
        let null = Expr::Literal(Value::Null);
        let t = Expr::Literal(Value::Bool(true));
        let f = Expr::Literal(Value::Bool(false));
        let row = Flat(&[]);
        let op = |op, a: &Expr, b: &Expr| {
            eval(
                &Expr::Binary {
                    op,
                    left: alloc::boxed::Box::new(a.clone()),
                    right: alloc::boxed::Box::new(b.clone()),
                },
                &row,
            )
        };
        assert_eq!(op(BinaryOp::And, &null, &f), Ok(Value::Bool(false)));
        assert_eq!(op(BinaryOp::And, &null, &t), Ok(Value::Null));
        assert_eq!(op(BinaryOp::Or, &null, &t), Ok(Value::Bool(true)));
        assert_eq!(op(BinaryOp::Or, &null, &f), Ok(Value::Null));
        let one = Expr::Literal(Value::Int(1));
        let zero = Expr::Literal(Value::Int(0));
        assert_eq!(op(BinaryOp::Div, &one, &zero), Ok(Value::Null));
        assert_eq!(op(BinaryOp::Add, &one, &null), Ok(Value::Null));
    }
}
