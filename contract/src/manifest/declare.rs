//! The manifest as a partner declares it: `const` values and the encoder that turns them into the
//! bytes of the custom section at compile time.
//!
//! Every type here is built in `const` context, and mistakes a compiler can see (an empty name,
//! bounds the wrong way round, a group key with no part) stop the build with a message. The host
//! reads the bytes back with [`super::decode`].

use super::{
    ColumnType, DOMAIN_COLUMN, DOMAIN_ENUMERATION, FORMAT_VERSION, MAGIC, MAX_DECIMALS,
    MAX_KEY_PARTS, MetricKind, Mode,
};

/// A column the module reads, with the type it expects.
#[derive(Clone, Copy, Debug)]
pub struct ColumnSpec {
    /// Column name in the dataset schema.
    pub name: &'static str,
    /// The type the module expects; checked against the dataset before the run starts.
    pub ty: ColumnType,
}

/// The columns a module reads from one table. `#[derive(Row)]` writes one as `T::READS`.
#[derive(Clone, Copy, Debug)]
pub struct TableRead {
    /// Table name in the dataset schema.
    pub table: &'static str,
    /// Columns read from it.
    pub columns: &'static [ColumnSpec],
}

/// One part of a group key: a public domain its values index into.
#[derive(Clone, Copy, Debug)]
pub enum Domain {
    /// The public dictionary of a category column.
    Column {
        /// Table of the column.
        table: &'static str,
        /// Category column whose dictionary is the domain.
        column: &'static str,
    },
    /// An enumeration declared here, in the manifest.
    Enumeration {
        /// Name shown as the column header of released results.
        name: &'static str,
        /// The members, in index order.
        members: &'static [&'static str],
    },
}

impl Domain {
    /// The dictionary of a category column.
    pub const fn column(table: &'static str, column: &'static str) -> Domain {
        Domain::Column { table, column }
    }

    /// The months of the year, January first: index with `Date::month_index()`.
    pub const MONTHS: Domain = Domain::Enumeration {
        name: "month",
        members: &[
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ],
    };

    /// The quarters of the year: index with `Date::quarter_index()`.
    pub const QUARTERS: Domain = Domain::Enumeration {
        name: "quarter",
        members: &["Q1", "Q2", "Q3", "Q4"],
    };

    /// The days of the week, Monday first (ISO 8601): index with `Date::weekday_index()`.
    pub const WEEKDAYS: Domain = Domain::Enumeration {
        name: "weekday",
        members: &[
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ],
    };

    /// An enumeration declared by the module, such as balance bands.
    pub const fn enumeration(name: &'static str, members: &'static [&'static str]) -> Domain {
        assert!(
            !members.is_empty(),
            "an enumeration needs at least one member"
        );
        Domain::Enumeration { name, members }
    }
}

/// A metric: a named statistic per group, with the bounds that limit one entity's influence.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Name, unique in the manifest.
    pub name: &'static str,
    /// Sum, count or mean.
    pub kind: MetricKind,
    /// The public domains the group key indexes into, one per part.
    pub key: &'static [Domain],
    /// Each contributed value is clamped into `[lower, upper]`.
    pub lower: f64,
    /// See `lower`.
    pub upper: f64,
    /// Decimal places kept: values are summed exactly in fixed point at this precision.
    pub decimals: u8,
    /// How many values one entity may contribute to one group (more are dropped).
    pub max_contributions_per_group: u32,
}

impl Metric {
    const fn new(
        name: &'static str,
        kind: MetricKind,
        key: &'static [Domain],
        lower: f64,
        upper: f64,
    ) -> Metric {
        assert!(!name.is_empty(), "a metric needs a name");
        assert!(
            !key.is_empty(),
            "a metric needs a group key with at least one part"
        );
        assert!(
            key.len() <= MAX_KEY_PARTS,
            "a group key has at most 4 parts"
        );
        assert!(lower <= upper, "metric bounds must satisfy lower <= upper");
        assert!(
            lower.is_finite() && upper.is_finite(),
            "metric bounds must be finite"
        );
        Metric {
            name,
            kind,
            key,
            lower,
            upper,
            decimals: 2,
            max_contributions_per_group: 1,
        }
    }

    /// Sum of values in `[lower, upper]` per group.
    pub const fn sum(name: &'static str, key: &'static [Domain], lower: f64, upper: f64) -> Metric {
        Metric::new(name, MetricKind::Sum, key, lower, upper)
    }

    /// Number of contributions per group.
    pub const fn count(name: &'static str, key: &'static [Domain]) -> Metric {
        Metric::new(name, MetricKind::Count, key, 0.0, 1.0)
    }

    /// Number of distinct customers (entities) that contributed to each group: contribute with
    /// `add_one`, as often as is convenient; a customer counts once per group. It releases one
    /// number per group, so it costs less noise than a count that gives one per customer (a
    /// count's number and its distinct-customer number, both released and both paid for).
    pub const fn distinct(name: &'static str, key: &'static [Domain]) -> Metric {
        Metric::new(name, MetricKind::Distinct, key, 0.0, 0.0)
    }

    /// Mean of values in `[lower, upper]` per group.
    pub const fn mean(
        name: &'static str,
        key: &'static [Domain],
        lower: f64,
        upper: f64,
    ) -> Metric {
        Metric::new(name, MetricKind::Mean, key, lower, upper)
    }

    /// Let one entity contribute up to `n` values to each group (default 1).
    pub const fn max_contributions_per_group(mut self, n: u32) -> Metric {
        assert!(n >= 1, "max_contributions_per_group must be at least 1");
        assert!(
            !matches!(self.kind, MetricKind::Distinct),
            "a distinct metric counts each customer once per group: it takes no max_contributions_per_group"
        );
        self.max_contributions_per_group = n;
        self
    }

    /// Keep `d` decimal places (default 2, at most 9).
    pub const fn decimals(mut self, d: u8) -> Metric {
        assert!(d <= MAX_DECIMALS, "at most 9 decimal places");
        self.decimals = d;
        self
    }
}

/// Everything a module declares about itself.
#[derive(Clone, Copy, Debug)]
pub struct Manifest {
    /// Module name.
    pub name: &'static str,
    /// Module version.
    pub version: &'static str,
    /// How the room drives it.
    pub mode: Mode,
    /// Tables and columns it reads (use `T::READS` from `#[derive(Row)]`).
    pub reads: &'static [TableRead],
    /// The metrics it contributes to.
    pub metrics: &'static [Metric],
    /// How many distinct groups one entity may contribute to, per metric (more are dropped).
    pub max_groups_per_entity: u32,
}

const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Checked when a module compiles (through the SDK's `contribute!`): `metric` is one of
/// `manifest`'s metrics, and a key of `parts` parts fits it. Either mistake stops the build with
/// the message below instead of failing the run.
pub const fn check_use(manifest: &Manifest, metric: &Metric, parts: usize) {
    let mut i = 0;
    let mut listed = false;
    while i < manifest.metrics.len() {
        if same_str(manifest.metrics[i].name, metric.name) {
            listed = true;
        }
        i += 1;
    }
    assert!(
        listed,
        "this metric is not listed in the manifest's metrics: add it to `metrics: &[...]` in query!"
    );
    assert!(
        parts == metric.key.len(),
        "this group key has a different number of parts from the metric's key (one per domain)"
    );
}

/// Writes into a fixed buffer; with `N == 0` it only counts, which is how [`encoded_len`] works.
struct Writer<const N: usize> {
    buf: [u8; N],
    pos: usize,
}

impl<const N: usize> Writer<N> {
    const fn byte(&mut self, b: u8) {
        if N > 0 {
            self.buf[self.pos] = b;
        }
        self.pos += 1;
    }

    const fn bytes(&mut self, bs: &[u8]) {
        let mut i = 0;
        while i < bs.len() {
            self.byte(bs[i]);
            i += 1;
        }
    }

    const fn u16(&mut self, v: usize) {
        assert!(v <= u16::MAX as usize, "manifest list or string too long");
        self.bytes(&(v as u16).to_le_bytes());
    }

    const fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    const fn f64(&mut self, v: f64) {
        self.bytes(&v.to_bits().to_le_bytes());
    }

    const fn str(&mut self, s: &str) {
        self.u16(s.len());
        self.bytes(s.as_bytes());
    }

    const fn manifest(&mut self, m: &Manifest) {
        assert!(!m.name.is_empty(), "the manifest needs a name");
        assert!(!m.version.is_empty(), "the manifest needs a version");
        assert!(
            m.max_groups_per_entity >= 1,
            "max_groups_per_entity must be at least 1"
        );
        assert!(
            !m.metrics.is_empty(),
            "the manifest declares no metric: nothing could leave"
        );
        self.bytes(&MAGIC);
        self.byte(FORMAT_VERSION);
        self.str(m.name);
        self.str(m.version);
        self.byte(m.mode.code());
        self.u32(m.max_groups_per_entity);
        self.u16(m.reads.len());
        let mut t = 0;
        while t < m.reads.len() {
            let use_ = &m.reads[t];
            self.str(use_.table);
            self.u16(use_.columns.len());
            let mut c = 0;
            while c < use_.columns.len() {
                self.str(use_.columns[c].name);
                self.byte(use_.columns[c].ty.code());
                c += 1;
            }
            t += 1;
        }
        self.u16(m.metrics.len());
        let mut i = 0;
        while i < m.metrics.len() {
            let metric = &m.metrics[i];
            self.str(metric.name);
            self.byte(metric.kind.code());
            self.byte(metric.decimals);
            self.f64(metric.lower);
            self.f64(metric.upper);
            self.u32(metric.max_contributions_per_group);
            self.u16(metric.key.len());
            let mut k = 0;
            while k < metric.key.len() {
                match metric.key[k] {
                    Domain::Column { table, column } => {
                        self.byte(DOMAIN_COLUMN);
                        self.str(table);
                        self.str(column);
                    }
                    Domain::Enumeration { name, members } => {
                        self.byte(DOMAIN_ENUMERATION);
                        self.str(name);
                        self.u16(members.len());
                        let mut j = 0;
                        while j < members.len() {
                            self.str(members[j]);
                            j += 1;
                        }
                    }
                }
                k += 1;
            }
            i += 1;
        }
    }
}

/// Length in bytes of the encoded manifest.
pub const fn encoded_len(m: &Manifest) -> usize {
    let mut w = Writer::<0> { buf: [], pos: 0 };
    w.manifest(m);
    w.pos
}

/// The manifest's bytes, computed at run time (for host-side tools and tests; modules embed it at
/// compile time through `strongroom_guest::query!`).
pub fn to_vec(m: &Manifest) -> Vec<u8> {
    const MAX: usize = 1 << 16;
    let len = encoded_len(m);
    assert!(len <= MAX, "manifest larger than 64 KiB");
    let mut w = Writer::<MAX> {
        buf: [0; MAX],
        pos: 0,
    };
    w.manifest(m);
    w.buf[..len].to_vec()
}

/// The manifest as the bytes of its custom section. `N` must be [`encoded_len`].
pub const fn encode<const N: usize>(m: &Manifest) -> [u8; N] {
    let mut w = Writer::<N> {
        buf: [0; N],
        pos: 0,
    };
    w.manifest(m);
    assert!(w.pos == N, "encode: N must equal encoded_len");
    w.buf
}

/// The declared form of a manifest built at run time (decoded, or read from a language-neutral
/// file by `strongroom module embed-manifest`), so that [`to_vec`], the one encoder, can encode
/// it. Its strings and lists are leaked: they live as long as the process, which suits a command
/// that runs once.
pub fn leaked(m: &super::decode::Manifest) -> Manifest {
    fn text(s: &str) -> &'static str {
        Box::leak(s.to_string().into_boxed_str())
    }
    fn list<T>(items: Vec<T>) -> &'static [T] {
        Box::leak(items.into_boxed_slice())
    }
    use super::decode::Domain as Decoded;
    Manifest {
        name: text(&m.name),
        version: text(&m.version),
        mode: m.mode,
        reads: list(
            m.reads
                .iter()
                .map(|r| TableRead {
                    table: text(&r.table),
                    columns: list(
                        r.columns
                            .iter()
                            .map(|(name, ty)| ColumnSpec {
                                name: text(name),
                                ty: *ty,
                            })
                            .collect(),
                    ),
                })
                .collect(),
        ),
        metrics: list(
            m.metrics
                .iter()
                .map(|x| Metric {
                    name: text(&x.name),
                    kind: x.kind,
                    key: list(
                        x.key
                            .iter()
                            .map(|d| match d {
                                Decoded::Column { table, column } => Domain::Column {
                                    table: text(table),
                                    column: text(column),
                                },
                                Decoded::Enumeration { name, members } => Domain::Enumeration {
                                    name: text(name),
                                    members: list(members.iter().map(|s| text(s)).collect()),
                                },
                            })
                            .collect(),
                    ),
                    lower: x.lower,
                    upper: x.upper,
                    decimals: x.decimals,
                    max_contributions_per_group: x.max_contributions_per_group,
                })
                .collect(),
        ),
        max_groups_per_entity: m.max_groups_per_entity,
    }
}
