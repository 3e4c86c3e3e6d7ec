//! The in-memory, columnar view of a dataset that the sandbox reads from.
//!
//! Rows of every table are grouped by entity (the privacy unit, e.g. a customer), so isolated
//! runs hand a guest one entity's rows as a contiguous slice. Entity keys and identifier columns
//! are kept here, host-side, and are never part of what a guest can ask for: `guest_columns`
//! holds only int, float, bool, date and category columns.

pub mod audience;
pub mod csv_input;
pub mod input;
pub mod schema;
pub mod validate;

use std::sync::Arc;

pub use strongroom_contract::manifest::ColumnType;

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// i64 values.
    Int(Vec<i64>),
    /// f64 values.
    Float(Vec<f64>),
    /// bool values.
    Bool(Vec<bool>),
    /// Days since 1970-01-01.
    Date(Vec<i32>),
    /// Indices into `Column::dictionary`.
    Category(Vec<u32>),
}

impl ColumnData {
    /// The column type.
    pub fn ty(&self) -> ColumnType {
        match self {
            ColumnData::Int(_) => ColumnType::Int,
            ColumnData::Float(_) => ColumnType::Float,
            ColumnData::Bool(_) => ColumnType::Bool,
            ColumnData::Date(_) => ColumnType::Date,
            ColumnData::Category(_) => ColumnType::Category,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Int(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
            ColumnData::Date(v) => v.len(),
            ColumnData::Category(v) => v.len(),
        }
    }

    /// Bytes the values take.
    pub fn bytes(&self) -> usize {
        match self {
            ColumnData::Int(v) => v.len() * 8,
            ColumnData::Float(v) => v.len() * 8,
            ColumnData::Bool(v) => v.len(),
            ColumnData::Date(v) => v.len() * 4,
            ColumnData::Category(v) => v.len() * 4,
        }
    }

    fn zeroize(&mut self) {
        use zeroize::Zeroize;
        match self {
            ColumnData::Int(v) => v.zeroize(),
            ColumnData::Float(v) => v.zeroize(),
            ColumnData::Bool(v) => v.zeroize(),
            ColumnData::Date(v) => v.zeroize(),
            ColumnData::Category(v) => v.zeroize(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn permute(&self, order: &[usize]) -> ColumnData {
        fn pick<T: Copy>(v: &[T], order: &[usize]) -> Vec<T> {
            order.iter().map(|&i| v[i]).collect()
        }
        match self {
            ColumnData::Int(v) => ColumnData::Int(pick(v, order)),
            ColumnData::Float(v) => ColumnData::Float(pick(v, order)),
            ColumnData::Bool(v) => ColumnData::Bool(pick(v, order)),
            ColumnData::Date(v) => ColumnData::Date(pick(v, order)),
            ColumnData::Category(v) => ColumnData::Category(pick(v, order)),
        }
    }
}

/// A column a guest may be granted.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Values, one per row.
    pub data: ColumnData,
    /// Public dictionary of a category column.
    pub dictionary: Option<Arc<[String]>>,
}

/// A column only the host sees (identifiers such as email or phone, used for joins in the host).
#[derive(Debug, Clone)]
pub struct IdentifierColumn {
    /// Name.
    pub name: String,
    /// Values, one per row.
    pub values: Vec<String>,
}

/// The names of a table's columns no guest ever reads: what a query may name but not read
/// (the privacy unit's key in a join condition), or is told it may not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HiddenColumns {
    /// The entity key's column, when the schema names it.
    pub entity: Option<String>,
    /// Identifier columns (loaded or not).
    pub identifiers: Vec<String>,
}

impl HiddenColumns {
    /// The hidden columns a table schema declares.
    pub fn of(schema: &schema::TableSchema) -> HiddenColumns {
        HiddenColumns {
            entity: schema
                .columns
                .iter()
                .find(|c| c.role == schema::Role::Entity)
                .map(|c| c.name.clone()),
            identifiers: schema
                .columns
                .iter()
                .filter(|c| c.role == schema::Role::Identifier)
                .map(|c| c.name.clone())
                .collect(),
        }
    }
}

/// One table, rows grouped by entity.
#[derive(Debug, Clone)]
pub struct Table {
    /// Name.
    pub name: String,
    /// The names of its columns no guest reads.
    pub hidden: HiddenColumns,
    /// Columns a guest may be granted.
    pub guest_columns: Vec<Column>,
    /// Host-only identifier columns.
    pub identifiers: Vec<IdentifierColumn>,
    /// Entity ordinal of each row (non-decreasing).
    pub entity_of_row: Vec<u32>,
    /// The first entity ordinal this table's rows cover: 0 for a whole dataset, a window's
    /// first for a window (see [`Dataset::span`]).
    pub first_entity: u32,
    /// For each entity ordinal `e` from `first_entity` on, the start of its rows:
    /// `entity_starts[e - first_entity]..entity_starts[e - first_entity + 1]`.
    pub entity_starts: Vec<u32>,
}

/// A table's rows are customer data: overwritten with zeros when the last user drops them.
impl Drop for Table {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for c in &mut self.guest_columns {
            c.data.zeroize();
        }
        for c in &mut self.identifiers {
            c.values.zeroize();
        }
        self.entity_of_row.zeroize();
        self.entity_starts.zeroize();
    }
}

impl Table {
    /// Approximate bytes held (values, identifiers, row indexes).
    pub fn approx_bytes(&self) -> usize {
        self.guest_columns
            .iter()
            .map(|c| c.data.bytes())
            .sum::<usize>()
            + self
                .identifiers
                .iter()
                .flat_map(|c| c.values.iter())
                .map(|v| v.len() + 24)
                .sum::<usize>()
            + (self.entity_of_row.len() + self.entity_starts.len()) * 4
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.entity_of_row.len()
    }

    /// The rows of entity `e` (none for an entity outside the table's span).
    pub fn entity_rows(&self, e: u32) -> std::ops::Range<usize> {
        let Some(e) = e.checked_sub(self.first_entity) else {
            return 0..0;
        };
        let e = e as usize;
        match (self.entity_starts.get(e), self.entity_starts.get(e + 1)) {
            (Some(&s), Some(&t)) => s as usize..t as usize,
            _ => 0..0,
        }
    }

    /// A guest column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.guest_columns.iter().find(|c| c.name == name)
    }
}

/// A dataset, or a window of one: tables sharing one entity space. Tables are shared (`Arc`),
/// so a job that adds a column to one table (audience matching) copies that table only, not the
/// dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Dataset name.
    pub name: String,
    /// Tables.
    pub tables: Vec<Arc<Table>>,
    /// Entity key of each ordinal, in sorted order, when loaded (a whole dataset opened in
    /// memory); empty in a window. Host-only.
    pub entity_keys: Vec<String>,
    /// The entity ordinals whose rows this holds: `0..entities` for a whole dataset, a range of
    /// them for a window read from a sealed file (`data_at_rest::stream`).
    pub span: std::ops::Range<u32>,
}

/// Entity keys are customer identifiers: overwritten with zeros when dropped.
impl Drop for Dataset {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.entity_keys);
    }
}

impl Dataset {
    /// Approximate bytes held: tables (shared tables counted in full) and entity keys.
    pub fn approx_bytes(&self) -> u64 {
        (self.tables.iter().map(|t| t.approx_bytes()).sum::<usize>()
            + self.entity_keys.iter().map(|k| k.len() + 24).sum::<usize>()) as u64
    }

    /// Number of entities whose rows this holds.
    pub fn entities(&self) -> usize {
        self.span.len()
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name).map(|t| &**t)
    }
}

/// A table before rows are grouped: parallel vectors, entity key per row.
#[derive(Debug, Clone)]
pub struct UngroupedTable {
    /// Name.
    pub name: String,
    /// Entity key of each row.
    pub entity_keys: Vec<String>,
    /// Guest-grantable columns.
    pub columns: Vec<Column>,
    /// Identifier columns.
    pub identifiers: Vec<IdentifierColumn>,
    /// The names of its columns no guest reads.
    pub hidden: HiddenColumns,
}

impl Dataset {
    /// Builds a dataset from tables whose rows are in any order: assigns entity ordinals (sorted
    /// keys) and sorts every table's rows by entity, stably.
    pub fn group(name: &str, tables: Vec<UngroupedTable>) -> Dataset {
        let mut keys: Vec<String> = tables
            .iter()
            .flat_map(|t| t.entity_keys.iter().cloned())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let ordinal = |k: &str| {
            keys.binary_search_by(|probe| probe.as_str().cmp(k))
                .unwrap_or(0) as u32
        };
        let grouped = tables
            .into_iter()
            .map(|t| {
                let ords: Vec<u32> = t.entity_keys.iter().map(|k| ordinal(k)).collect();
                let mut order: Vec<usize> = (0..ords.len()).collect();
                order.sort_by_key(|&i| ords[i]);
                let entity_of_row: Vec<u32> = order.iter().map(|&i| ords[i]).collect();
                let mut entity_starts = vec![0u32; keys.len() + 1];
                for &e in &entity_of_row {
                    entity_starts[e as usize + 1] += 1;
                }
                for e in 0..keys.len() {
                    entity_starts[e + 1] += entity_starts[e];
                }
                Arc::new(Table {
                    name: t.name,
                    hidden: t.hidden,
                    guest_columns: t
                        .columns
                        .into_iter()
                        .map(|c| Column {
                            name: c.name,
                            data: c.data.permute(&order),
                            dictionary: c.dictionary,
                        })
                        .collect(),
                    identifiers: t
                        .identifiers
                        .into_iter()
                        .map(|c| IdentifierColumn {
                            name: c.name,
                            values: order.iter().map(|&i| c.values[i].clone()).collect(),
                        })
                        .collect(),
                    entity_of_row,
                    first_entity: 0,
                    entity_starts,
                })
            })
            .collect();
        Dataset {
            name: name.to_string(),
            tables: grouped,
            span: 0..keys.len() as u32,
            entity_keys: keys,
        }
    }
}
