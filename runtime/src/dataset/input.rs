//! Streaming input: CSV and Parquet tables read row by row as text cells (validated against the
//! schema by `dataset::validate`), with errors naming the file, the line (CSV) or row group and
//! row (Parquet), and the column.

use std::fs::File;
use std::path::Path;

use arrow_array::{
    Array, BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray,
};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::dataset::csv_input::InputError;
pub use crate::dataset::validate::{Cell, Location, RowValidator};

enum Reader {
    /// The reader, and the record each row is read into (reused).
    Csv(csv::Reader<File>, csv::StringRecord),
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
    /// The current row's cells: reused from row to row, so reading allocates nothing per cell
    /// once the longest value of each column has been seen.
    cells: Vec<String>,
}

/// Replaces `cells` with `values`, reusing the strings' buffers.
fn fill<'a>(cells: &mut Vec<String>, values: impl Iterator<Item = &'a str>) {
    let mut n = 0;
    for v in values {
        match cells.get_mut(n) {
            Some(cell) => {
                cell.clear();
                cell.push_str(v);
            }
            None => cells.push(v.to_string()),
        }
        n += 1;
    }
    cells.truncate(n);
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
        crate::dataset::csv_input::date_string(days)
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
                cells: Vec::new(),
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
            reader: Reader::Csv(reader, csv::StringRecord::new()),
            cells: Vec::new(),
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
            Reader::Csv(r, _) => r.position().byte(),
            Reader::Parquet { .. } => 0,
        }
    }

    /// The next row's cells as text (valid until the next call), or None at the end.
    pub fn next_row(&mut self) -> Option<Result<(Location, &[String]), InputError>> {
        let path = &self.path;
        let out = &mut self.cells;
        match &mut self.reader {
            Reader::Csv(reader, record) => match reader.read_record(record) {
                Ok(false) => None,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    fill(out, record.iter().map(str::trim));
                    Some(Ok((Location::Line(line), &out[..])))
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    Some(Err(InputError::Value {
                        path: path.clone(),
                        line,
                        column: "-".into(),
                        message: format!("malformed row: {e}"),
                    }))
                }
            },
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
                                path: path.clone(),
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
                out.clear();
                for (c, column) in b.columns().iter().enumerate() {
                    match cell_text(column.as_ref(), i) {
                        Ok(t) => out.push(t),
                        Err(message) => {
                            let name = b.schema().field(c).name().to_string();
                            return Some(Err(InputError::Value {
                                path: path.clone(),
                                line: 0,
                                column: format!("{name} ({location})"),
                                message,
                            }));
                        }
                    }
                }
                Some(Ok((location, &out[..])))
            }
        }
    }
}
