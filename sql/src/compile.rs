//! From the parsed query to a [`Plan`]: name resolution against the catalog, types, the
//! per-customer relations, the group key's public domains and the metrics with their bounds.

use sqlparser::ast::{
    self, BinaryOperator, CastKind, DataType, DateTimeField, DuplicateTreatment, Expr as SqlExpr,
    FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, JoinConstraint, JoinOperator,
    ObjectName, ObjectNamePart, Query, Select, SelectItem, SetExpr, Spanned, TableFactor,
    TableWithJoins, UnaryOperator, Value as SqlValue,
};
use sqlparser::tokenizer::Location;
use strongroom_sql_plan::{
    Aggregate, AggregateFn, BinaryOp, Body, ColumnType, Contribution, Domain, Expr, From, Func,
    Join, Key, KeyIndex, MAX_KEY_PARTS, MAX_SOURCES, Metric, MetricKind, PLAN_VERSION, Plan,
    Relation, Shape, Source, TableRead, Value,
};

use crate::catalog::Catalog;
use crate::clause::{DpClause, OptionValue, Parsed};
use crate::{MANIFEST_NAME, MetricSource, SqlError};

/// Most groups a key's domains may multiply to (the room's limit per metric).
const MAX_GROUPS: u64 = 4096;
/// Largest `contribution_bounds_per_group` of a count, and `max_rows_per_group`.
const MAX_ROWS_PER_GROUP: u32 = 100_000;

type R<T> = Result<T, SqlError>;

/// The released SELECT, compiled: its rows and key, its metrics, the key's domains, the groups
/// per customer, and where each metric comes from.
type Released = (Body, Vec<Metric>, Vec<Domain>, u32, Vec<MetricSource>);

fn err<T>(at: Location, message: impl Into<String>) -> R<T> {
    Err(SqlError::at(at, message))
}

fn start(e: &impl Spanned) -> Location {
    e.span().start
}

/// A value's type while compiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Int,
    Float,
    Bool,
    Date,
    /// An index into compile-time domain `n` (a dictionary or a `CASE`'s labels).
    Category(usize),
    /// NULL, which fits any type.
    Null,
}

impl Ty {
    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Null)
    }

    /// The one type of two values side by side (a `CASE`'s results, `COALESCE`'s arguments):
    /// NULL fits anything, integers widen to floats; `None` when they do not mix.
    fn unify(self, other: Ty) -> Option<Ty> {
        match (self, other) {
            (Ty::Null, t) | (t, Ty::Null) => Some(t),
            (a, b) if a == b => Some(a),
            (a, b) if a.numeric() && b.numeric() => Some(Ty::Float),
            _ => None,
        }
    }
}

/// The type of `a op b` for numbers (`+ - * %`): a float if either is one.
fn arithmetic_type(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Null, Ty::Null) => Ty::Null,
        (Ty::Float, _) | (_, Ty::Float) => Ty::Float,
        _ => Ty::Int,
    }
}

/// The labels of a category type.
struct DomainInfo {
    /// `Some((table, column))` for a column's dictionary.
    column: Option<(String, String)>,
    labels: Vec<String>,
}

/// A compiled expression, or a text literal waiting for the type that gives it a meaning.
enum C {
    V(Expr, Ty),
    Text(String, Location),
}

/// A per-customer relation's name and columns.
#[derive(Clone)]
struct RelInfo {
    index: u16,
    columns: Vec<(String, Ty)>,
}

/// A source of a `FROM`.
struct SourceInfo {
    alias: String,
    kind: SourceKind,
}

enum SourceKind {
    Table { catalog: usize, plan: u16 },
    Relation(RelInfo),
}

/// The sources a `FROM` brings into scope.
#[derive(Default)]
struct Scope {
    sources: Vec<SourceInfo>,
}

/// What an expression is evaluated over.
enum Cx<'a> {
    /// One row of the scope's sources.
    Row(&'a Scope),
    /// A grouped row of a per-customer relation: its keys, then its aggregates.
    Grouped {
        scope: &'a Scope,
        keys: &'a [(Expr, Ty)],
        aggregates: &'a mut Vec<(Aggregate, Ty)>,
    },
}

impl Cx<'_> {
    fn scope(&self) -> &Scope {
        match self {
            Cx::Row(s) => s,
            Cx::Grouped { scope, .. } => scope,
        }
    }
}

struct Compiler<'c> {
    catalog: &'c Catalog,
    parameters: &'c [(String, String)],
    tables: Vec<TableRead>,
    table_catalog: Vec<usize>,
    relations: Vec<Relation>,
    domains: Vec<DomainInfo>,
    ctes: Vec<(String, RelInfo)>,
}

/// The closest of `candidates` to `word`, when one is close enough to be a likely typo.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let distance = |a: &str, b: &str| -> usize {
        let a: Vec<char> = a.to_lowercase().chars().collect();
        let b: Vec<char> = b.to_lowercase().chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut prev = row[0];
            row[0] = i;
            for j in 1..=b.len() {
                let here = row[j];
                row[j] = (row[j] + 1)
                    .min(row[j - 1] + 1)
                    .min(prev + usize::from(a[i - 1] != b[j - 1]));
                prev = here;
            }
        }
        row[b.len()]
    };
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(word, candidates) {
        Some(c) => format!("; did you mean {c}?"),
        None => String::new(),
    }
}

fn ident_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Splits `a AND b AND c` into its conjuncts.
fn conjuncts(e: &SqlExpr) -> Vec<&SqlExpr> {
    match e {
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut out = conjuncts(left);
            out.extend(conjuncts(right));
            out
        }
        SqlExpr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

fn bin(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

fn and_all(mut parts: Vec<Expr>) -> Option<Expr> {
    let first = if parts.is_empty() {
        return None;
    } else {
        parts.remove(0)
    };
    Some(
        parts
            .into_iter()
            .fold(first, |a, b| bin(BinaryOp::And, a, b)),
    )
}

impl<'c> Compiler<'c> {
    // ---- names -------------------------------------------------------------------------

    /// The plan index of base table `catalog` (added on first use).
    fn plan_table(&mut self, catalog: usize) -> u16 {
        if let Some(i) = self.table_catalog.iter().position(|&c| c == catalog) {
            return i as u16;
        }
        self.table_catalog.push(catalog);
        self.tables.push(TableRead {
            table: self.catalog.tables[catalog].name.clone(),
            columns: Vec::new(),
        });
        (self.tables.len() - 1) as u16
    }

    /// The index of `column` among the columns the plan reads from `plan_table`.
    fn read(&mut self, plan_table: u16, column: &str, ty: ColumnType) -> u16 {
        let read = &mut self.tables[plan_table as usize].columns;
        if let Some(i) = read.iter().position(|(c, _)| c == column) {
            return i as u16;
        }
        read.push((column.to_string(), ty));
        (read.len() - 1) as u16
    }

    fn column_domain(&mut self, table: &str, column: &str, labels: &[String]) -> usize {
        let key = Some((table.to_string(), column.to_string()));
        if let Some(i) = self.domains.iter().position(|d| d.column == key) {
            return i;
        }
        self.domains.push(DomainInfo {
            column: key,
            labels: labels.to_vec(),
        });
        self.domains.len() - 1
    }

    fn type_name(&self, ty: Ty) -> String {
        match ty {
            Ty::Int => "an integer".into(),
            Ty::Float => "a float".into(),
            Ty::Bool => "a boolean".into(),
            Ty::Date => "a date".into(),
            Ty::Null => "NULL".into(),
            Ty::Category(d) => match &self.domains[d].column {
                Some((t, c)) => format!("a category of {t}.{c}"),
                None => "a label of a CASE".into(),
            },
        }
    }

    /// Resolves a column reference in `scope`.
    fn column(&mut self, scope: &Scope, parts: &[ast::Ident], at: Location) -> R<(Expr, Ty)> {
        let (qualifier, name) = match parts {
            [name] => (None, name.value.as_str()),
            [q, name] => (Some(q.value.as_str()), name.value.as_str()),
            _ => {
                return err(
                    at,
                    format!(
                        "'{}': name a column as column or table.column",
                        parts
                            .iter()
                            .map(|p| p.value.as_str())
                            .collect::<Vec<_>>()
                            .join(".")
                    ),
                );
            }
        };
        let candidates: Vec<usize> = match qualifier {
            Some(q) => {
                let found: Vec<usize> = scope
                    .sources
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.alias.eq_ignore_ascii_case(q))
                    .map(|(i, _)| i)
                    .collect();
                if found.is_empty() {
                    let aliases: Vec<&str> =
                        scope.sources.iter().map(|s| s.alias.as_str()).collect();
                    return err(
                        at,
                        format!(
                            "'{q}' is not a table or alias of this FROM ({}){}",
                            aliases.join(", "),
                            did_you_mean(q, aliases.iter().copied())
                        ),
                    );
                }
                found
            }
            None => (0..scope.sources.len()).collect(),
        };
        let mut hits: Vec<(usize, Expr, Ty)> = Vec::new();
        let mut refusal: Option<String> = None;
        let mut all_names: Vec<String> = Vec::new();
        for &s in &candidates {
            let source = &scope.sources[s];
            match &source.kind {
                SourceKind::Table { catalog, plan } => {
                    let table = &self.catalog.tables[*catalog];
                    let tname = table.name.clone();
                    if table
                        .entity
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(name))
                    {
                        refusal = Some(format!(
                            "{tname}.{name} is the privacy unit's key: the room joins each customer's rows by it and never lets a query read it; count customers with COUNT(DISTINCT {name})"
                        ));
                        continue;
                    }
                    if table
                        .identifiers
                        .iter()
                        .any(|i| i.eq_ignore_ascii_case(name))
                    {
                        refusal = Some(format!(
                            "{tname}.{name} is an identifier column: never read by a query (audience matching uses identifiers inside the room)"
                        ));
                        continue;
                    }
                    all_names.extend(table.columns.iter().map(|c| c.name.clone()));
                    if let Some(col) = table
                        .columns
                        .iter()
                        .find(|c| c.name.eq_ignore_ascii_case(name))
                    {
                        let (cname, cty, dict) = (col.name.clone(), col.ty, col.dictionary.clone());
                        let index = self.read(*plan, &cname, cty);
                        let ty = match cty {
                            ColumnType::Int => Ty::Int,
                            ColumnType::Float => Ty::Float,
                            ColumnType::Bool => Ty::Bool,
                            ColumnType::Date => Ty::Date,
                            ColumnType::Category => {
                                Ty::Category(self.column_domain(&tname, &cname, &dict))
                            }
                        };
                        hits.push((
                            s,
                            Expr::Column {
                                source: s as u8,
                                column: index,
                            },
                            ty,
                        ));
                    }
                }
                SourceKind::Relation(info) => {
                    all_names.extend(info.columns.iter().map(|c| c.0.clone()));
                    if let Some(i) = info
                        .columns
                        .iter()
                        .position(|(c, _)| c.eq_ignore_ascii_case(name))
                    {
                        hits.push((
                            s,
                            Expr::Column {
                                source: s as u8,
                                column: i as u16,
                            },
                            info.columns[i].1,
                        ));
                    }
                }
            }
        }
        match hits.len() {
            1 => {
                let (_, e, t) = hits.remove(0);
                Ok((e, t))
            }
            0 => match refusal {
                Some(why) => err(at, why),
                None => err(
                    at,
                    format!(
                        "no column '{name}' in {}{}",
                        match qualifier {
                            Some(q) => q.to_string(),
                            None => "the tables of this FROM".into(),
                        },
                        did_you_mean(name, all_names.iter().map(String::as_str))
                    ),
                ),
            },
            _ => err(
                at,
                format!(
                    "column '{name}' is in more than one table of this FROM ({}); qualify it",
                    hits.iter()
                        .map(|(s, _, _)| scope.sources[*s].alias.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }

    /// Whether `e` names the privacy unit's key of a table in `scope`.
    fn is_entity(&self, scope: &Scope, e: &SqlExpr) -> bool {
        let (q, name) = match e {
            SqlExpr::Identifier(i) => (None, &i.value),
            SqlExpr::CompoundIdentifier(p) if p.len() == 2 => (Some(&p[0].value), &p[1].value),
            _ => return false,
        };
        scope.sources.iter().any(|s| {
            q.is_none_or(|q| s.alias.eq_ignore_ascii_case(q))
                && match &s.kind {
                    SourceKind::Table { catalog, .. } => self.catalog.tables[*catalog]
                        .entity
                        .as_deref()
                        .is_some_and(|en| en.eq_ignore_ascii_case(name)),
                    SourceKind::Relation(_) => false,
                }
        })
    }

    // ---- FROM --------------------------------------------------------------------------

    fn from(&mut self, from: &[TableWithJoins], at: Location) -> R<(From, Scope)> {
        let mut scope = Scope::default();
        let mut first: Option<Source> = None;
        let mut joins: Vec<Join> = Vec::new();
        if from.is_empty() {
            return err(
                at,
                "the query needs a FROM: the bank's tables, or a WITH relation",
            );
        }
        for twj in from {
            let source = self.factor(&twj.relation, &mut scope)?;
            match first {
                None => first = Some(source),
                Some(_) => joins.push(Join {
                    source,
                    left: false,
                    on: None,
                }),
            }
            for join in &twj.joins {
                let at = start(&join.relation);
                let (left, constraint) = match &join.join_operator {
                    JoinOperator::Join(c) | JoinOperator::Inner(c) => (false, Some(c)),
                    JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (true, Some(c)),
                    JoinOperator::CrossJoin(c) => (false, Some(c)),
                    other => {
                        return err(
                            at,
                            format!(
                                "{} is not supported: use JOIN, LEFT JOIN or CROSS JOIN (the customer is the join key; every table holds one customer's rows)",
                                other_join_name(other)
                            ),
                        );
                    }
                };
                let source = self.factor(&join.relation, &mut scope)?;
                let on = match constraint {
                    Some(JoinConstraint::On(e)) => {
                        let mut kept = Vec::new();
                        for c in conjuncts(e) {
                            // `a.customer_id = b.customer_id`: the join the room makes anyway.
                            if let SqlExpr::BinaryOp {
                                left: l,
                                op: BinaryOperator::Eq,
                                right: r,
                            } = c
                                && self.is_entity(&scope, l)
                                && self.is_entity(&scope, r)
                            {
                                continue;
                            }
                            kept.push(self.condition(c, &mut Cx::Row(&scope))?);
                        }
                        and_all(kept)
                    }
                    Some(JoinConstraint::Using(cols)) => {
                        let mut kept = Vec::new();
                        for c in cols {
                            let name = ident_name(c);
                            let here = SqlExpr::Identifier(ast::Ident::new(&name));
                            if self.is_entity(&scope, &here) {
                                continue;
                            }
                            return err(
                                at,
                                format!(
                                    "USING ({name}): only the privacy unit's key may join tables by USING; write ON a.{name} = b.{name}"
                                ),
                            );
                        }
                        kept.pop()
                    }
                    Some(JoinConstraint::Natural) => {
                        return err(
                            at,
                            "NATURAL JOIN is not supported: the customer is the join key; write JOIN",
                        );
                    }
                    Some(JoinConstraint::None) | None => None,
                    Some(_) => {
                        return err(at, "this join condition is not supported; write ON ...");
                    }
                };
                joins.push(Join { source, left, on });
            }
        }
        if joins.len() + 1 > MAX_SOURCES {
            return err(
                at,
                format!("at most {MAX_SOURCES} tables and relations in one FROM"),
            );
        }
        let Some(first) = first else {
            return err(at, "the query needs a FROM");
        };
        Ok((From { first, joins }, scope))
    }

    /// One table, CTE or subquery of a `FROM`, added to `scope`.
    fn factor(&mut self, factor: &TableFactor, scope: &mut Scope) -> R<Source> {
        let at = start(factor);
        let (source, alias, kind) = match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    return err(at, "table functions are not supported");
                }
                let tname = ident_name(name);
                if let Some((_, info)) = self
                    .ctes
                    .iter()
                    .rev()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&tname))
                {
                    let info = info.clone();
                    (
                        Source::Relation(info.index),
                        alias
                            .as_ref()
                            .map_or(tname.clone(), |a| a.name.value.clone()),
                        SourceKind::Relation(info),
                    )
                } else if let Some((c, table)) = self.catalog.table(&tname) {
                    let plan = self.plan_table(c);
                    (
                        Source::Table(plan),
                        alias
                            .as_ref()
                            .map_or(table.name.clone(), |a| a.name.value.clone()),
                        SourceKind::Table { catalog: c, plan },
                    )
                } else {
                    let mut names: Vec<&str> = self
                        .catalog
                        .tables
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect();
                    names.extend(self.ctes.iter().map(|(n, _)| n.as_str()));
                    return err(
                        at,
                        format!(
                            "no table '{tname}' (the bank's tables: {}){}",
                            self.catalog
                                .tables
                                .iter()
                                .map(|t| t.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            did_you_mean(&tname, names.iter().copied())
                        ),
                    );
                }
            }
            TableFactor::Derived {
                subquery,
                alias,
                lateral,
                ..
            } => {
                if *lateral {
                    return err(at, "LATERAL subqueries are not supported");
                }
                let Some(alias) = alias else {
                    return err(
                        at,
                        "a subquery in FROM needs an alias: (SELECT ...) AS name",
                    );
                };
                let info = self.relation(subquery, at)?;
                (
                    Source::Relation(info.index),
                    alias.name.value.clone(),
                    SourceKind::Relation(info),
                )
            }
            TableFactor::NestedJoin { .. } => {
                return err(
                    at,
                    "parenthesised joins are not supported; list the joins in order",
                );
            }
            _ => {
                return err(
                    at,
                    "only tables, WITH relations and subqueries may appear in FROM",
                );
            }
        };
        if scope
            .sources
            .iter()
            .any(|s| s.alias.eq_ignore_ascii_case(&alias))
        {
            return err(
                at,
                format!("'{alias}' appears twice in this FROM; give one an alias"),
            );
        }
        scope.sources.push(SourceInfo { alias, kind });
        Ok(source)
    }

    // ---- relations ---------------------------------------------------------------------

    /// A query compiled as a per-customer relation (a CTE or a subquery).
    fn relation(&mut self, query: &Query, at: Location) -> R<RelInfo> {
        if query.with.is_some() {
            return err(
                at,
                "WITH inside a subquery is not supported; define every WITH relation at the top",
            );
        }
        if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
            return err(
                at,
                "ORDER BY and LIMIT in a per-customer relation are not supported (they would pick rows by order)",
            );
        }
        let SetExpr::Select(select) = &*query.body else {
            return err(at, "a WITH relation or subquery must be one SELECT");
        };
        let at = select.select_token.0.span.start;
        reject_select_extras(select, at)?;
        let (from, scope) = self.from(&select.from, at)?;
        let filter = match &select.selection {
            Some(w) => Some(self.condition(w, &mut Cx::Row(&scope))?),
            None => None,
        };
        let group_by = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
            GroupByExpr::Expressions(..) => return err(at, "GROUP BY modifiers are not supported"),
            GroupByExpr::All(_) => return err(at, "GROUP BY ALL is not supported; list the keys"),
        };
        let aggregated = !group_by.is_empty()
            || select.having.is_some()
            || select.projection.iter().any(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    has_aggregate(e)
                }
                _ => false,
            });
        let mut columns: Vec<(String, Ty)> = Vec::new();
        let mut outputs: Vec<Expr> = Vec::new();
        let shape = if aggregated {
            let mut keys: Vec<(Expr, Ty)> = Vec::new();
            for g in &group_by {
                // A GROUP BY may name a SELECT alias.
                let by_alias = match g {
                    SqlExpr::Identifier(i) => {
                        select.projection.iter().find_map(|item| match item {
                            SelectItem::ExprWithAlias { expr, alias }
                                if alias.value.eq_ignore_ascii_case(&i.value) =>
                            {
                                Some(expr.clone())
                            }
                            _ => None,
                        })
                    }
                    _ => None,
                };
                let g = by_alias.as_ref().unwrap_or(g);
                if self.is_entity(&scope, g) {
                    // Grouping by the customer inside a per-customer relation changes nothing.
                    continue;
                }
                let k = self.value(g, &mut Cx::Row(&scope))?;
                keys.push(k);
            }
            let mut aggregates: Vec<(Aggregate, Ty)> = Vec::new();
            for (i, item) in select.projection.iter().enumerate() {
                let (e, name) = projection_item(item, i, at)?;
                if self.is_entity(&scope, e) {
                    return err(
                        start(e),
                        "the privacy unit's key is never an output; every relation is one customer's already",
                    );
                }
                let (x, ty) = self.value(
                    e,
                    &mut Cx::Grouped {
                        scope: &scope,
                        keys: &keys,
                        aggregates: &mut aggregates,
                    },
                )?;
                outputs.push(x);
                columns.push((name, ty));
            }
            let having = match &select.having {
                Some(h) => Some(self.condition(
                    h,
                    &mut Cx::Grouped {
                        scope: &scope,
                        keys: &keys,
                        aggregates: &mut aggregates,
                    },
                )?),
                None => None,
            };
            Shape::Aggregate {
                keys: keys.into_iter().map(|k| k.0).collect(),
                aggregates: aggregates.into_iter().map(|a| a.0).collect(),
                having,
                outputs,
            }
        } else {
            for (i, item) in select.projection.iter().enumerate() {
                let (e, name) = projection_item(item, i, at)?;
                if self.is_entity(&scope, e) {
                    return err(
                        start(e),
                        "the privacy unit's key is never an output; every relation is one customer's already",
                    );
                }
                let (x, ty) = self.value(e, &mut Cx::Row(&scope))?;
                outputs.push(x);
                columns.push((name, ty));
            }
            Shape::Project(outputs)
        };
        for (i, (name, _)) in columns.iter().enumerate() {
            if columns[..i]
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                return err(
                    at,
                    format!("two outputs are named '{name}'; give one an alias (AS ...)"),
                );
            }
        }
        self.relations.push(Relation {
            from,
            filter,
            shape,
        });
        Ok(RelInfo {
            index: (self.relations.len() - 1) as u16,
            columns,
        })
    }

    // ---- expressions -------------------------------------------------------------------

    /// A condition: a boolean expression.
    fn condition(&mut self, e: &SqlExpr, cx: &mut Cx<'_>) -> R<Expr> {
        let (x, ty) = self.value(e, cx)?;
        if !matches!(ty, Ty::Bool | Ty::Null) {
            return err(
                start(e),
                format!(
                    "a condition must be true or false; this is {}",
                    self.type_name(ty)
                ),
            );
        }
        Ok(x)
    }

    /// An expression that must have a value (a text literal alone has no meaning).
    fn value(&mut self, e: &SqlExpr, cx: &mut Cx<'_>) -> R<(Expr, Ty)> {
        match self.expr(e, cx)? {
            C::V(x, t) => Ok((x, t)),
            C::Text(s, at) => err(
                at,
                format!(
                    "'{s}' is text: text appears in a query only as a category's label (compared with a category column) or as a CASE's output"
                ),
            ),
        }
    }

    /// Gives a text literal its meaning next to a value of type `ty`.
    fn resolve(&mut self, c: C, ty: Ty) -> R<(Expr, Ty)> {
        match c {
            C::V(x, t) => Ok((x, t)),
            C::Text(s, at) => match ty {
                Ty::Category(d) => {
                    let labels = &self.domains[d].labels;
                    match labels.iter().position(|l| *l == s) {
                        Some(i) => Ok((Expr::Literal(Value::Category(i as u32)), Ty::Category(d))),
                        None => {
                            let shown: Vec<&str> =
                                labels.iter().take(12).map(String::as_str).collect();
                            err(
                                at,
                                format!(
                                    "'{s}' is not a label of {} ({}{}){}",
                                    match &self.domains[d].column {
                                        Some((t, c)) => format!("{t}.{c}"),
                                        None => "this CASE".into(),
                                    },
                                    shown.join(", "),
                                    if labels.len() > 12 { ", ..." } else { "" },
                                    did_you_mean(&s, labels.iter().map(String::as_str))
                                ),
                            )
                        }
                    }
                }
                Ty::Date => match parse_date(&s) {
                    Some(d) => Ok((Expr::Literal(Value::Date(d)), Ty::Date)),
                    None => err(
                        at,
                        format!("'{s}' is not a date; write dates as 'YYYY-MM-DD'"),
                    ),
                },
                other => err(
                    at,
                    format!(
                        "'{s}' is text; it cannot stand next to {}",
                        self.type_name(other)
                    ),
                ),
            },
        }
    }

    /// Two operands of a comparison, with text resolved against the other side.
    fn pair(&mut self, l: C, r: C, at: Location) -> R<((Expr, Ty), (Expr, Ty))> {
        match (l, r) {
            (C::Text(a, _), C::Text(b, _)) => err(
                at,
                format!("'{a}' and '{b}' are both text; compare a column with a label"),
            ),
            (l @ C::Text(..), C::V(x, t)) => Ok((self.resolve(l, t)?, (x, t))),
            (C::V(x, t), r @ C::Text(..)) => {
                let r = self.resolve(r, t)?;
                Ok(((x, t), r))
            }
            (C::V(a, s), C::V(b, t)) => Ok(((a, s), (b, t))),
        }
    }

    fn comparable(&self, a: Ty, b: Ty, ordering: bool, at: Location) -> R<()> {
        let ok = match (a, b) {
            (Ty::Null, _) | (_, Ty::Null) => true,
            (x, y) if x.numeric() && y.numeric() => true,
            (Ty::Date, Ty::Date) | (Ty::Bool, Ty::Bool) => true,
            (Ty::Category(x), Ty::Category(y)) if x == y => {
                if ordering {
                    return err(
                        at,
                        "categories have no order: compare them with = , <> or IN",
                    );
                }
                true
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            err(
                at,
                format!(
                    "cannot compare {} with {}",
                    self.type_name(a),
                    self.type_name(b)
                ),
            )
        }
    }

    fn parameter(&self, name: &str, at: Location) -> R<C> {
        let name = name.trim_start_matches('@');
        let Some((_, v)) = self.parameters.iter().find(|(n, _)| n == name) else {
            return err(
                at,
                format!("parameter @{name} has no value; pass it with --param {name}=VALUE"),
            );
        };
        let v = v.trim();
        Ok(if let Ok(i) = v.parse::<i64>() {
            C::V(Expr::Literal(Value::Int(i)), Ty::Int)
        } else if let Ok(f) = v.parse::<f64>()
            && f.is_finite()
        {
            C::V(Expr::Literal(Value::Float(f)), Ty::Float)
        } else if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
            C::V(
                Expr::Literal(Value::Bool(v.eq_ignore_ascii_case("true"))),
                Ty::Bool,
            )
        } else if let Some(d) = parse_date(v) {
            C::V(Expr::Literal(Value::Date(d)), Ty::Date)
        } else {
            C::Text(v.to_string(), at)
        })
    }

    fn expr(&mut self, e: &SqlExpr, cx: &mut Cx<'_>) -> R<C> {
        let at = start(e);
        if let Cx::Grouped {
            scope,
            keys,
            aggregates,
        } = cx
        {
            if let SqlExpr::Function(f) = e
                && let Some(func) = inner_aggregate(&ident_name(&f.name))
            {
                let scope: &Scope = scope;
                let (agg, ty) = self.inner_aggregate(func, f, scope, at)?;
                aggregates.push((agg, ty));
                return Ok(C::V(
                    Expr::Column {
                        source: 0,
                        column: (keys.len() + aggregates.len() - 1) as u16,
                    },
                    ty,
                ));
            }
            // An expression the relation groups by is read from the grouped row.
            if !matches!(e, SqlExpr::Value(_) | SqlExpr::Nested(_)) && !has_aggregate(e) {
                let scope: &Scope = scope;
                if let Ok(C::V(x, ty)) = self.expr(e, &mut Cx::Row(scope))
                    && let Some(k) = keys.iter().position(|(k, _)| *k == x)
                {
                    return Ok(C::V(
                        Expr::Column {
                            source: 0,
                            column: k as u16,
                        },
                        ty,
                    ));
                }
                if matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)) {
                    return err(
                        at,
                        format!(
                            "{e} must be in GROUP BY or inside an aggregate (SUM, COUNT, AVG, MIN, MAX)"
                        ),
                    );
                }
            }
        }
        Ok(match e {
            SqlExpr::Identifier(i) if i.value.starts_with('@') && i.quote_style.is_none() => {
                self.parameter(&i.value, at)?
            }
            SqlExpr::Identifier(i) => {
                let scope = cx.scope();
                let (x, t) = self.column(scope, std::slice::from_ref(i), at)?;
                C::V(x, t)
            }
            SqlExpr::CompoundIdentifier(parts) => {
                let scope = cx.scope();
                let (x, t) = self.column(scope, parts, at)?;
                C::V(x, t)
            }
            SqlExpr::Nested(inner) => self.expr(inner, cx)?,
            SqlExpr::Value(v) => match &v.value {
                SqlValue::Number(n, _) => {
                    if let Ok(i) = n.parse::<i64>() {
                        C::V(Expr::Literal(Value::Int(i)), Ty::Int)
                    } else if let Ok(f) = n.parse::<f64>() {
                        C::V(Expr::Literal(Value::Float(f)), Ty::Float)
                    } else {
                        return err(at, format!("'{n}' is not a number"));
                    }
                }
                SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                    C::Text(s.clone(), at)
                }
                SqlValue::Boolean(b) => C::V(Expr::Literal(Value::Bool(*b)), Ty::Bool),
                SqlValue::Null => C::V(Expr::Literal(Value::Null), Ty::Null),
                SqlValue::Placeholder(p) => self.parameter(p, at)?,
                other => return err(at, format!("{other} is not supported here")),
            },
            SqlExpr::TypedString(ts) => {
                let text = match &ts.value.value {
                    SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                match ts.data_type {
                    DataType::Date => match parse_date(&text) {
                        Some(d) => C::V(Expr::Literal(Value::Date(d)), Ty::Date),
                        None => {
                            return err(
                                at,
                                format!("'{text}' is not a date; write DATE 'YYYY-MM-DD'"),
                            );
                        }
                    },
                    ref other => {
                        return err(
                            at,
                            format!(
                                "{other} literals are not supported; dates are DATE 'YYYY-MM-DD'"
                            ),
                        );
                    }
                }
            }
            SqlExpr::UnaryOp { op, expr } => {
                let (x, t) = self.value(expr, cx)?;
                match op {
                    UnaryOperator::Not => {
                        if !matches!(t, Ty::Bool | Ty::Null) {
                            return err(
                                at,
                                format!("NOT needs true or false; this is {}", self.type_name(t)),
                            );
                        }
                        C::V(Expr::Not(Box::new(x)), Ty::Bool)
                    }
                    UnaryOperator::Minus => {
                        if !t.numeric() {
                            return err(at, format!("cannot negate {}", self.type_name(t)));
                        }
                        match x {
                            Expr::Literal(Value::Int(i)) => C::V(Expr::Literal(Value::Int(-i)), t),
                            Expr::Literal(Value::Float(f)) => {
                                C::V(Expr::Literal(Value::Float(-f)), t)
                            }
                            x => C::V(Expr::Neg(Box::new(x)), t),
                        }
                    }
                    UnaryOperator::Plus if t.numeric() => C::V(x, t),
                    other => return err(at, format!("operator {other} is not supported")),
                }
            }
            SqlExpr::IsNull(inner) | SqlExpr::IsNotNull(inner) => {
                let (x, _) = self.value(inner, cx)?;
                C::V(
                    Expr::IsNull {
                        expr: Box::new(x),
                        negated: matches!(e, SqlExpr::IsNotNull(_)),
                    },
                    Ty::Bool,
                )
            }
            SqlExpr::IsTrue(inner) | SqlExpr::IsFalse(inner) => {
                let x = self.condition(inner, cx)?;
                let want = matches!(e, SqlExpr::IsTrue(_));
                C::V(
                    bin(
                        BinaryOp::And,
                        Expr::Not(Box::new(Expr::IsNull {
                            expr: Box::new(x.clone()),
                            negated: false,
                        })),
                        bin(BinaryOp::Eq, x, Expr::Literal(Value::Bool(want))),
                    ),
                    Ty::Bool,
                )
            }
            SqlExpr::BinaryOp { left, op, right } => self.binary(left, op, right, cx, at)?,
            SqlExpr::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                ..
            } => {
                let operand = self.expr(expr, cx)?;
                let (x, t) = match operand {
                    C::V(x, t) => (x, t),
                    C::Text(s, at) => {
                        return err(at, format!("'{s}' IN (...): put the column on the left"));
                    }
                };
                let mut items = Vec::new();
                for item in list {
                    let c = self.expr(item, cx)?;
                    let (y, u) = self.resolve(c, t)?;
                    self.comparable(t, u, false, start(item))?;
                    items.push(y);
                }
                C::V(
                    Expr::InList {
                        expr: Box::new(x),
                        list: items,
                        negated: *negated,
                    },
                    Ty::Bool,
                )
            }
            SqlExpr::In { .. } => {
                return err(
                    at,
                    "IN takes a list of values; IN (SELECT ...) is not supported (join a WITH relation instead)",
                );
            }
            SqlExpr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (x, t) = self.value(expr, cx)?;
                let lo = self.expr(low, cx)?;
                let (lo, lt) = self.resolve(lo, t)?;
                let hi = self.expr(high, cx)?;
                let (hi, ht) = self.resolve(hi, t)?;
                self.comparable(t, lt, true, at)?;
                self.comparable(t, ht, true, at)?;
                C::V(
                    Expr::Between {
                        expr: Box::new(x),
                        low: Box::new(lo),
                        high: Box::new(hi),
                        negated: *negated,
                    },
                    Ty::Bool,
                )
            }
            SqlExpr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = match operand {
                    Some(o) => Some(self.value(o, cx)?),
                    None => None,
                };
                let mut whens = Vec::new();
                let mut results = Vec::new();
                for cw in conditions {
                    let condition = match &operand {
                        Some((ox, ot)) => {
                            let v = self.expr(&cw.condition, cx)?;
                            let (v, vt) = self.resolve(v, *ot)?;
                            self.comparable(*ot, vt, false, start(&cw.condition))?;
                            bin(BinaryOp::Eq, ox.clone(), v)
                        }
                        None => self.condition(&cw.condition, cx)?,
                    };
                    whens.push(condition);
                    results.push(self.expr(&cw.result, cx)?);
                }
                let otherwise = match else_result {
                    Some(e) => Some(self.expr(e, cx)?),
                    None => None,
                };
                self.case(whens, results, otherwise, at)?
            }
            SqlExpr::Extract { field, expr, .. } => {
                let (x, t) = self.value(expr, cx)?;
                if !matches!(t, Ty::Date | Ty::Null) {
                    return err(
                        at,
                        format!("EXTRACT needs a date; this is {}", self.type_name(t)),
                    );
                }
                let func = match field {
                    DateTimeField::Year => Func::Year,
                    DateTimeField::Month => Func::Month,
                    DateTimeField::Quarter => Func::Quarter,
                    DateTimeField::Day => Func::Day,
                    DateTimeField::DayOfWeek | DateTimeField::Dow => Func::DayOfWeek,
                    DateTimeField::DayOfYear | DateTimeField::Doy => Func::DayOfYear,
                    other => {
                        return err(
                            at,
                            format!(
                                "EXTRACT({other} ...) is not supported; use YEAR, QUARTER, MONTH, DAY, DAYOFWEEK or DAYOFYEAR"
                            ),
                        );
                    }
                };
                C::V(
                    Expr::Call {
                        func,
                        args: vec![x],
                    },
                    Ty::Int,
                )
            }
            SqlExpr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if format.is_some() || !matches!(kind, CastKind::Cast | CastKind::SafeCast) {
                    return err(at, "only CAST(x AS type) is supported");
                }
                let (x, t) = self.value(expr, cx)?;
                let name = data_type.to_string().to_ascii_uppercase();
                let (func, ty) = match name.as_str() {
                    "FLOAT64" | "FLOAT" | "DOUBLE" | "DOUBLE PRECISION" | "REAL" | "NUMERIC"
                    | "DECIMAL" => (Func::ToFloat, Ty::Float),
                    "INT64" | "INT" | "INTEGER" | "BIGINT" => (Func::ToInt, Ty::Int),
                    _ => {
                        return err(
                            at,
                            format!(
                                "CAST to {data_type} is not supported; cast to FLOAT64 or INT64"
                            ),
                        );
                    }
                };
                if !matches!(t, Ty::Int | Ty::Float | Ty::Bool | Ty::Null) {
                    return err(at, format!("cannot cast {} to {name}", self.type_name(t)));
                }
                C::V(
                    Expr::Call {
                        func,
                        args: vec![x],
                    },
                    ty,
                )
            }
            SqlExpr::Floor { expr, .. } | SqlExpr::Ceil { expr, .. } => {
                let (x, t) = self.value(expr, cx)?;
                if !t.numeric() {
                    return err(
                        at,
                        format!(
                            "FLOOR and CEIL need a number; this is {}",
                            self.type_name(t)
                        ),
                    );
                }
                let func = if matches!(e, SqlExpr::Floor { .. }) {
                    Func::Floor
                } else {
                    Func::Ceil
                };
                C::V(
                    Expr::Call {
                        func,
                        args: vec![x],
                    },
                    Ty::Float,
                )
            }
            SqlExpr::Function(f) => self.function(f, cx, at)?,
            SqlExpr::Subquery(_) | SqlExpr::Exists { .. } => {
                return err(
                    at,
                    "subqueries in expressions are not supported; join a WITH relation instead",
                );
            }
            SqlExpr::Like { .. } | SqlExpr::ILike { .. } => {
                return err(
                    at,
                    "LIKE is not supported: text columns are categories; compare with = or IN",
                );
            }
            other => {
                return err(
                    at,
                    format!(
                        "{other} is not supported in the room's SQL (docs/sql.md lists what is)"
                    ),
                );
            }
        })
    }

    fn binary(
        &mut self,
        left: &SqlExpr,
        op: &BinaryOperator,
        right: &SqlExpr,
        cx: &mut Cx<'_>,
        at: Location,
    ) -> R<C> {
        use BinaryOperator as B;
        let plan_op = match op {
            B::Plus => BinaryOp::Add,
            B::Minus => BinaryOp::Sub,
            B::Multiply => BinaryOp::Mul,
            B::Divide => BinaryOp::Div,
            B::Modulo => BinaryOp::Mod,
            B::Eq => BinaryOp::Eq,
            B::NotEq => BinaryOp::NotEq,
            B::Lt => BinaryOp::Lt,
            B::LtEq => BinaryOp::LtEq,
            B::Gt => BinaryOp::Gt,
            B::GtEq => BinaryOp::GtEq,
            B::And => BinaryOp::And,
            B::Or => BinaryOp::Or,
            other => return err(at, format!("operator {other} is not supported")),
        };
        let l = self.expr(left, cx)?;
        let r = self.expr(right, cx)?;
        let ((lx, lt), (rx, rt)) = self.pair(l, r, at)?;
        let ty = match plan_op {
            BinaryOp::And | BinaryOp::Or => {
                for (t, side) in [(lt, left), (rt, right)] {
                    if !matches!(t, Ty::Bool | Ty::Null) {
                        return err(
                            start(side),
                            format!("{op} needs true or false; this is {}", self.type_name(t)),
                        );
                    }
                }
                Ty::Bool
            }
            BinaryOp::Eq | BinaryOp::NotEq => {
                self.comparable(lt, rt, false, at)?;
                Ty::Bool
            }
            BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => {
                self.comparable(lt, rt, true, at)?;
                Ty::Bool
            }
            BinaryOp::Add | BinaryOp::Sub => match (lt, rt) {
                (Ty::Date, Ty::Int) => Ty::Date,
                (Ty::Int, Ty::Date) if plan_op == BinaryOp::Add => Ty::Date,
                (Ty::Date, Ty::Date) if plan_op == BinaryOp::Sub => Ty::Int,
                (a, b) if a.numeric() && b.numeric() => arithmetic_type(a, b),
                _ => {
                    return err(
                        at,
                        format!(
                            "cannot apply {op} to {} and {}",
                            self.type_name(lt),
                            self.type_name(rt)
                        ),
                    );
                }
            },
            BinaryOp::Mul | BinaryOp::Mod => match (lt, rt) {
                (a, b) if a.numeric() && b.numeric() => arithmetic_type(a, b),
                _ => {
                    return err(
                        at,
                        format!(
                            "cannot apply {op} to {} and {}",
                            self.type_name(lt),
                            self.type_name(rt)
                        ),
                    );
                }
            },
            BinaryOp::Div => {
                if !(lt.numeric() && rt.numeric()) {
                    return err(
                        at,
                        format!(
                            "cannot divide {} by {}",
                            self.type_name(lt),
                            self.type_name(rt)
                        ),
                    );
                }
                Ty::Float
            }
        };
        Ok(C::V(bin(plan_op, lx, rx), ty))
    }

    /// A `CASE`: its type from its results. Text results become a new public enumeration
    /// (labels in order of appearance) or, next to a category column, that column's labels.
    fn case(
        &mut self,
        whens: Vec<Expr>,
        results: Vec<C>,
        otherwise: Option<C>,
        at: Location,
    ) -> R<C> {
        let mut all: Vec<C> = results;
        let has_else = otherwise.is_some();
        if let Some(o) = otherwise {
            all.push(o);
        }
        let category = all.iter().find_map(|c| match c {
            C::V(_, Ty::Category(d)) => Some(*d),
            _ => None,
        });
        let any_text = all.iter().any(|c| matches!(c, C::Text(..)));
        let domain = match (category, any_text) {
            (Some(d), _) => Some(d),
            (None, true) => {
                let mut labels: Vec<String> = Vec::new();
                for c in &all {
                    match c {
                        C::Text(s, _) => {
                            if !labels.contains(s) {
                                labels.push(s.clone());
                            }
                        }
                        C::V(_, Ty::Null) => {}
                        C::V(_, t) => {
                            return err(
                                at,
                                format!(
                                    "a CASE mixes text labels with {}; give every branch a label",
                                    self.type_name(*t)
                                ),
                            );
                        }
                    }
                }
                self.domains.push(DomainInfo {
                    column: None,
                    labels,
                });
                Some(self.domains.len() - 1)
            }
            (None, false) => None,
        };
        let mut typed: Vec<(Expr, Ty)> = Vec::new();
        for c in all {
            typed.push(match domain {
                Some(d) => self.resolve(c, Ty::Category(d))?,
                None => match c {
                    C::V(x, t) => (x, t),
                    C::Text(..) => unreachable_text()?,
                },
            });
        }
        let mut ty = Ty::Null;
        for (_, t) in &typed {
            ty = match ty.unify(*t) {
                Some(u) => u,
                None => {
                    return err(
                        at,
                        format!(
                            "a CASE's results must share a type: {} and {}",
                            self.type_name(ty),
                            self.type_name(*t)
                        ),
                    );
                }
            };
        }
        let otherwise = if has_else {
            typed.pop().map(|(x, _)| Box::new(x))
        } else {
            None
        };
        let whens = whens
            .into_iter()
            .zip(typed.into_iter().map(|(x, _)| x))
            .collect();
        Ok(C::V(Expr::Case { whens, otherwise }, ty))
    }

    fn function(&mut self, f: &ast::Function, cx: &mut Cx<'_>, at: Location) -> R<C> {
        let name = ident_name(&f.name).to_ascii_uppercase();
        if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
            return err(
                at,
                format!("{name}: FILTER, OVER and WITHIN GROUP are not supported"),
            );
        }
        if matches!(name.as_str(), "COUNT" | "SUM" | "AVG" | "MIN" | "MAX") {
            return err(
                at,
                match cx {
                    Cx::Grouped { .. } => format!("{name} cannot be nested in another aggregate"),
                    Cx::Row(_) => format!(
                        "{name} here has no group: aggregates belong in the SELECT list of the query (released, with bounds) or of a WITH relation (per customer)"
                    ),
                },
            );
        }
        let args = plain_args(f, &name, at)?;
        let mut values = Vec::new();
        for a in &args {
            values.push(self.expr(a, cx)?);
        }
        let numeric = |me: &Self, v: &[(Expr, Ty)]| -> R<()> {
            for (i, (_, t)) in v.iter().enumerate() {
                if !t.numeric() {
                    return err(
                        start(args[i]),
                        format!("{name} needs numbers; this is {}", me.type_name(*t)),
                    );
                }
            }
            Ok(())
        };
        let arity = |n: std::ops::RangeInclusive<usize>| -> R<()> {
            if n.contains(&args.len()) {
                Ok(())
            } else {
                err(
                    at,
                    format!(
                        "{name} takes {} argument(s), not {}",
                        if n.start() == n.end() {
                            n.start().to_string()
                        } else {
                            format!("{} to {}", n.start(), n.end())
                        },
                        args.len()
                    ),
                )
            }
        };
        Ok(match name.as_str() {
            "ABS" => {
                arity(1..=1)?;
                let v = self.all_values(values)?;
                numeric(self, &v)?;
                let ty = v[0].1;
                C::V(
                    Expr::Call {
                        func: Func::Abs,
                        args: v.into_iter().map(|x| x.0).collect(),
                    },
                    ty,
                )
            }
            "ROUND" => {
                arity(1..=2)?;
                let v = self.all_values(values)?;
                numeric(self, &v)?;
                C::V(
                    Expr::Call {
                        func: Func::Round,
                        args: v.into_iter().map(|x| x.0).collect(),
                    },
                    Ty::Float,
                )
            }
            "FLOOR" | "CEIL" | "CEILING" => {
                arity(1..=1)?;
                let v = self.all_values(values)?;
                numeric(self, &v)?;
                let func = if name == "FLOOR" {
                    Func::Floor
                } else {
                    Func::Ceil
                };
                C::V(
                    Expr::Call {
                        func,
                        args: v.into_iter().map(|x| x.0).collect(),
                    },
                    Ty::Float,
                )
            }
            "LEAST" | "GREATEST" | "COALESCE" | "IFNULL" => {
                if name == "IFNULL" {
                    arity(2..=2)?;
                } else {
                    arity(1..=16)?;
                }
                // Text resolves against the first typed argument.
                let anchor = values.iter().find_map(|c| match c {
                    C::V(_, t) if *t != Ty::Null => Some(*t),
                    _ => None,
                });
                let mut v = Vec::new();
                for c in values {
                    v.push(match anchor {
                        Some(t) => self.resolve(c, t)?,
                        None => match c {
                            C::V(x, t) => (x, t),
                            C::Text(s, at) => {
                                return err(
                                    at,
                                    format!("'{s}': {name} of text alone has no meaning"),
                                );
                            }
                        },
                    });
                }
                let mut ty = Ty::Null;
                for (i, (_, t)) in v.iter().enumerate() {
                    ty = match ty.unify(*t) {
                        Some(u) => u,
                        None => {
                            return err(
                                start(args[i]),
                                format!(
                                    "{name}'s arguments must share a type: {} and {}",
                                    self.type_name(ty),
                                    self.type_name(*t)
                                ),
                            );
                        }
                    };
                }
                if matches!(name.as_str(), "LEAST" | "GREATEST") && matches!(ty, Ty::Category(_)) {
                    return err(
                        at,
                        format!("{name} of categories has no meaning: categories have no order"),
                    );
                }
                let func = match name.as_str() {
                    "LEAST" => Func::Least,
                    "GREATEST" => Func::Greatest,
                    _ => Func::Coalesce,
                };
                C::V(
                    Expr::Call {
                        func,
                        args: v.into_iter().map(|x| x.0).collect(),
                    },
                    ty,
                )
            }
            "NULLIF" => {
                arity(2..=2)?;
                let mut it = values.into_iter();
                let (Some(a), Some(b)) = (it.next(), it.next()) else {
                    return err(at, "NULLIF takes 2 arguments");
                };
                let ((ax, at_), (bx, bt)) = self.pair(a, b, at)?;
                self.comparable(at_, bt, false, at)?;
                C::V(
                    Expr::Call {
                        func: Func::NullIf,
                        args: vec![ax, bx],
                    },
                    at_,
                )
            }
            "IF" => {
                arity(3..=3)?;
                let mut it = values.into_iter();
                let (Some(c), Some(a), Some(b)) = (it.next(), it.next(), it.next()) else {
                    return err(at, "IF takes 3 arguments");
                };
                let (cx_, ct) = match c {
                    C::V(x, t) => (x, t),
                    C::Text(s, at) => return err(at, format!("'{s}' is not a condition")),
                };
                if !matches!(ct, Ty::Bool | Ty::Null) {
                    return err(
                        at,
                        format!(
                            "IF's first argument must be true or false; this is {}",
                            self.type_name(ct)
                        ),
                    );
                }
                self.case(vec![cx_], vec![a], Some(b), at)?
            }
            "SAFE_DIVIDE" => {
                arity(2..=2)?;
                let v = self.all_values(values)?;
                numeric(self, &v)?;
                let mut it = v.into_iter();
                let (Some(a), Some(b)) = (it.next(), it.next()) else {
                    return err(at, "SAFE_DIVIDE takes 2 arguments");
                };
                C::V(bin(BinaryOp::Div, a.0, b.0), Ty::Float)
            }
            _ => {
                return err(
                    at,
                    format!(
                        "function {name} is not supported; the room's SQL has ABS, ROUND, FLOOR, CEIL, LEAST, GREATEST, COALESCE, IFNULL, NULLIF, IF, SAFE_DIVIDE, CAST, EXTRACT and CASE{}",
                        did_you_mean(
                            &name,
                            [
                                "ABS",
                                "ROUND",
                                "FLOOR",
                                "CEIL",
                                "LEAST",
                                "GREATEST",
                                "COALESCE",
                                "IFNULL",
                                "NULLIF",
                                "IF",
                                "SAFE_DIVIDE"
                            ]
                        )
                    ),
                );
            }
        })
    }

    fn all_values(&mut self, values: Vec<C>) -> R<Vec<(Expr, Ty)>> {
        values
            .into_iter()
            .map(|c| match c {
                C::V(x, t) => Ok((x, t)),
                C::Text(s, at) => err(at, format!("'{s}' is text; a number is needed here")),
            })
            .collect()
    }

    /// An aggregate of a per-customer relation (no bounds: nothing is released from it).
    fn inner_aggregate(
        &mut self,
        func: AggregateFn,
        f: &ast::Function,
        scope: &Scope,
        at: Location,
    ) -> R<(Aggregate, Ty)> {
        let name = ident_name(&f.name).to_ascii_uppercase();
        let FunctionArguments::List(list) = &f.args else {
            return err(at, format!("{name} needs an argument"));
        };
        if list
            .args
            .iter()
            .any(|a| matches!(a, FunctionArg::Named { .. } | FunctionArg::ExprNamed { .. }))
        {
            return err(
                at,
                format!(
                    "{name} in a WITH relation is per customer and takes no bounds; bounds go on the aggregate the query releases"
                ),
            );
        }
        let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
        if distinct && func != AggregateFn::Count {
            return err(
                at,
                format!("{name}(DISTINCT ...) is not supported; only COUNT(DISTINCT ...)"),
            );
        }
        let arg = match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]
                if func == AggregateFn::Count && !distinct =>
            {
                None
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => {
                Some(self.value(e, &mut Cx::Row(scope))?)
            }
            _ => return err(at, format!("{name} takes one argument")),
        };
        let ty = match (func, &arg) {
            (AggregateFn::Count, _) => Ty::Int,
            (AggregateFn::Avg, Some((_, t))) if t.numeric() => Ty::Float,
            (AggregateFn::Sum, Some((_, t))) if t.numeric() => *t,
            (AggregateFn::Min | AggregateFn::Max, Some((_, t))) => {
                if matches!(t, Ty::Category(_)) {
                    return err(
                        at,
                        format!("{name} of a category has no meaning: categories have no order"),
                    );
                }
                *t
            }
            (_, Some((_, t))) => {
                return err(
                    at,
                    format!("{name} needs numbers; this is {}", self.type_name(*t)),
                );
            }
            (_, None) => return err(at, format!("{name} needs an argument")),
        };
        Ok((
            Aggregate {
                func,
                arg: arg.map(|a| a.0),
                distinct,
            },
            ty,
        ))
    }

    // ---- the released SELECT -----------------------------------------------------------

    fn body(&mut self, select: &Select, clause: &DpClause) -> R<Released> {
        let at = select.select_token.0.span.start;
        reject_select_extras(select, at)?;
        if let Some(h) = &select.having {
            return err(
                start(h),
                "HAVING is not allowed on released aggregates: it would filter groups on exact values; the room's threshold withholds small groups",
            );
        }
        let (from, scope) = self.from(&select.from, at)?;
        let filter = match &select.selection {
            Some(w) => Some(self.condition(w, &mut Cx::Row(&scope))?),
            None => None,
        };
        // Options.
        let mut max_groups: Option<(u32, Location)> = None;
        for o in &clause.options {
            match o.name.as_str() {
                "max_groups_contributed" => {
                    let n = match &o.value {
                        OptionValue::Number(n) => n.parse::<u32>().ok(),
                        OptionValue::Parameter(p) => match self.parameter(p, o.at)? {
                            C::V(Expr::Literal(Value::Int(i)), _) => u32::try_from(i).ok(),
                            _ => None,
                        },
                        OptionValue::Word(_) => None,
                    };
                    match n {
                        Some(n) if n >= 1 => max_groups = Some((n, o.at)),
                        _ => {
                            return err(
                                o.at,
                                "max_groups_contributed must be a whole number of groups, at least 1",
                            );
                        }
                    }
                }
                "privacy_unit_column" => {
                    let OptionValue::Word(w) = &o.value else {
                        return err(
                            o.at,
                            "privacy_unit_column names a column: privacy_unit_column = customer_id",
                        );
                    };
                    let entities: Vec<&str> = self
                        .catalog
                        .tables
                        .iter()
                        .filter_map(|t| t.entity.as_deref())
                        .collect();
                    if !entities.is_empty() && !entities.iter().any(|e| e.eq_ignore_ascii_case(w)) {
                        return err(
                            o.at,
                            format!(
                                "the privacy unit is the customer ({}); privacy_unit_column cannot be {w}",
                                entities[0]
                            ),
                        );
                    }
                }
                "epsilon" | "delta" => {
                    return err(
                        o.at,
                        format!(
                            "OPTIONS({}): the room charges the job's cost (--cost) under the bank's policy, which sets the mechanism and delta; remove it",
                            o.name
                        ),
                    );
                }
                "max_rows_contributed" | "min_privacy_units_per_group" => {
                    return err(
                        o.at,
                        format!(
                            "OPTIONS({}) is not supported: bound each aggregate (contribution_bounds_per_group, max_rows_per_group); the bank's policy sets the threshold",
                            o.name
                        ),
                    );
                }
                other => {
                    return err(
                        o.at,
                        format!(
                            "unknown option {other}; the options are max_groups_contributed and privacy_unit_column{}",
                            did_you_mean(other, ["max_groups_contributed", "privacy_unit_column"])
                        ),
                    );
                }
            }
        }
        // The group key.
        let group_by = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
            _ => {
                return err(
                    at,
                    "GROUP BY ALL and GROUP BY modifiers are not supported; list the keys",
                );
            }
        };
        let alias_of = |name: &str| -> Option<(&SqlExpr, String)> {
            select.projection.iter().find_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias }
                    if alias.value.eq_ignore_ascii_case(name) =>
                {
                    Some((expr, alias.value.clone()))
                }
                _ => None,
            })
        };
        let mut keys: Vec<Key> = Vec::new();
        let mut domains: Vec<Domain> = Vec::new();
        let mut key_exprs: Vec<(Expr, String)> = Vec::new();
        if group_by.len() > MAX_KEY_PARTS {
            return err(
                start(&group_by[MAX_KEY_PARTS]),
                format!("a group key has at most {MAX_KEY_PARTS} parts"),
            );
        }
        for g in &group_by {
            let gat = start(g);
            if let SqlExpr::Value(v) = g
                && let SqlValue::Number(..) = v.value
            {
                return err(
                    gat,
                    "GROUP BY by position is not supported; name the key or its alias",
                );
            }
            let (expr_sql, alias) = match g {
                SqlExpr::Identifier(i) => match alias_of(&i.value) {
                    Some((e, a)) => (e, Some(a)),
                    None => (g, None),
                },
                _ => (g, None),
            };
            // The alias a SELECT item gives this expression, if any.
            let alias = alias.or_else(|| {
                select.projection.iter().find_map(|item| match item {
                    SelectItem::ExprWithAlias { expr, alias } if expr == expr_sql => {
                        Some(alias.value.clone())
                    }
                    _ => None,
                })
            });
            let (x, ty) = match self.value(expr_sql, &mut Cx::Row(&scope)) {
                Ok(v) => v,
                Err(mut e) => {
                    if e.message.contains("identifier column") {
                        e.message = format!(
                            "GROUP BY {g}: identifier columns are never group keys; group by a category column or a CASE with literal outputs"
                        );
                    } else if e.message.contains("privacy unit") {
                        e.message = format!(
                            "GROUP BY {g}: one group per customer would release each customer's numbers; group by a category column or a CASE with literal outputs"
                        );
                    }
                    return Err(e);
                }
            };
            let label = alias.clone().unwrap_or_else(|| match expr_sql {
                SqlExpr::Identifier(i) => i.value.clone(),
                SqlExpr::CompoundIdentifier(p) => {
                    p.last().map(|i| i.value.clone()).unwrap_or_default()
                }
                _ => format!("key_{}", keys.len() + 1),
            });
            let (domain, index) = self.key_domain(&x, ty, &label, g)?;
            keys.push(Key {
                expr: x.clone(),
                index,
            });
            domains.push(domain);
            key_exprs.push((x, label));
        }
        let groups: u64 = domains.iter().map(|d| self.domain_size(d) as u64).product();
        if keys.is_empty() {
            keys.push(Key {
                expr: Expr::Literal(Value::Int(0)),
                index: KeyIndex::Range { min: 0, size: 1 },
            });
            domains.push(Domain::Enumeration {
                name: "all".into(),
                members: vec!["all".into()],
            });
        }
        if groups > MAX_GROUPS {
            return err(
                at,
                format!(
                    "the group key has {groups} groups; at most {MAX_GROUPS} (use fewer parts or coarser CASE buckets)"
                ),
            );
        }
        let max_groups = match max_groups {
            Some((n, _)) => n,
            None if groups <= 1 => 1,
            None => {
                return err(
                    at,
                    format!(
                        "how many groups may one customer reach? Add OPTIONS (max_groups_contributed = N) after WITH DIFFERENTIAL_PRIVACY (the key has {groups} groups; each group a customer adds to costs noise)"
                    ),
                );
            }
        };
        // The released aggregates.
        let mut metrics = Vec::new();
        let mut sources = Vec::new();
        for (i, item) in select.projection.iter().enumerate() {
            let (e, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    return err(
                        at,
                        "SELECT * would release rows; list the group keys and the aggregates",
                    );
                }
                _ => return err(at, format!("SELECT item {} is not supported", i + 1)),
            };
            let eat = start(e);
            if let SqlExpr::Function(f) = e
                && matches!(
                    ident_name(&f.name).to_ascii_uppercase().as_str(),
                    "COUNT" | "SUM" | "AVG"
                )
            {
                let (metric, bounding) = self.released(f, alias, &scope, eat)?;
                if metrics.iter().any(|m: &Metric| m.name == metric.name) {
                    return err(
                        eat,
                        format!(
                            "two aggregates are named '{}'; name them apart with AS",
                            metric.name
                        ),
                    );
                }
                sources.push(MetricSource {
                    name: metric.name.clone(),
                    sql: e.to_string(),
                    bounding,
                });
                metrics.push(metric);
                continue;
            }
            if has_aggregate(e) {
                return err(
                    eat,
                    "a released number is one aggregate (COUNT, SUM or AVG with its bounds); compute ratios and sums of them from the released values",
                );
            }
            // Otherwise it must be one of the group keys.
            let is_key = match e {
                SqlExpr::Identifier(ident) => key_exprs
                    .iter()
                    .any(|(_, l)| l.eq_ignore_ascii_case(&ident.value)),
                _ => false,
            } || match self.value(e, &mut Cx::Row(&scope)) {
                Ok((x, _)) => key_exprs.iter().any(|(k, _)| *k == x),
                Err(err) => return Err(err),
            };
            if !is_key {
                return err(
                    eat,
                    format!(
                        "{e} is neither a group key nor an aggregate: add it to GROUP BY (from a public domain) or aggregate it"
                    ),
                );
            }
        }
        if metrics.is_empty() {
            return err(
                at,
                "the query releases no aggregate: add COUNT, SUM or AVG with its bounds",
            );
        }
        Ok((
            Body { from, filter, keys },
            metrics,
            domains,
            max_groups,
            sources,
        ))
    }

    fn domain_size(&self, d: &Domain) -> usize {
        match d {
            Domain::Enumeration { members, .. } => members.len(),
            Domain::Column { table, column } => self
                .domains
                .iter()
                .find(|i| {
                    i.column
                        .as_ref()
                        .is_some_and(|(t, c)| t == table && c == column)
                })
                .map_or(0, |i| i.labels.len()),
        }
    }

    /// The public domain of a group key, or why it has none.
    fn key_domain(&mut self, x: &Expr, ty: Ty, label: &str, g: &SqlExpr) -> R<(Domain, KeyIndex)> {
        let at = start(g);
        let range = |name: &str, from: i64, to: i64| {
            (
                Domain::Enumeration {
                    name: name.to_string(),
                    members: (from..=to).map(|i| i.to_string()).collect(),
                },
                KeyIndex::Range {
                    min: from,
                    size: (to - from + 1) as u32,
                },
            )
        };
        if let Expr::Call { func, .. } = x {
            match func {
                Func::Month => return Ok(range(label, 1, 12)),
                Func::Quarter => return Ok(range(label, 1, 4)),
                Func::Day => return Ok(range(label, 1, 31)),
                Func::DayOfWeek => return Ok(range(label, 1, 7)),
                Func::DayOfYear => return Ok(range(label, 1, 366)),
                Func::Year => {
                    return err(
                        at,
                        format!(
                            "GROUP BY {g}: years have no public range; bucket them with a CASE with literal outputs (CASE WHEN EXTRACT(YEAR FROM d) < 2025 THEN 'before 2025' ELSE '2025 on' END)"
                        ),
                    );
                }
                _ => {}
            }
        }
        if let Expr::Case { whens, otherwise } = x {
            let literals: Option<Vec<i64>> = whens
                .iter()
                .map(|(_, r)| r)
                .chain(otherwise.as_deref())
                .map(|r| match r {
                    Expr::Literal(Value::Int(i)) => Some(*i),
                    _ => None,
                })
                .collect();
            if let Some(mut values) = literals
                && ty == Ty::Int
            {
                if otherwise.is_none() {
                    return err(
                        at,
                        format!("GROUP BY {g}: add an ELSE, so every row has a label"),
                    );
                }
                let mut seen = Vec::new();
                values.retain(|v| {
                    if seen.contains(v) {
                        false
                    } else {
                        seen.push(*v);
                        true
                    }
                });
                return Ok((
                    Domain::Enumeration {
                        name: label.to_string(),
                        members: values.iter().map(|v| v.to_string()).collect(),
                    },
                    KeyIndex::List(values),
                ));
            }
        }
        match ty {
            Ty::Category(d) => {
                let info = &self.domains[d];
                Ok(match &info.column {
                    Some((t, c)) => (
                        Domain::Column {
                            table: t.clone(),
                            column: c.clone(),
                        },
                        KeyIndex::Category,
                    ),
                    None => {
                        if let Expr::Case {
                            otherwise: None, ..
                        } = x
                        {
                            return err(
                                at,
                                format!(
                                    "GROUP BY {g}: add an ELSE with a label, so every row has one"
                                ),
                            );
                        }
                        (
                            Domain::Enumeration {
                                name: label.to_string(),
                                members: info.labels.clone(),
                            },
                            KeyIndex::Category,
                        )
                    }
                })
            }
            Ty::Bool => Ok((
                Domain::Enumeration {
                    name: label.to_string(),
                    members: vec!["false".into(), "true".into()],
                },
                KeyIndex::Bool,
            )),
            other => err(
                at,
                format!(
                    "GROUP BY {g}: {} has no public domain, and each distinct value would be a group a customer could be alone in; group by a category column, a CASE with literal outputs, a date part (MONTH, QUARTER, DAY, DAYOFWEEK, DAYOFYEAR) or a boolean",
                    self.type_name(other)
                ),
            ),
        }
    }

    /// A released aggregate: COUNT, COUNT(DISTINCT customer), SUM or AVG with its bounds.
    fn released(
        &mut self,
        f: &ast::Function,
        alias: Option<String>,
        scope: &Scope,
        at: Location,
    ) -> R<(Metric, String)> {
        let func = ident_name(&f.name).to_ascii_uppercase();
        let FunctionArguments::List(list) = &f.args else {
            return err(at, format!("{func} needs an argument"));
        };
        if f.filter.is_some() || f.over.is_some() {
            return err(
                at,
                format!("{func}: FILTER and OVER are not supported; use a WHERE or a CASE"),
            );
        }
        let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
        let mut positional: Vec<&FunctionArgExpr> = Vec::new();
        let mut per_group: Option<(f64, f64, Location)> = None;
        let mut per_row: Option<(f64, f64, Location)> = None;
        let mut max_rows: Option<(u32, Location)> = None;
        let mut decimals: Option<u8> = None;
        for a in &list.args {
            match a {
                FunctionArg::Unnamed(x) => positional.push(x),
                FunctionArg::Named { name, arg, .. } => {
                    let n = name.value.to_ascii_lowercase();
                    let FunctionArgExpr::Expr(v) = arg else {
                        return err(name.span.start, format!("{n} needs a value"));
                    };
                    let vat = start(v);
                    match n.as_str() {
                        "contribution_bounds_per_group" | "contribution_bounds_per_row" => {
                            let (lo, hi) = self.bounds(v, &n)?;
                            if n == "contribution_bounds_per_group" {
                                per_group = Some((lo, hi, vat))
                            } else {
                                per_row = Some((lo, hi, vat))
                            }
                        }
                        "max_rows_per_group" => match self.constant(v)? {
                            Some(x)
                                if x >= 1.0
                                    && x.fract() == 0.0
                                    && x <= f64::from(MAX_ROWS_PER_GROUP) =>
                            {
                                max_rows = Some((x as u32, vat))
                            }
                            _ => {
                                return err(
                                    vat,
                                    format!(
                                        "max_rows_per_group must be a whole number from 1 to {MAX_ROWS_PER_GROUP}"
                                    ),
                                );
                            }
                        },
                        "decimals" => match self.constant(v)? {
                            Some(x) if (0.0..=9.0).contains(&x) && x.fract() == 0.0 => {
                                decimals = Some(x as u8)
                            }
                            _ => return err(vat, "decimals must be a whole number from 0 to 9"),
                        },
                        other => {
                            return err(
                                name.span.start,
                                format!(
                                    "unknown argument {other}; {func} takes contribution_bounds_per_group, contribution_bounds_per_row, max_rows_per_group and decimals{}",
                                    did_you_mean(
                                        other,
                                        [
                                            "contribution_bounds_per_group",
                                            "contribution_bounds_per_row",
                                            "max_rows_per_group",
                                            "decimals"
                                        ]
                                    )
                                ),
                            );
                        }
                    }
                }
                FunctionArg::ExprNamed { .. } => return err(at, "name arguments as name => value"),
            }
        }
        let [arg] = positional.as_slice() else {
            return err(
                at,
                format!("{func} takes one argument (then its bounds, by name)"),
            );
        };
        let shown = f.to_string();
        let name = alias.unwrap_or_else(|| {
            let col = match arg {
                FunctionArgExpr::Expr(SqlExpr::Identifier(i)) => Some(i.value.clone()),
                FunctionArgExpr::Expr(SqlExpr::CompoundIdentifier(p)) => {
                    p.last().map(|i| i.value.clone())
                }
                _ => None,
            };
            match (func.as_str(), distinct, col) {
                ("COUNT", true, _) => "customers".to_string(),
                ("COUNT", false, _) => "count".to_string(),
                (f, _, Some(c)) => format!("{}_{}", f.to_ascii_lowercase(), c.to_ascii_lowercase()),
                (f, _, None) => f.to_ascii_lowercase(),
            }
        });
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return err(
                at,
                format!(
                    "'{name}' cannot name a released number: use letters, digits and _ (AS name)"
                ),
            );
        }
        // COUNT(DISTINCT customer_id): customers per group.
        if func == "COUNT" && distinct {
            let FunctionArgExpr::Expr(e) = arg else {
                return err(
                    at,
                    "COUNT(DISTINCT *) has no meaning; count customers with COUNT(DISTINCT customer_id)",
                );
            };
            if !self.is_entity(scope, e) {
                return err(
                    at,
                    format!(
                        "COUNT(DISTINCT {e}): only distinct customers are released (COUNT(DISTINCT customer_id)); count distinct values per customer in a WITH relation"
                    ),
                );
            }
            if per_group.is_some() || per_row.is_some() || max_rows.is_some() {
                return err(
                    at,
                    "COUNT(DISTINCT customer_id) counts each customer once per group: it takes no bounds",
                );
            }
            return Ok((
                Metric {
                    name,
                    kind: MetricKind::Distinct,
                    lower: 0.0,
                    upper: 0.0,
                    decimals: 2,
                    max_contributions_per_group: 1,
                    contribution: Contribution::EachRow,
                    value: None,
                },
                "one per customer with a row in the group".into(),
            ));
        }
        if distinct {
            return err(
                at,
                format!("{func}(DISTINCT ...) is not supported; only COUNT(DISTINCT customer_id)"),
            );
        }
        let value = match arg {
            FunctionArgExpr::Wildcard if func == "COUNT" => None,
            FunctionArgExpr::Wildcard => return err(at, format!("{func}(*) has no meaning")),
            FunctionArgExpr::Expr(e) => {
                let (x, t) = self.value(e, &mut Cx::Row(scope))?;
                if func != "COUNT" && !t.numeric() {
                    return err(
                        start(e),
                        format!("{func} needs a number; this is {}", self.type_name(t)),
                    );
                }
                Some((x, t, e))
            }
            _ => return err(at, format!("{func}(t.*) is not supported")),
        };
        if func == "COUNT" {
            if per_row.is_some() || max_rows.is_some() {
                return err(
                    at,
                    "a count is bounded per group: COUNT(*, contribution_bounds_per_group => (0, N))",
                );
            }
            let Some((lo, hi, bat)) = per_group else {
                return err(
                    at,
                    format!(
                        "{shown} needs contribution bounds: COUNT({}, contribution_bounds_per_group => (0, N)), N the most rows one customer adds to one group (the rest are not counted)",
                        match arg {
                            FunctionArgExpr::Expr(e) => e.to_string(),
                            _ => "*".into(),
                        }
                    ),
                );
            };
            if lo != 0.0 || hi < 1.0 || hi.fract() != 0.0 || hi > f64::from(MAX_ROWS_PER_GROUP) {
                return err(
                    bat,
                    format!(
                        "a count's bounds are (0, N) with N a whole number from 1 to {MAX_ROWS_PER_GROUP}"
                    ),
                );
            }
            return Ok((
                Metric {
                    name,
                    kind: MetricKind::Count,
                    lower: 0.0,
                    upper: 1.0,
                    decimals: 2,
                    max_contributions_per_group: hi as u32,
                    contribution: Contribution::EachRow,
                    value: value.map(|v| v.0),
                },
                format!("one per row, at most {} per customer and group", hi as u32),
            ));
        }
        let Some((x, _, e)) = value else {
            return err(at, format!("{func} needs an argument"));
        };
        let kind = if func == "SUM" {
            MetricKind::Sum
        } else {
            MetricKind::Mean
        };
        let suggestion = self.suggest_bounds(e, scope);
        let (lower, upper, contribution, max, bounding) = match (per_group, per_row) {
            (Some(_), Some(_)) => {
                return err(
                    at,
                    format!(
                        "{func}: give contribution_bounds_per_group or contribution_bounds_per_row, not both"
                    ),
                );
            }
            (Some((lo, hi, _)), None) => {
                if max_rows.is_some() {
                    return err(
                        at,
                        "max_rows_per_group goes with contribution_bounds_per_row (per group, a customer contributes once)",
                    );
                }
                let (c, words) = if kind == MetricKind::Sum {
                    (
                        Contribution::GroupTotal,
                        format!("the customer's total in the group, clamped to [{lo}, {hi}]"),
                    )
                } else {
                    (
                        Contribution::GroupMean,
                        format!("the customer's mean in the group, clamped to [{lo}, {hi}]"),
                    )
                };
                (lo, hi, c, 1, words)
            }
            (None, Some((lo, hi, _))) => {
                let Some((n, _)) = max_rows else {
                    return err(
                        at,
                        format!(
                            "{func} with contribution_bounds_per_row needs max_rows_per_group => N: how many rows of one customer count in one group"
                        ),
                    );
                };
                (
                    lo,
                    hi,
                    Contribution::EachRow,
                    n,
                    format!(
                        "each row clamped to [{lo}, {hi}], at most {n} rows per customer and group"
                    ),
                )
            }
            (None, None) => {
                return err(
                    at,
                    format!(
                        "{shown} needs contribution bounds, which fix how much one customer can move it: {func}({e}, contribution_bounds_per_group => {suggestion}) clamps each customer's {} in a group, or {func}({e}, contribution_bounds_per_row => {suggestion}, max_rows_per_group => 10) each row",
                        if kind == MetricKind::Sum {
                            "total"
                        } else {
                            "mean"
                        }
                    ),
                );
            }
        };
        Ok((
            Metric {
                name,
                kind,
                lower,
                upper,
                decimals: decimals.unwrap_or(2),
                max_contributions_per_group: max,
                contribution,
                value: Some(x),
            },
            bounding,
        ))
    }

    /// Bounds to suggest for an aggregated expression: the column's declared range when the
    /// schema gives one.
    fn suggest_bounds(&mut self, e: &SqlExpr, scope: &Scope) -> String {
        let parts: Vec<ast::Ident> = match e {
            SqlExpr::Identifier(i) => vec![i.clone()],
            SqlExpr::CompoundIdentifier(p) => p.clone(),
            _ => return "(0, 1000)".into(),
        };
        let name = parts.last().map(|p| p.value.clone()).unwrap_or_default();
        for s in &scope.sources {
            if let SourceKind::Table { catalog, .. } = s.kind
                && (parts.len() == 1 || s.alias.eq_ignore_ascii_case(&parts[0].value))
                && let Some(c) = self.catalog.tables[catalog]
                    .columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(&name))
                && let (Some(lo), Some(hi)) = (c.min, c.max)
            {
                return format!("({}, {})", lo.max(0.0), hi.min(lo.max(0.0) + 1000.0));
            }
        }
        "(0, 1000)".into()
    }

    /// `(lower, upper)` of a bounds argument.
    fn bounds(&mut self, v: &SqlExpr, name: &str) -> R<(f64, f64)> {
        let at = start(v);
        let SqlExpr::Tuple(items) = v else {
            return err(
                at,
                format!("{name} => (lower, upper), two numbers in parentheses"),
            );
        };
        let [lo, hi] = items.as_slice() else {
            return err(
                at,
                format!("{name} => (lower, upper), two numbers in parentheses"),
            );
        };
        let (Some(lo), Some(hi)) = (self.constant(lo)?, self.constant(hi)?) else {
            return err(
                at,
                format!("{name}: the bounds must be numbers or @parameters"),
            );
        };
        if !(lo.is_finite() && hi.is_finite()) || lo > hi {
            return err(at, format!("{name}: need lower <= upper, both finite"));
        }
        Ok((lo, hi))
    }

    /// A numeric constant (a number, possibly negated, or a parameter).
    fn constant(&mut self, v: &SqlExpr) -> R<Option<f64>> {
        Ok(match self.expr(v, &mut Cx::Row(&Scope::default())) {
            Ok(C::V(Expr::Literal(Value::Int(i)), _)) => Some(i as f64),
            Ok(C::V(Expr::Literal(Value::Float(f)), _)) => Some(f),
            Ok(_) => None,
            Err(e) => return Err(e),
        })
    }
}

fn unreachable_text() -> R<(Expr, Ty)> {
    Err(SqlError {
        line: 1,
        column: 1,
        message: "internal: unresolved text".into(),
    })
}

fn other_join_name(op: &JoinOperator) -> &'static str {
    match op {
        JoinOperator::Right(_) | JoinOperator::RightOuter(_) => "RIGHT JOIN",
        JoinOperator::FullOuter(_) => "FULL JOIN",
        JoinOperator::Semi(_) | JoinOperator::LeftSemi(_) | JoinOperator::RightSemi(_) => {
            "SEMI JOIN"
        }
        JoinOperator::Anti(_) | JoinOperator::LeftAnti(_) | JoinOperator::RightAnti(_) => {
            "ANTI JOIN"
        }
        _ => "this join",
    }
}

fn inner_aggregate(name: &str) -> Option<AggregateFn> {
    Some(match name.to_ascii_uppercase().as_str() {
        "COUNT" => AggregateFn::Count,
        "SUM" => AggregateFn::Sum,
        "AVG" => AggregateFn::Avg,
        "MIN" => AggregateFn::Min,
        "MAX" => AggregateFn::Max,
        _ => return None,
    })
}

/// Whether `e` contains an aggregate call.
fn has_aggregate(e: &SqlExpr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if let SqlExpr::Function(f) = x
            && inner_aggregate(&ident_name(&f.name)).is_some()
        {
            found = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

fn plain_args<'a>(f: &'a ast::Function, name: &str, at: Location) -> R<Vec<&'a SqlExpr>> {
    match &f.args {
        FunctionArguments::None => Ok(Vec::new()),
        FunctionArguments::List(list) => {
            if list.duplicate_treatment.is_some() {
                return err(at, format!("{name} takes no DISTINCT"));
            }
            list.args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                    _ => err(at, format!("{name} takes plain arguments")),
                })
                .collect()
        }
        FunctionArguments::Subquery(_) => err(at, format!("{name}: subqueries are not supported")),
    }
}

fn projection_item(item: &SelectItem, i: usize, at: Location) -> R<(&SqlExpr, String)> {
    match item {
        SelectItem::ExprWithAlias { expr, alias } => Ok((expr, alias.value.clone())),
        SelectItem::UnnamedExpr(e) => {
            let name = match e {
                SqlExpr::Identifier(id) => id.value.clone(),
                SqlExpr::CompoundIdentifier(p) => {
                    p.last().map(|x| x.value.clone()).unwrap_or_default()
                }
                _ => {
                    return err(
                        start(e),
                        format!("name output {} of this relation: {e} AS name", i + 1),
                    );
                }
            };
            Ok((e, name))
        }
        _ => err(
            at,
            "list the columns of a WITH relation (SELECT * is not supported)",
        ),
    }
}

fn reject_select_extras(select: &Select, at: Location) -> R<()> {
    if select.distinct.is_some() {
        return err(at, "SELECT DISTINCT is not supported; group instead");
    }
    if select.top.is_some() {
        return err(at, "TOP is not supported");
    }
    if select.qualify.is_some() || !select.named_window.is_empty() {
        return err(at, "window functions are not supported");
    }
    if !select.lateral_views.is_empty()
        || !select.sort_by.is_empty()
        || !select.cluster_by.is_empty()
    {
        return err(at, "this SELECT clause is not supported");
    }
    Ok(())
}

/// `YYYY-MM-DD` as days since 1970-01-01.
fn parse_date(s: &str) -> Option<i32> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > 31 {
        return None;
    }
    let days = strongroom_sql_plan::eval::days_from_civil(y, m, d);
    // Refuse 2025-02-30 and the like: the day must round-trip.
    let back = strongroom_sql_plan::eval::civil(i32::try_from(days).ok()?);
    (back == (y, m, d)).then_some(days as i32)
}

/// Compiles a parsed query against `catalog`.
pub(crate) fn compile(
    parsed: &Parsed,
    catalog: &Catalog,
    parameters: &[(String, String)],
) -> R<(Plan, Vec<MetricSource>)> {
    let query = &parsed.query;
    let SetExpr::Select(select) = &*query.body else {
        return err(
            Location { line: 1, column: 1 },
            "the query must be one SELECT",
        );
    };
    let select_at = select.select_token.0.span.start;
    let mut clause: Option<&DpClause> = None;
    for c in &parsed.clauses {
        if c.select_at == select_at {
            clause = Some(c);
        } else {
            return err(
                c.select_at,
                "WITH DIFFERENTIAL_PRIVACY belongs to the outermost SELECT only; a WITH relation is per customer",
            );
        }
    }
    let Some(clause) = clause else {
        return err(
            select_at,
            "the released SELECT needs the differential-privacy clause: SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = N) ...",
        );
    };
    if query.order_by.is_some() {
        return err(
            select_at,
            "ORDER BY is not allowed: the room releases every group of the key's public domain; sort the released table instead",
        );
    }
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return err(
            select_at,
            "LIMIT is not allowed: the room releases every group of the key's public domain",
        );
    }
    let mut c = Compiler {
        catalog,
        parameters,
        tables: Vec::new(),
        table_catalog: Vec::new(),
        relations: Vec::new(),
        domains: Vec::new(),
        ctes: Vec::new(),
    };
    if let Some(with) = &query.with {
        if with.recursive {
            return err(
                with.with_token.0.span.start,
                "WITH RECURSIVE is not supported",
            );
        }
        for cte in &with.cte_tables {
            let name = cte.alias.name.value.clone();
            let at = cte.alias.name.span.start;
            if !cte.alias.columns.is_empty() {
                return err(
                    at,
                    format!("{name}(columns...): name the columns in the SELECT with AS instead"),
                );
            }
            if c.ctes.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                return err(at, format!("WITH defines '{name}' twice"));
            }
            let info = c.relation(&cte.query, at)?;
            c.ctes.push((name, info));
        }
    }
    let (body, metrics, domains, max_groups, sources) = c.body(select, clause)?;
    // A table the query names but reads no column of still needs its rows: read its first
    // column (inside the sandbox; nothing of it is released but through the aggregates).
    for (i, read) in c.tables.iter_mut().enumerate() {
        if read.columns.is_empty() {
            let table = &catalog.tables[c.table_catalog[i]];
            match table.columns.first() {
                Some(col) => read.columns.push((col.name.clone(), col.ty)),
                None => {
                    return err(
                        select_at,
                        format!("table {} has no column a query may read", table.name),
                    );
                }
            }
        }
    }
    Ok((
        Plan {
            version: PLAN_VERSION,
            name: MANIFEST_NAME.into(),
            max_groups_per_entity: max_groups,
            tables: c.tables,
            domains,
            metrics,
            relations: c.relations,
            body,
        },
        sources,
    ))
}
