//! Portable statements: the one way the room talks to its database, SQLite or PostgreSQL.
//!
//! Statements are written once, with `?` placeholders, in the SQL both databases run. A
//! [`Conn`] runs them on SQLite (rusqlite, on the calling thread) or on PostgreSQL (sqlx, each
//! statement driven to completion on the calling thread), and hands the closures that read the
//! results a [`Row`] whose [`Row::get`] converts the same way on both. Parameters are
//! [`ToValue`]s, bound with [`crate::params!`].

use std::borrow::Cow;
use std::cell::RefCell;

use rusqlite::types::{ToSqlOutput, ValueRef};
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::query::Query;
use sqlx::{Column, Postgres, Row as _, TypeInfo};

/// Parameters of a statement: `params![a, b, c]`, each a [`ToValue`].
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::room::db::ToValue]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::room::db::ToValue),+] as &[&dyn $crate::room::db::ToValue]
    };
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// SQLite refused it.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused it, or the connection failed.
    #[error("{0}")]
    Postgres(#[from] sqlx::Error),
    /// A statement that must return a row returned none.
    #[error("the query returned no rows")]
    NoRows,
    /// A column did not hold what its reader expected.
    #[error("column {column}: {problem}")]
    Decode {
        /// The column, by position or name.
        column: String,
        /// What was wrong.
        problem: String,
    },
}

impl SqlError {
    /// Whether the database refused the statement for a uniqueness constraint.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            SqlError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            SqlError::Postgres(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

/// `query_row(...).optional()`: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    /// `Ok(None)` in place of [`SqlError::NoRows`].
    fn optional(self) -> Result<Option<T>, SqlError>;
}

impl<T> OptionalExtension<T> for Result<T, SqlError> {
    fn optional(self) -> Result<Option<T>, SqlError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(SqlError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The type of a parameter, kept with a NULL so PostgreSQL knows what it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 64-bit integer.
    Int,
    /// 64-bit float.
    Real,
    /// UTF-8 text.
    Text,
    /// Bytes.
    Blob,
}

/// A parameter's value.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// NULL of a kind.
    Null(Kind),
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// What can be a statement's parameter.
pub trait ToValue {
    /// Its value.
    fn to_value(&self) -> Value<'_>;
}

/// The kind of a parameter type (what a NULL of it is).
pub trait Kinded {
    /// Its kind.
    const KIND: Kind;
}

impl<T: Kinded + ?Sized> Kinded for &T {
    const KIND: Kind = T::KIND;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}

impl<T: Kinded> Kinded for Option<T> {
    const KIND: Kind = T::KIND;
}

impl<T: ToValue + Kinded> ToValue for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null(T::KIND),
        }
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl Kinded for $t {
            const KIND: Kind = Kind::Int;
        }

        impl ToValue for $t {
            fn to_value(&self) -> Value<'_> {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_value!(i64, i32, u32, bool);

impl Kinded for f64 {
    const KIND: Kind = Kind::Real;
}

impl ToValue for f64 {
    fn to_value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

impl Kinded for str {
    const KIND: Kind = Kind::Text;
}

impl ToValue for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Kinded for String {
    const KIND: Kind = Kind::Text;
}

impl ToValue for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Kinded for [u8] {
    const KIND: Kind = Kind::Blob;
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Kinded for Vec<u8> {
    const KIND: Kind = Kind::Blob;
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<const N: usize> Kinded for [u8; N] {
    const KIND: Kind = Kind::Blob;
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Value::Null(_) => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(v) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(v)),
            Value::Real(v) => ToSqlOutput::Owned(rusqlite::types::Value::Real(v)),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Blob(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
        })
    }
}

/// A value read from a column.
#[derive(Debug, Clone)]
pub enum Cell<'a> {
    /// NULL.
    Null,
    /// An integer (booleans read as 0 and 1).
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(Cow<'a, str>),
    /// Bytes.
    Blob(Cow<'a, [u8]>),
}

/// What a column can be read as.
pub trait FromValue: Sized {
    /// Converts the cell, or says why not.
    fn from_cell(cell: Cell<'_>) -> Result<Self, String>;
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

impl FromValue for i64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Int(v) => Ok(v),
            other => Err(format!("expected an integer, found {}", kind_of(&other))),
        }
    }
}

impl FromValue for bool {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        i64::from_cell(cell).map(|v| v != 0)
    }
}

impl FromValue for f64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Real(v) => Ok(v),
            Cell::Int(v) => Ok(v as f64),
            other => Err(format!("expected a number, found {}", kind_of(&other))),
        }
    }
}

impl FromValue for String {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Text(v) => Ok(v.into_owned()),
            other => Err(format!("expected text, found {}", kind_of(&other))),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Blob(v) => Ok(v.into_owned()),
            other => Err(format!("expected bytes, found {}", kind_of(&other))),
        }
    }
}

fn kind_of(cell: &Cell<'_>) -> &'static str {
    match cell {
        Cell::Null => "NULL",
        Cell::Int(_) => "an integer",
        Cell::Real(_) => "a float",
        Cell::Text(_) => "text",
        Cell::Blob(_) => "bytes",
    }
}

/// A column, by position (from 0) or by name.
pub trait RowIndex: rusqlite::RowIndex + sqlx::ColumnIndex<PgRow> + std::fmt::Debug + Copy {}
impl RowIndex for usize {}
impl RowIndex for &str {}

/// A row of a result.
pub struct Row<'r>(RowOf<'r>);

enum RowOf<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r PgRow),
}

impl Row<'_> {
    /// The value of column `index`, converted to `T`.
    pub fn get<I: RowIndex, T: FromValue>(&self, index: I) -> Result<T, SqlError> {
        let decode = |problem: String| SqlError::Decode {
            column: format!("{index:?}"),
            problem,
        };
        let cell = match &self.0 {
            RowOf::Sqlite(row) => match row.get_ref(index)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(v) => Cell::Text(Cow::Borrowed(
                    std::str::from_utf8(v).map_err(|e| decode(e.to_string()))?,
                )),
                ValueRef::Blob(v) => Cell::Blob(Cow::Borrowed(v)),
            },
            RowOf::Postgres(row) => postgres_cell(row, index)?,
        };
        T::from_cell(cell).map_err(decode)
    }
}

/// Reads a PostgreSQL column as a [`Cell`], by its type.
fn postgres_cell<I: RowIndex>(row: &PgRow, index: I) -> Result<Cell<'static>, SqlError> {
    let position = index.index(row)?;
    let type_name = row.column(position).type_info().name().to_string();
    let cell = match type_name.as_str() {
        "INT8" => row.try_get::<Option<i64>, _>(position)?.map(Cell::Int),
        "INT4" => row
            .try_get::<Option<i32>, _>(position)?
            .map(|v| Cell::Int(v.into())),
        "INT2" => row
            .try_get::<Option<i16>, _>(position)?
            .map(|v| Cell::Int(v.into())),
        "BOOL" => row
            .try_get::<Option<bool>, _>(position)?
            .map(|v| Cell::Int(v.into())),
        "FLOAT8" => row.try_get::<Option<f64>, _>(position)?.map(Cell::Real),
        "FLOAT4" => row
            .try_get::<Option<f32>, _>(position)?
            .map(|v| Cell::Real(v.into())),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => row
            .try_get::<Option<String>, _>(position)?
            .map(|v| Cell::Text(Cow::Owned(v))),
        "BYTEA" => row
            .try_get::<Option<Vec<u8>>, _>(position)?
            .map(|v| Cell::Blob(Cow::Owned(v))),
        other => {
            return Err(SqlError::Decode {
                column: format!("{index:?}"),
                problem: format!(
                    "PostgreSQL type {other} is not one the room reads (CAST it to BIGINT or TEXT)"
                ),
            });
        }
    };
    Ok(cell.unwrap_or(Cell::Null))
}

/// A connection inside one read or write: every statement of the room runs on one.
pub struct Conn<'c>(ConnOf<'c>);

enum ConnOf<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres {
        conn: RefCell<&'c mut PgConnection>,
        handle: &'c tokio::runtime::Handle,
    },
}

impl<'c> Conn<'c> {
    /// A connection on SQLite.
    pub fn sqlite(conn: &'c rusqlite::Connection) -> Self {
        Conn(ConnOf::Sqlite(conn))
    }

    /// A connection on PostgreSQL, whose statements `handle` drives (from a thread that is not
    /// itself driving a runtime).
    pub fn postgres(conn: &'c mut PgConnection, handle: &'c tokio::runtime::Handle) -> Self {
        Conn(ConnOf::Postgres {
            conn: RefCell::new(conn),
            handle,
        })
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.0, ConnOf::Postgres { .. })
    }

    /// A statement (on SQLite, from the connection's cache of prepared statements; PostgreSQL
    /// connections keep their own).
    pub fn prepare_cached<'s>(&'s self, sql: &'s str) -> Result<Statement<'s, 'c>, SqlError> {
        Ok(Statement(match &self.0 {
            ConnOf::Sqlite(conn) => StatementOf::Sqlite(conn.prepare_cached(sql)?),
            ConnOf::Postgres { .. } => StatementOf::Postgres {
                conn: self,
                sql: numbered_placeholders(sql),
            },
        }))
    }

    /// Runs a statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize, SqlError> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// Runs a query and reads its first row with `f`; [`SqlError::NoRows`] if it has none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        f: impl FnOnce(&Row<'_>) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// The PostgreSQL connection and the runtime that drives its statements.
    fn postgres_parts(
        &self,
    ) -> (
        std::cell::RefMut<'_, &'c mut PgConnection>,
        &'c tokio::runtime::Handle,
    ) {
        match &self.0 {
            ConnOf::Postgres { conn, handle } => (conn.borrow_mut(), handle),
            ConnOf::Sqlite(_) => unreachable!("a PostgreSQL statement on a SQLite connection"),
        }
    }
}

/// A statement ready to run.
pub struct Statement<'s, 'c>(StatementOf<'s, 'c>);

enum StatementOf<'s, 'c> {
    Sqlite(rusqlite::CachedStatement<'s>),
    Postgres { conn: &'s Conn<'c>, sql: String },
}

fn bound<'q>(sql: &'q str, params: &'q [&'q dyn ToValue]) -> Query<'q, Postgres, PgArguments> {
    let mut query = sqlx::query(sql);
    for p in params {
        query = match p.to_value() {
            Value::Null(Kind::Int) => query.bind(None::<i64>),
            Value::Null(Kind::Real) => query.bind(None::<f64>),
            Value::Null(Kind::Text) => query.bind(None::<String>),
            Value::Null(Kind::Blob) => query.bind(None::<Vec<u8>>),
            Value::Int(v) => query.bind(v),
            Value::Real(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::Blob(v) => query.bind(v),
        };
    }
    query
}

fn sqlite_params<'p>(params: &'p [&'p dyn ToValue]) -> Vec<Value<'p>> {
    params.iter().map(|p| p.to_value()).collect()
}

impl Statement<'_, '_> {
    /// Runs it; returns the rows it changed.
    pub fn execute(&mut self, params: &[&dyn ToValue]) -> Result<usize, SqlError> {
        match &mut self.0 {
            StatementOf::Sqlite(s) => {
                Ok(s.execute(rusqlite::params_from_iter(sqlite_params(params)))?)
            }
            StatementOf::Postgres { conn, sql } => {
                let (mut c, handle) = conn.postgres_parts();
                let done = handle.block_on(bound(sql, params).execute(&mut **c))?;
                Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs it and reads its first row with `f`; [`SqlError::NoRows`] if it has none.
    pub fn query_row<T>(
        &mut self,
        params: &[&dyn ToValue],
        f: impl FnOnce(&Row<'_>) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        match &mut self.0 {
            StatementOf::Sqlite(s) => {
                let mut rows = s.query(rusqlite::params_from_iter(sqlite_params(params)))?;
                match rows.next()? {
                    Some(row) => f(&Row(RowOf::Sqlite(row))),
                    None => Err(SqlError::NoRows),
                }
            }
            StatementOf::Postgres { conn, sql } => {
                let row = {
                    let (mut c, handle) = conn.postgres_parts();
                    handle.block_on(bound(sql, params).fetch_optional(&mut **c))?
                };
                match row {
                    Some(row) => f(&Row(RowOf::Postgres(&row))),
                    None => Err(SqlError::NoRows),
                }
            }
        }
    }

    /// Whether it returns a row.
    pub fn exists(&mut self, params: &[&dyn ToValue]) -> Result<bool, SqlError> {
        match self.query_row(params, |_| Ok(())) {
            Ok(()) => Ok(true),
            Err(SqlError::NoRows) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs it and reads every row with `f`, in order.
    pub fn query_map<T>(
        &mut self,
        params: &[&dyn ToValue],
        mut f: impl FnMut(&Row<'_>) -> Result<T, SqlError>,
    ) -> Result<std::vec::IntoIter<Result<T, SqlError>>, SqlError> {
        let mut out = Vec::new();
        match &mut self.0 {
            StatementOf::Sqlite(s) => {
                let mut rows = s.query(rusqlite::params_from_iter(sqlite_params(params)))?;
                while let Some(row) = rows.next()? {
                    out.push(f(&Row(RowOf::Sqlite(row))));
                }
            }
            StatementOf::Postgres { conn, sql } => {
                let rows = {
                    let (mut c, handle) = conn.postgres_parts();
                    handle.block_on(bound(sql, params).fetch_all(&mut **c))?
                };
                for row in &rows {
                    out.push(f(&Row(RowOf::Postgres(row))));
                }
            }
        }
        Ok(out.into_iter())
    }
}

/// `?` placeholders numbered as PostgreSQL writes them (`$1`, `$2`, ...), outside quoted text.
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::numbered_placeholders;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
        assert_eq!(numbered_placeholders("SELECT 1"), "SELECT 1");
    }
}
