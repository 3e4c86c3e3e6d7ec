//! Typed rows: `#[derive(Row)]` maps a struct's fields to columns by name; this module reads them.

use crate::bindings::strongroom::query::data;
use crate::bindings::strongroom::query::types::ColumnValues;
use crate::manifest::{ColumnSpec, ColumnType, TableRead};

/// A value of a category column: an index into the column's public dictionary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Category(pub u32);

impl Category {
    /// The index into the dictionary, which is also what a group key part holds.
    pub fn index(self) -> u32 {
        self.0
    }

    /// This value's label in the public dictionary of `table`.`column` (asked of the room each
    /// time: for text a module needs, such as a message; a group key takes the index).
    pub fn label(self, table: &str, column: &str) -> Option<String> {
        crate::schema::dictionary(table, column)
            .get(self.0 as usize)
            .cloned()
    }
}

/// A date: days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub i32);

impl Date {
    /// Days since 1970-01-01.
    pub fn days(self) -> i32 {
        self.0
    }

    /// The month as an index into [`crate::Domain::MONTHS`]: 0 for January to 11 for December.
    pub fn month_index(self) -> u32 {
        self.ymd().1 - 1
    }

    /// The quarter as an index into [`crate::Domain::QUARTERS`]: 0 for Q1 to 3 for Q4.
    pub fn quarter_index(self) -> u32 {
        (self.ymd().1 - 1) / 3
    }

    /// The day of the week as an index into [`crate::Domain::WEEKDAYS`]: 0 for Monday to 6 for
    /// Sunday (1970-01-01 was a Thursday).
    pub fn weekday_index(self) -> u32 {
        (self.0 + 3).rem_euclid(7) as u32
    }

    /// The (year, month 1-12, day 1-31) of this date, proleptic Gregorian.
    pub fn ymd(self) -> (i32, u32, u32) {
        // Howard Hinnant's civil_from_days.
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = yoe + era * 400 + i32::from(m <= 2);
        (y, m, d)
    }
}

/// A Rust type a column can be read into.
pub trait FromColumn: Sized {
    /// The column type this Rust type reads.
    const TYPE: ColumnType;
    /// The value at row `i`. The host checked the types before the run, so a mismatch here means
    /// the host broke the contract.
    fn get(values: &ColumnValues, i: usize) -> Self;
    /// All values of a column, moved out without copying.
    fn take(values: ColumnValues) -> Vec<Self>;
}

macro_rules! from_column {
    ($t:ty, $variant:ident, $ty:ident, $conv:expr) => {
        impl FromColumn for $t {
            const TYPE: ColumnType = ColumnType::$ty;
            fn get(values: &ColumnValues, i: usize) -> Self {
                match values {
                    ColumnValues::$variant(v) => $conv(v[i]),
                    _ => panic!(concat!("host sent a column that is not ", stringify!($ty))),
                }
            }
            fn take(values: ColumnValues) -> Vec<Self> {
                match values {
                    ColumnValues::$variant(v) => v.into_iter().map($conv).collect(),
                    _ => panic!(concat!("host sent a column that is not ", stringify!($ty))),
                }
            }
        }
    };
}

from_column!(i64, Int, Int, |v| v);
from_column!(f64, Float, Float, |v| v);
from_column!(bool, Boolean, Bool, |v| v);
from_column!(Date, Date, Date, Date);
from_column!(Category, Category, Category, Category);

/// A struct whose fields are columns of one table. Derive it: `#[derive(Row)] #[row(table = "t")]`.
pub trait Row: Sized {
    /// The table the row comes from.
    const TABLE: &'static str;
    /// The columns, in field order, with their expected types.
    const COLUMNS: &'static [ColumnSpec];
    /// What the manifest should list for this row type.
    const READS: TableRead = TableRead {
        table: Self::TABLE,
        columns: Self::COLUMNS,
    };
    /// Builds row `i` from columns in [`Row::COLUMNS`] order.
    fn from_columns(columns: &[ColumnValues], i: usize) -> Self;
}

/// Where a row comes from: table mode contributions name it so the room can attribute them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowId {
    /// The table.
    pub table: &'static str,
    /// Row index within the table.
    pub index: u64,
    /// Opaque entity ordinal, fresh for every run; use it to join one entity's rows across tables.
    pub entity: u32,
}

/// A batch of typed rows from table mode.
#[derive(Debug)]
pub struct Batch<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// Index of the first row in the table.
    pub first_row: u64,
    entities: Vec<u32>,
    table: &'static str,
}

impl<T> Batch<T> {
    /// Each row with the id that table-mode contributions name.
    pub fn iter(&self) -> impl Iterator<Item = (RowId, &T)> {
        self.rows.iter().enumerate().map(move |(i, row)| {
            let id = RowId {
                table: self.table,
                index: self.first_row + i as u64,
                entity: self.entities.get(i).copied().unwrap_or(0),
            };
            (id, row)
        })
    }
}

fn column_names<T: Row>() -> Vec<String> {
    T::COLUMNS.iter().map(|c| c.name.to_string()).collect()
}

fn decode<T: Row>(columns: &[ColumnValues], n: usize) -> Vec<T> {
    (0..n).map(|i| T::from_columns(columns, i)).collect()
}

/// All rows of `T`'s table in scope: the entity's rows (isolated) or the whole table (table mode).
pub fn rows<T: Row>() -> Vec<T> {
    // Version 0.2, isolated or batched: the rows were pushed into the call.
    #[cfg(not(feature = "wit-0-1"))]
    if crate::cells::active() {
        return crate::cells::with_rows(T::TABLE, pushed_rows::<T>).unwrap_or_else(|| {
            panic!(
                "table '{}' is not among the manifest's reads: list {}::READS there",
                T::TABLE,
                std::any::type_name::<T>()
            )
        });
    }
    let names = column_names::<T>();
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        let batch = data::read(T::TABLE, &names, next, u32::MAX);
        if out.is_empty() && !batch.more {
            return decode(&batch.columns, batch.rows as usize);
        }
        out.extend(decode::<T>(&batch.columns, batch.rows as usize));
        next = batch.first_row + u64::from(batch.rows);
        if !batch.more || batch.rows == 0 {
            return out;
        }
    }
}

/// The rows `range` of the pushed `columns` (the manifest's columns of `T`'s table, `read`) as
/// `T`s: read in place when `T` reads the same columns in the same order, else copied into
/// `T`'s order first.
#[cfg(not(feature = "wit-0-1"))]
fn pushed_rows<T: Row>(
    read: &'static [ColumnSpec],
    columns: &[ColumnValues],
    range: std::ops::Range<usize>,
) -> Vec<T> {
    let same = read.len() == T::COLUMNS.len()
        && read.iter().zip(T::COLUMNS).all(|(a, b)| a.name == b.name);
    if same {
        return range.map(|i| T::from_columns(columns, i)).collect();
    }
    let picked: Vec<ColumnValues> = T::COLUMNS
        .iter()
        .map(|wanted| {
            let at = read
                .iter()
                .position(|c| c.name == wanted.name)
                .unwrap_or_else(|| {
                    panic!(
                        "column {}.{} is not in the manifest's reads",
                        T::TABLE,
                        wanted.name
                    )
                });
            let r = range.clone();
            match &columns[at] {
                ColumnValues::Int(v) => ColumnValues::Int(v[r].to_vec()),
                ColumnValues::Float(v) => ColumnValues::Float(v[r].to_vec()),
                ColumnValues::Boolean(v) => ColumnValues::Boolean(v[r].to_vec()),
                ColumnValues::Date(v) => ColumnValues::Date(v[r].to_vec()),
                ColumnValues::Category(v) => ColumnValues::Category(v[r].to_vec()),
            }
        })
        .collect();
    (0..range.len())
        .map(|i| T::from_columns(&picked, i))
        .collect()
}

/// Iterates over `T`'s table in batches of up to `batch_rows` rows (table mode).
pub fn batches<T: Row>(batch_rows: u32) -> impl Iterator<Item = Batch<T>> {
    let names = column_names::<T>();
    let mut next: Option<u64> = Some(0);
    std::iter::from_fn(move || {
        let from = next?;
        let batch = data::read(T::TABLE, &names, from, batch_rows.max(1));
        if batch.rows == 0 {
            return None;
        }
        next = batch
            .more
            .then_some(batch.first_row + u64::from(batch.rows));
        Some(Batch {
            rows: decode(&batch.columns, batch.rows as usize),
            first_row: batch.first_row,
            entities: batch.entities,
            table: T::TABLE,
        })
    })
}

/// Iterates over one column of a table in batches of up to `batch_rows` values, without building
/// rows: the fastest way to scan a column in table mode. Yields (first row index, values).
pub fn column_batches<T: FromColumn>(
    table: &'static str,
    column: &'static str,
    batch_rows: u32,
) -> impl Iterator<Item = (u64, Vec<T>)> {
    let names = vec![column.to_string()];
    let mut next: Option<u64> = Some(0);
    std::iter::from_fn(move || {
        let from = next?;
        let batch = data::read(table, &names, from, batch_rows.max(1));
        if batch.rows == 0 {
            return None;
        }
        next = batch
            .more
            .then_some(batch.first_row + u64::from(batch.rows));
        let values = batch
            .columns
            .into_iter()
            .next()
            .map(T::take)
            .unwrap_or_default();
        Some((batch.first_row, values))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Domain;

    fn members(domain: Domain) -> &'static [&'static str] {
        match domain {
            Domain::Enumeration { members, .. } => members,
            Domain::Column { .. } => unreachable!("an enumeration"),
        }
    }

    #[test]
    fn period_indices_name_the_right_members() {
        // 2018-03-15 was a Thursday; 2018-12-31 a Monday; 2016-02-29 a Monday.
        let cases = [
            (17_605, "March", "Q1", "Thursday"),
            (17_896, "December", "Q4", "Monday"),
            (16_860, "February", "Q1", "Monday"),
            (0, "January", "Q1", "Thursday"),
            (-1, "December", "Q4", "Wednesday"),
        ];
        for (days, month, quarter, weekday) in cases {
            let d = Date(days);
            assert_eq!(members(Domain::MONTHS)[d.month_index() as usize], month);
            assert_eq!(
                members(Domain::QUARTERS)[d.quarter_index() as usize],
                quarter
            );
            assert_eq!(
                members(Domain::WEEKDAYS)[d.weekday_index() as usize],
                weekday
            );
        }
    }
}
