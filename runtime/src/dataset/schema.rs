//! Dataset schemas: each table's columns with a type and a role. Written by the bank in TOML
//! (unknown fields rejected); specified in docs/formats/schema.md.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

/// What a column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The privacy unit's key (e.g. customer_id): grouping and counting only, never to a guest.
    Entity,
    /// Email, phone and the like: joins inside the host only, never to a guest.
    Identifier,
    /// A value from a public dictionary.
    Category,
    /// 64-bit integer.
    Int,
    /// 64-bit float, with declared bounds.
    Float,
    /// YYYY-MM-DD.
    Date,
    /// true/false.
    Bool,
}

/// What to do with a category value that is not in the dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnknown {
    /// Refuse the input, naming file, line and column.
    #[default]
    Reject,
    /// Map it to the dictionary member named by `other`.
    Other,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    /// Column name (the CSV header).
    pub name: String,
    /// Role and type.
    pub role: Role,
    /// Category: the public dictionary, inline.
    #[serde(default)]
    pub dictionary: Option<Vec<String>>,
    /// Category: the public dictionary, one entry a line, path relative to the schema file.
    #[serde(default)]
    pub dictionary_file: Option<String>,
    /// Category: what to do with values outside the dictionary.
    #[serde(default)]
    pub on_unknown: OnUnknown,
    /// Category with `on_unknown = "other"`: the member unknown values map to.
    #[serde(default)]
    pub other: Option<String>,
    /// Float/int: smallest allowed value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Float/int: largest allowed value.
    #[serde(default)]
    pub max: Option<f64>,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    /// Table name.
    pub name: String,
    /// Columns; exactly one has role `entity`.
    pub columns: Vec<ColumnSchema>,
}

/// A dataset schema.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSchema {
    /// Dataset name.
    pub name: String,
    /// Tables.
    pub tables: Vec<TableSchema>,
}

/// Why a schema was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// Could not read a file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML for a schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What toml said, with line and column.
        message: String,
    },
    /// Valid TOML, inconsistent content.
    #[error("{path}: table '{table}': {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The table.
        table: String,
        /// What is wrong.
        message: String,
    },
}

impl DatasetSchema {
    /// Reads a schema file, loading dictionary files relative to it, and checks it.
    pub fn load(path: &Path) -> Result<DatasetSchema, SchemaError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
            path: shown.clone(),
            source,
        })?;
        let mut schema: DatasetSchema =
            crate::toml_text::parse(&text).map_err(|message| SchemaError::Parse {
                path: shown.clone(),
                message,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for table in &mut schema.tables {
            for column in &mut table.columns {
                if let Some(file) = &column.dictionary_file {
                    let p = base.join(file);
                    let text = std::fs::read_to_string(&p).map_err(|source| SchemaError::Io {
                        path: p.display().to_string(),
                        source,
                    })?;
                    column.dictionary = Some(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(String::from)
                            .collect(),
                    );
                }
            }
        }
        schema.check(&shown)?;
        Ok(schema)
    }

    /// Parses and checks a schema from text whose dictionaries are all inline (as in a sealed
    /// header).
    pub fn parse_inline(text: &str, origin: &str) -> Result<DatasetSchema, SchemaError> {
        let schema: DatasetSchema =
            crate::toml_text::parse(text).map_err(|message| SchemaError::Parse {
                path: origin.into(),
                message,
            })?;
        schema.check(origin)?;
        Ok(schema)
    }

    /// The schema as TOML with every dictionary inline, for embedding in a sealed dataset.
    pub fn to_inline_toml(&self) -> String {
        let mut inline = self.clone();
        for t in &mut inline.tables {
            for c in &mut t.columns {
                c.dictionary_file = None;
            }
        }
        toml::to_string(&inline).unwrap_or_default()
    }

    /// Checks that the schema is consistent.
    pub fn check(&self, path: &str) -> Result<(), SchemaError> {
        let mut tables = HashSet::new();
        for table in &self.tables {
            let invalid = |message: String| SchemaError::Invalid {
                path: path.into(),
                table: table.name.clone(),
                message,
            };
            if !tables.insert(&table.name) {
                return Err(invalid("declared twice".into()));
            }
            let entities = table
                .columns
                .iter()
                .filter(|c| c.role == Role::Entity)
                .count();
            if entities != 1 {
                return Err(invalid(format!(
                    "needs exactly one column with role = \"entity\", has {entities}"
                )));
            }
            let mut names = HashSet::new();
            for c in &table.columns {
                if !names.insert(&c.name) {
                    return Err(invalid(format!("column '{}' declared twice", c.name)));
                }
                let has_dictionary = c.dictionary.is_some() || c.dictionary_file.is_some();
                if c.role == Role::Category {
                    if c.dictionary.is_some() && c.dictionary_file.is_some() {
                        return Err(invalid(format!(
                            "column '{}': give dictionary or dictionary_file, not both",
                            c.name
                        )));
                    }
                    let dict = c.dictionary.as_deref().unwrap_or_default();
                    if dict.is_empty() {
                        return Err(invalid(format!(
                            "category column '{}' needs a non-empty dictionary",
                            c.name
                        )));
                    }
                    let mut seen = HashSet::new();
                    if let Some(dup) = dict.iter().find(|d| !seen.insert(*d)) {
                        return Err(invalid(format!(
                            "column '{}': dictionary lists '{dup}' twice",
                            c.name
                        )));
                    }
                    if c.on_unknown == OnUnknown::Other {
                        match &c.other {
                            Some(o) if dict.contains(o) => {}
                            Some(o) => {
                                return Err(invalid(format!(
                                    "column '{}': other = '{o}' is not in the dictionary",
                                    c.name
                                )));
                            }
                            None => {
                                return Err(invalid(format!(
                                    "column '{}': on_unknown = \"other\" needs other = \"<member>\"",
                                    c.name
                                )));
                            }
                        }
                    }
                } else if has_dictionary {
                    return Err(invalid(format!(
                        "column '{}': only category columns have a dictionary",
                        c.name
                    )));
                }
                if let (Some(lo), Some(hi)) = (c.min, c.max)
                    && lo > hi
                {
                    return Err(invalid(format!(
                        "column '{}': min {lo} is above max {hi}",
                        c.name
                    )));
                }
            }
        }
        Ok(())
    }
}
