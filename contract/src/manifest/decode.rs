//! Decoding the manifest a module carries in its `strongroom-manifest` custom section.
//!
//! The partner writes the manifest in Rust through the guest SDK, which encodes it at compile
//! time with [`super::declare`]. This decoder trusts nothing: every length is checked, every enum tag is known, trailing bytes are
//! an error.

use super::{
    ColumnType, DOMAIN_COLUMN, DOMAIN_ENUMERATION, FORMAT_VERSION, MAGIC, MAX_DECIMALS,
    MAX_KEY_PARTS, MetricKind, Mode,
};

/// Columns a module reads from one table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRead {
    /// Table name.
    pub table: String,
    /// (column, expected type).
    pub columns: Vec<(String, ColumnType)>,
}

/// One part of a group key.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// The dictionary of a category column.
    Column {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
    /// An enumeration declared in the manifest.
    Enumeration {
        /// Name.
        name: String,
        /// Members in index order.
        members: Vec<String>,
    },
}

impl Domain {
    /// A short label for result headers.
    pub fn label(&self) -> String {
        match self {
            Domain::Column { column, .. } => column.clone(),
            Domain::Enumeration { name, .. } => name.clone(),
        }
    }
}

/// A declared metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Unique name.
    pub name: String,
    /// What it computes.
    pub kind: MetricKind,
    /// Decimal places kept in fixed point.
    pub decimals: u8,
    /// Clamp bound.
    pub lower: f64,
    /// Clamp bound.
    pub upper: f64,
    /// Values one entity may add to one group.
    pub max_contributions_per_group: u32,
    /// Group key domains.
    pub key: Vec<Domain>,
}

/// Everything a module declares about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Module name.
    pub name: String,
    /// Module version.
    pub version: String,
    /// Mode it asks for.
    pub mode: Mode,
    /// Distinct groups one entity may contribute to, per metric.
    pub max_groups_per_entity: u32,
    /// Tables and columns read.
    pub reads: Vec<TableRead>,
    /// Metrics contributed to.
    pub metrics: Vec<Metric>,
}

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The bytes end too early or do not follow the layout.
    #[error("malformed manifest at byte {offset}: {what}")]
    Malformed {
        /// Where it went wrong.
        offset: usize,
        /// What was expected.
        what: String,
    },
    /// The layout is fine but the content is not acceptable.
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, what: impl Into<String>) -> Result<T, ManifestError> {
        Err(ManifestError::Malformed {
            offset: self.pos,
            what: what.into(),
        })
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ManifestError> {
        match self.bytes.get(self.pos..self.pos.saturating_add(n)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => self.fail(format!("unexpected end while reading {what}")),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8, ManifestError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<usize, ManifestError> {
        let b = self.take(2, what)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ManifestError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self, what: &str) -> Result<f64, ManifestError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_bits(u64::from_le_bytes(a)))
    }

    fn str(&mut self, what: &str) -> Result<String, ManifestError> {
        let len = self.u16(what)?;
        let start = self.pos;
        let b = self.take(len, what)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(ManifestError::Malformed {
                offset: start,
                what: format!("{what} is not UTF-8"),
            }),
        }
    }

    fn column_type(&mut self) -> Result<ColumnType, ManifestError> {
        let code = self.u8("column type")?;
        match ColumnType::from_code(code) {
            Some(ty) => Ok(ty),
            None => self.fail(format!("unknown column type {code}")),
        }
    }
}

impl Manifest {
    /// Decodes and checks a manifest section.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4, "magic")? != MAGIC.as_slice() {
            return Err(ManifestError::Malformed {
                offset: 0,
                what: "wrong magic (expected SRMF)".into(),
            });
        }
        let version = r.u8("format version")?;
        if version != FORMAT_VERSION {
            return r.fail(format!(
                "format version {version} is not supported (expected {FORMAT_VERSION})"
            ));
        }
        let name = r.str("name")?;
        let module_version = r.str("version")?;
        let code = r.u8("mode")?;
        let Some(mode) = Mode::from_code(code) else {
            return r.fail(format!("unknown mode {code}"));
        };
        let max_groups_per_entity = r.u32("max_groups_per_entity")?;
        let mut reads = Vec::new();
        for _ in 0..r.u16("table count")? {
            let table = r.str("table name")?;
            let mut columns = Vec::new();
            for _ in 0..r.u16("column count")? {
                let column = r.str("column name")?;
                columns.push((column, r.column_type()?));
            }
            reads.push(TableRead { table, columns });
        }
        let mut metrics = Vec::new();
        for _ in 0..r.u16("metric count")? {
            let name = r.str("metric name")?;
            let code = r.u8("metric kind")?;
            let Some(kind) = MetricKind::from_code(code) else {
                return r.fail(format!("unknown metric kind {code}"));
            };
            let decimals = r.u8("decimals")?;
            let lower = r.f64("lower bound")?;
            let upper = r.f64("upper bound")?;
            let max_contributions_per_group = r.u32("max_contributions_per_group")?;
            let mut key = Vec::new();
            for _ in 0..r.u16("group key length")? {
                key.push(match r.u8("domain tag")? {
                    DOMAIN_COLUMN => Domain::Column {
                        table: r.str("domain table")?,
                        column: r.str("domain column")?,
                    },
                    DOMAIN_ENUMERATION => {
                        let name = r.str("enumeration name")?;
                        let mut members = Vec::new();
                        for _ in 0..r.u16("member count")? {
                            members.push(r.str("enumeration member")?);
                        }
                        Domain::Enumeration { name, members }
                    }
                    other => return r.fail(format!("unknown domain tag {other}")),
                });
            }
            metrics.push(Metric {
                name,
                kind,
                decimals,
                lower,
                upper,
                max_contributions_per_group,
                key,
            });
        }
        if r.pos != bytes.len() {
            return r.fail(format!("{} trailing bytes", bytes.len() - r.pos));
        }
        let manifest = Manifest {
            name,
            version: module_version,
            mode,
            max_groups_per_entity,
            reads,
            metrics,
        };
        manifest.check()?;
        Ok(manifest)
    }

    /// Checks the content the layout cannot: names, bounds, key sizes, limits. [`Manifest::decode`]
    /// calls it; a manifest built in memory (a SQL plan's) is checked with it too.
    pub fn check(&self) -> Result<(), ManifestError> {
        let invalid = |s: String| Err(ManifestError::Invalid(s));
        if self.name.is_empty() || self.version.is_empty() {
            return invalid("name and version must not be empty".into());
        }
        if self.max_groups_per_entity == 0 {
            return invalid("max_groups_per_entity must be at least 1".into());
        }
        if self.metrics.is_empty() {
            return invalid("no metric is declared, so nothing could ever be released".into());
        }
        for (i, read) in self.reads.iter().enumerate() {
            if self.reads[..i].iter().any(|r| r.table == read.table) {
                return invalid(format!("table '{}' is listed twice in reads", read.table));
            }
        }
        for (i, m) in self.metrics.iter().enumerate() {
            if self.metrics[..i].iter().any(|o| o.name == m.name) {
                return invalid(format!("metric '{}' is declared twice", m.name));
            }
            if m.key.is_empty() || m.key.len() > MAX_KEY_PARTS {
                return invalid(format!(
                    "metric '{}': a group key has 1 to {MAX_KEY_PARTS} parts",
                    m.name
                ));
            }
            if !(m.lower.is_finite() && m.upper.is_finite() && m.lower <= m.upper) {
                return invalid(format!(
                    "metric '{}': bounds must be finite with lower <= upper",
                    m.name
                ));
            }
            if m.decimals > MAX_DECIMALS {
                return invalid(format!("metric '{}': at most 9 decimals", m.name));
            }
            if m.max_contributions_per_group == 0 {
                return invalid(format!(
                    "metric '{}': max_contributions_per_group must be at least 1",
                    m.name
                ));
            }
            if m.kind == MetricKind::Distinct
                && (m.max_contributions_per_group != 1 || m.lower != 0.0 || m.upper != 0.0)
            {
                return invalid(format!(
                    "metric '{}': a distinct metric has bounds [0, 0] and one contribution per group",
                    m.name
                ));
            }
            for d in &m.key {
                match d {
                    Domain::Column { table, column } => {
                        let declared = self
                            .reads
                            .iter()
                            .find(|r| &r.table == table)
                            .and_then(|r| r.columns.iter().find(|(c, _)| c == column));
                        match declared {
                            Some((_, ColumnType::Category)) => {}
                            Some((_, ty)) => {
                                return invalid(format!(
                                    "metric '{}': group key part {table}.{column} is a {ty} column; only category dictionaries are public domains",
                                    m.name
                                ));
                            }
                            None => {
                                return invalid(format!(
                                    "metric '{}': group key part {table}.{column} is not among the columns the module reads",
                                    m.name
                                ));
                            }
                        }
                    }
                    Domain::Enumeration { name, members } => {
                        if members.is_empty() {
                            return invalid(format!(
                                "metric '{}': enumeration '{name}' has no member",
                                m.name
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
