//! Streaming input for sealing: CSV and Parquet tables read row by row, each cell validated
//! against the schema, with errors naming the file, the line (CSV) or row group and row
//! (Parquet), and the column.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::{
    Array, BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray,
};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::dataset::csv_input::{InputError, check_bounds, parse_bool, parse_date};
use crate::dataset::schema::{ColumnSchema, OnUnknown, Role, TableSchema};

/// One validated cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Entity key or identifier.
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

enum Reader {
    Csv(csv::Reader<File>),
    Parquet {
        reader: ParquetRecordBatchReader,
        batch: Option<RecordBatch>,
        row: usize,
        seen: u64,
        group_ends: Vec<u64>,
    },
}

/// A table file read row by row as text cells in header order.
pub struct RowSource {
    path: String,
    header: Vec<String>,
    reader: Reader,
}

fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

fn cell_text(array: &dyn Array, i: usize) -> Result<String, String> {
    if array.is_null(i) {
        return Ok(String::new());
    }
    let any = array.as_any();
    let text = if let Some(a) = any.downcast_ref::<StringArray>() {
        a.value(i).to_string()
    } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        a.value(i).to_string()
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        a.value(i).to_string()
    } else if let Some(a) = any.downcast_ref::<Int32Array>() {
        a.value(i).to_string()
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        a.value(i).to_string()
    } else if let Some(a) = any.downcast_ref::<Float32Array>() {
        a.value(i).to_string()
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        a.value(i).to_string()
    } else if let Some(a) = any.downcast_ref::<Date32Array>() {
        let days = a.value(i);
        crate::dataset::synthetic::date_string(days)
    } else {
        return Err(format!(
            "Parquet type {} is not supported",
            array.data_type()
        ));
    };
    Ok(text)
}

impl RowSource {
    /// Opens a CSV or (by extension `.parquet`) Parquet file.
    pub fn open(path: &Path) -> Result<RowSource, InputError> {
        let shown = path.display().to_string();
        let io = |e: String| InputError::Io {
            path: shown.clone(),
            message: e,
        };
        if is_parquet(path) {
            let file = File::open(path).map_err(|e| io(e.to_string()))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| io(format!("not a readable Parquet file: {e}")))?;
            let header = builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().to_string())
                .collect();
            let mut total = 0;
            let group_ends = builder
                .metadata()
                .row_groups()
                .iter()
                .map(|g| {
                    total += g.num_rows() as u64;
                    total
                })
                .collect();
            let reader = builder
                .with_batch_size(8192)
                .build()
                .map_err(|e| io(e.to_string()))?;
            return Ok(RowSource {
                path: shown,
                header,
                reader: Reader::Parquet {
                    reader,
                    batch: None,
                    row: 0,
                    seen: 0,
                    group_ends,
                },
            });
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(path)
            .map_err(|e| io(e.to_string()))?;
        let header = reader
            .headers()
            .map_err(|e| InputError::Header {
                path: shown.clone(),
                message: e.to_string(),
            })?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        Ok(RowSource {
            path: shown,
            header,
            reader: Reader::Csv(reader),
        })
    }

    /// Column names, in file order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The file, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Bytes of the file consumed so far (CSV), or 0 where the reader cannot tell (Parquet).
    pub fn bytes_read(&self) -> u64 {
        match &self.reader {
            Reader::Csv(r) => r.position().byte(),
            Reader::Parquet { .. } => 0,
        }
    }

    /// The next row's cells as text, or None at the end.
    pub fn next_row(&mut self) -> Option<Result<(Location, Vec<String>), InputError>> {
        let path = self.path.clone();
        match &mut self.reader {
            Reader::Csv(reader) => {
                let mut record = csv::StringRecord::new();
                match reader.read_record(&mut record) {
                    Ok(false) => None,
                    Ok(true) => {
                        let line = record.position().map_or(0, |p| p.line());
                        Some(Ok((
                            Location::Line(line),
                            record.iter().map(|v| v.trim().to_string()).collect(),
                        )))
                    }
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        Some(Err(InputError::Value {
                            path,
                            line,
                            column: "-".into(),
                            message: format!("malformed row: {e}"),
                        }))
                    }
                }
            }
            Reader::Parquet {
                reader,
                batch,
                row,
                seen,
                group_ends,
            } => {
                if batch.as_ref().is_none_or(|b| *row >= b.num_rows()) {
                    match reader.next()? {
                        Ok(b) => {
                            *batch = Some(b);
                            *row = 0;
                        }
                        Err(e) => {
                            return Some(Err(InputError::Io {
                                path,
                                message: format!("Parquet: {e}"),
                            }));
                        }
                    }
                }
                let b = batch.as_ref()?;
                let i = *row;
                *row += 1;
                let global = *seen;
                *seen += 1;
                let group = group_ends.iter().position(|&end| global < end).unwrap_or(0);
                let start = if group == 0 { 0 } else { group_ends[group - 1] };
                let location = Location::RowGroup(group, global - start);
                let mut cells = Vec::with_capacity(b.num_columns());
                for (c, column) in b.columns().iter().enumerate() {
                    match cell_text(column.as_ref(), i) {
                        Ok(t) => cells.push(t),
                        Err(message) => {
                            let name = b.schema().field(c).name().to_string();
                            return Some(Err(InputError::Value {
                                path,
                                line: 0,
                                column: format!("{name} ({location})"),
                                message,
                            }));
                        }
                    }
                }
                Some(Ok((location, cells)))
            }
        }
    }
}

/// How to read one schema column from a file: its position, its schema, and for a category
/// its dictionary lookup and the code unknown values map to (if any).
type ColumnPlan = (
    usize,
    ColumnSchema,
    Option<HashMap<String, u32>>,
    Option<u32>,
);

/// Checks each row of one table against its schema.
pub struct RowValidator {
    columns: Vec<ColumnPlan>,
    entity: usize,
}

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
                let dict: Option<HashMap<String, u32>> = c.dictionary.as_ref().map(|d| {
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
        let entity = schema
            .columns
            .iter()
            .position(|c| c.role == Role::Entity)
            .unwrap_or(0);
        Ok(RowValidator { columns, entity })
    }

    /// The entity key and the typed cells (schema order) of a row, or the first bad cell.
    pub fn validate(
        &self,
        path: &str,
        location: Location,
        row: &[String],
    ) -> Result<(String, Vec<Cell>), InputError> {
        let mut cells = Vec::with_capacity(self.columns.len());
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
            let cell = match c.role {
                Role::Entity if raw.is_empty() => return Err(bad("missing entity key".into())),
                Role::Entity | Role::Identifier => Cell::Text(raw.to_string()),
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
        let key = match &cells[self.entity] {
            Cell::Text(k) => k.clone(),
            _ => String::new(),
        };
        Ok((key, cells))
    }
}
