//! What a query may read: the bank's tables and columns with their types and public
//! dictionaries, and the columns that are never read (the privacy unit's key, identifiers).

use strongroom_sql_plan::ColumnType;

/// The tables of a dataset as a query sees them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Tables.
    pub tables: Vec<CatalogTable>,
}

/// One table.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTable {
    /// Name.
    pub name: String,
    /// The column holding the privacy unit's key (e.g. `customer_id`), when the schema names it:
    /// a query may name it in a join condition and in `COUNT(DISTINCT ...)`, never read it.
    pub entity: Option<String>,
    /// Identifier columns (email, phone): never read by a query.
    pub identifiers: Vec<String>,
    /// The columns a query may read.
    pub columns: Vec<CatalogColumn>,
}

/// A readable column.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogColumn {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: ColumnType,
    /// A category column's public dictionary.
    pub dictionary: Vec<String>,
    /// The schema's declared smallest value (numbers), to suggest bounds from.
    pub min: Option<f64>,
    /// The schema's declared largest value.
    pub max: Option<f64>,
}

impl Catalog {
    /// The table named `name` (case-insensitive), with its index.
    pub(crate) fn table(&self, name: &str) -> Option<(usize, &CatalogTable)> {
        self.tables
            .iter()
            .enumerate()
            .find(|(_, t)| t.name.eq_ignore_ascii_case(name))
    }
}
