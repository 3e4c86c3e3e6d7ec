//! Plaintext CSV input for development runs (`strongroom dev run`): reads tables against a
//! schema, or infers a schema from the data when none is given. Every bad value is reported with
//! file, line and column.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::schema::{ColumnSchema, DatasetSchema, OnUnknown, Role, TableSchema};
use super::validate::{Cell, Location, RowValidator};
use super::{Column, ColumnData, Dataset, IdentifierColumn, UngroupedTable};

/// Why input could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        message: String,
    },
    /// A value or row is wrong.
    #[error("{path}, line {line}, column '{column}': {message}")]
    Value {
        /// File.
        path: String,
        /// 1-based line.
        line: u64,
        /// Column name.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// The header does not match the schema.
    #[error("{path}: {message}")]
    Header {
        /// File.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The tables given do not match the schema.
    #[error("{0}")]
    Tables(String),
}

/// Days since 1970-01-01 for a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<i32> {
    let mut parts = s.split('-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d > days_in_month[(m - 1) as usize] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp as i32 + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// true/false, t/f, 1/0, yes/no (any case).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" => Some(true),
        "false" | "f" | "0" | "no" => Some(false),
        _ => None,
    }
}

struct RawTable {
    path: String,
    header: Vec<String>,
    records: Vec<(Location, Vec<String>)>,
}

fn read_raw(path: &Path) -> Result<RawTable, InputError> {
    let mut source = crate::dataset::input::RowSource::open(path)?;
    let mut records = Vec::new();
    while let Some(row) = source.next_row() {
        let (location, cells) = row?;
        records.push((location, cells.to_vec()));
    }
    Ok(RawTable {
        path: source.path().to_string(),
        header: source.header().to_vec(),
        records,
    })
}

/// Infers a schema: `entity_column` is the entity in every table; columns named like an email
/// or phone number are identifiers; otherwise int, float, bool, date (YYYY-MM-DD), or a category
/// whose dictionary is the sorted distinct values seen. For the partner's own sample data only.
fn infer(
    name: &str,
    raw: &[(String, RawTable)],
    entity_column: &str,
) -> Result<DatasetSchema, InputError> {
    let mut tables = Vec::new();
    for (table, t) in raw {
        if !t.header.iter().any(|h| h == entity_column) {
            return Err(InputError::Header {
                path: t.path.clone(),
                message: format!(
                    "no '{entity_column}' column to group rows by entity (pass --entity-column or --schema)"
                ),
            });
        }
        let mut columns = Vec::new();
        for (i, h) in t.header.iter().enumerate() {
            let values = || {
                t.records
                    .iter()
                    .map(move |(_, r)| r.get(i).map(String::as_str).unwrap_or(""))
            };
            let lower = h.to_ascii_lowercase();
            let role = if h == entity_column {
                Role::Entity
            } else if lower.contains("email") || lower.contains("phone") {
                Role::Identifier
            } else if values().all(|v| v.parse::<i64>().is_ok()) {
                Role::Int
            } else if values().all(|v| v.parse::<f64>().is_ok()) {
                Role::Float
            } else if values().all(|v| parse_bool(v).is_some()) {
                Role::Bool
            } else if values().all(|v| parse_date(v).is_some()) {
                Role::Date
            } else {
                Role::Category
            };
            let dictionary = (role == Role::Category).then(|| {
                values()
                    .map(String::from)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            });
            columns.push(ColumnSchema {
                name: h.clone(),
                role,
                dictionary,
                dictionary_file: None,
                on_unknown: OnUnknown::Reject,
                other: None,
                min: None,
                max: None,
            });
        }
        tables.push(TableSchema {
            name: table.clone(),
            columns,
        });
    }
    Ok(DatasetSchema {
        name: name.to_string(),
        tables,
    })
}

fn convert(schema: &TableSchema, raw: RawTable) -> Result<UngroupedTable, InputError> {
    let validator = RowValidator::new(schema, &raw.header, &raw.path)?;
    let mut entity_keys = Vec::with_capacity(raw.records.len());
    let mut cells: Vec<Vec<Cell>> = schema
        .columns
        .iter()
        .map(|_| Vec::with_capacity(raw.records.len()))
        .collect();
    for (location, row) in &raw.records {
        let (key, row_cells) = validator.validate(&raw.path, *location, row)?;
        entity_keys.push(key);
        for (column, cell) in cells.iter_mut().zip(row_cells) {
            column.push(cell);
        }
    }
    let mut columns = Vec::new();
    let mut identifiers = Vec::new();
    for (c, values) in schema.columns.iter().zip(cells) {
        macro_rules! collect {
            ($variant:ident) => {
                values
                    .into_iter()
                    .map(|v| {
                        if let Cell::$variant(x) = v {
                            x
                        } else {
                            Default::default()
                        }
                    })
                    .collect()
            };
        }
        let data = match c.role {
            Role::Entity => continue,
            Role::Identifier => {
                identifiers.push(IdentifierColumn {
                    name: c.name.clone(),
                    values: collect!(Text),
                });
                continue;
            }
            Role::Int => ColumnData::Int(collect!(Int)),
            Role::Float => ColumnData::Float(collect!(Float)),
            Role::Bool => ColumnData::Bool(collect!(Bool)),
            Role::Date => ColumnData::Date(collect!(Date)),
            Role::Category => ColumnData::Category(collect!(Category)),
        };
        let dictionary = c.dictionary.clone().map(|d| -> Arc<[String]> { d.into() });
        columns.push(Column {
            name: c.name.clone(),
            data,
            dictionary,
        });
    }
    Ok(UngroupedTable {
        name: schema.name.clone(),
        hidden: super::HiddenColumns::of(schema),
        entity_keys,
        columns,
        identifiers,
    })
}

/// Checks a number against a column's declared `min` and `max`.
pub(crate) fn check_bounds(c: &ColumnSchema, x: f64) -> Result<(), String> {
    if let Some(lo) = c.min
        && x < lo
    {
        return Err(format!("{x} is below the declared min {lo}"));
    }
    if let Some(hi) = c.max
        && x > hi
    {
        return Err(format!("{x} is above the declared max {hi}"));
    }
    Ok(())
}

/// Reads `tables` (name, CSV path). With a schema, every table it declares must be given and
/// every value must fit; without one, the schema is inferred with `entity_column` as entity.
pub fn load_csv_tables(
    tables: &[(String, PathBuf)],
    schema: Option<&DatasetSchema>,
    entity_column: &str,
) -> Result<(Dataset, DatasetSchema), InputError> {
    let mut raw = Vec::new();
    for (name, path) in tables {
        if raw.iter().any(|(n, _): &(String, RawTable)| n == name) {
            return Err(InputError::Tables(format!("table '{name}' is given twice")));
        }
        raw.push((name.clone(), read_raw(path)?));
    }
    let schema = match schema {
        Some(s) => s.clone(),
        None => infer("development", &raw, entity_column)?,
    };
    for (name, _) in &raw {
        if !schema.tables.iter().any(|t| &t.name == name) {
            return Err(InputError::Tables(format!(
                "table '{name}' is not in the schema"
            )));
        }
    }
    let mut ungrouped = Vec::new();
    for table in &schema.tables {
        let Some(pos) = raw.iter().position(|(n, _)| n == &table.name) else {
            return Err(InputError::Tables(format!(
                "the schema declares table '{}' but no file was given for it",
                table.name
            )));
        };
        let (_, r) = raw.swap_remove(pos);
        ungrouped.push(convert(table, r)?);
    }
    Ok((Dataset::group(&schema.name, ungrouped), schema))
}

/// `YYYY-MM-DD` for days since 1970-01-01.
pub fn date_string(days: i32) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i32::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::parse_date;

    #[test]
    fn dates_count_days_from_the_epoch() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
    }
}
