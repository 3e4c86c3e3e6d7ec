//! Validating rows against a dataset schema, cell by cell: the one place the rules for each role
//! live (entity keys present, integers and floats in bounds, dates, booleans, dictionary
//! membership or the declared "other" member). Used by `dev run`'s CSV loading and by sealing.

use std::collections::HashMap;

use super::csv_input::{InputError, check_bounds, parse_bool, parse_date};
use super::schema::{ColumnSchema, OnUnknown, Role, TableSchema};

/// One validated cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// The entity key's place: the key itself is returned beside the cells, once.
    Entity,
    /// An identifier.
    Text(String),
    /// int.
    Int(i64),
    /// float.
    Float(f64),
    /// bool.
    Bool(bool),
    /// date (days since 1970-01-01).
    Date(i32),
    /// category code.
    Category(u32),
}

/// Where a row was read from.
#[derive(Debug, Clone, Copy)]
pub enum Location {
    /// CSV line (1-based).
    Line(u64),
    /// Parquet row group and row within it (0-based).
    RowGroup(usize, u64),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Line(l) => write!(f, "line {l}"),
            Location::RowGroup(g, r) => write!(f, "row group {g}, row {r}"),
        }
    }
}

/// How to read one schema column from a file: its position, its schema, and for a category
/// its dictionary lookup and the code unknown values map to (if any).
type ColumnPlan = (usize, ColumnSchema, Option<Dictionary>, Option<u32>);

/// A category column's values to their codes. Looked up once per cell; the keys are the bank's
/// own public dictionary, so a fast hasher (seeded per process) is safe.
type Dictionary = HashMap<String, u32, foldhash::fast::RandomState>;

/// Checks each row of one table against its schema.
pub struct RowValidator {
    columns: Vec<ColumnPlan>,
}

/// Longest value a cell may hold, in bytes.
pub const MAX_FIELD_BYTES: usize = 64 << 10;

impl RowValidator {
    /// A validator for `schema` over a file with `header`.
    pub fn new(
        schema: &TableSchema,
        header: &[String],
        path: &str,
    ) -> Result<RowValidator, InputError> {
        for c in &schema.columns {
            if !header.contains(&c.name) {
                return Err(InputError::Header {
                    path: path.into(),
                    message: format!("column '{}' of table '{}' is missing", c.name, schema.name),
                });
            }
        }
        if let Some(twice) = header
            .iter()
            .enumerate()
            .find(|(i, h)| header[..*i].contains(h))
            .map(|(_, h)| h)
        {
            return Err(InputError::Header {
                path: path.into(),
                message: format!("column '{twice}' appears twice in the header"),
            });
        }
        if let Some(extra) = header
            .iter()
            .find(|h| !schema.columns.iter().any(|c| &c.name == *h))
        {
            return Err(InputError::Header {
                path: path.into(),
                message: format!(
                    "column '{extra}' is not in the schema of table '{}'",
                    schema.name
                ),
            });
        }
        let position = |name: &str| header.iter().position(|h| h == name).unwrap_or(0);
        let columns = schema
            .columns
            .iter()
            .map(|c| {
                let dict: Option<Dictionary> = c.dictionary.as_ref().map(|d| {
                    d.iter()
                        .enumerate()
                        .map(|(i, v)| (v.clone(), i as u32))
                        .collect()
                });
                let other = match (&dict, &c.other) {
                    (Some(d), Some(o)) if c.on_unknown == OnUnknown::Other => d.get(o).copied(),
                    _ => None,
                };
                (position(&c.name), c.clone(), dict, other)
            })
            .collect();
        Ok(RowValidator { columns })
    }

    /// The entity key and the typed cells (schema order) of a row, or the first bad cell.
    pub fn validate(
        &self,
        path: &str,
        location: Location,
        row: &[String],
    ) -> Result<(String, Vec<Cell>), InputError> {
        let mut cells = Vec::with_capacity(self.columns.len());
        let mut key = String::new();
        for (pos, c, dict, other) in &self.columns {
            let raw = row.get(*pos).map(String::as_str).unwrap_or("");
            let bad = |message: String| {
                let (line, column) = match location {
                    Location::Line(l) => (l, c.name.clone()),
                    Location::RowGroup(..) => (0, format!("{} ({location})", c.name)),
                };
                InputError::Value {
                    path: path.into(),
                    line,
                    column,
                    message,
                }
            };
            if raw.len() > MAX_FIELD_BYTES {
                return Err(bad(format!(
                    "a value of {} bytes is over the limit of {MAX_FIELD_BYTES}",
                    raw.len()
                )));
            }
            if raw.contains('\0') {
                return Err(bad("contains a NUL byte".into()));
            }
            let cell = match c.role {
                Role::Entity if raw.is_empty() => return Err(bad("missing entity key".into())),
                Role::Entity => {
                    key = raw.to_string();
                    Cell::Entity
                }
                Role::Identifier => Cell::Text(raw.to_string()),
                Role::Int => {
                    let x: i64 = raw
                        .parse()
                        .map_err(|_| bad(format!("'{raw}' is not an integer")))?;
                    check_bounds(c, x as f64).map_err(bad)?;
                    Cell::Int(x)
                }
                Role::Float => {
                    let x: f64 = raw
                        .parse()
                        .map_err(|_| bad(format!("'{raw}' is not a number")))?;
                    if !x.is_finite() {
                        return Err(bad(format!("'{raw}' is not a finite number")));
                    }
                    check_bounds(c, x).map_err(bad)?;
                    Cell::Float(x)
                }
                Role::Bool => Cell::Bool(
                    parse_bool(raw).ok_or_else(|| bad(format!("'{raw}' is not true or false")))?,
                ),
                Role::Date => Cell::Date(
                    parse_date(raw)
                        .ok_or_else(|| bad(format!("'{raw}' is not a date (YYYY-MM-DD)")))?,
                ),
                Role::Category => match (dict.as_ref().and_then(|d| d.get(raw)), other) {
                    (Some(&code), _) => Cell::Category(code),
                    (None, Some(code)) => Cell::Category(*code),
                    _ => return Err(bad(format!("'{raw}' is not in the column's dictionary"))),
                },
            };
            cells.push(cell);
        }
        Ok((key, cells))
    }
}
