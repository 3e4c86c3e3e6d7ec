//! The manifest: what a module declares about itself, in the `strongroom-manifest` custom section
//! of its core module (so the module hash covers it). The byte layout is specified in
//! docs/formats/manifest.md.
//!
//! One layout, one encoder and one decoder:
//! - [`declare`]: the `const` declarations a partner writes through the guest SDK, and the
//!   encoder that turns them into the section's bytes at compile time;
//! - [`decode`]: the host's decoder, which trusts nothing, into owned values ([`Manifest`]).
//!
//! The enums and tags below are shared by both, so the two sides cannot drift apart.

use std::fmt;

pub mod declare;
pub mod decode;

pub use decode::{Domain, Manifest, ManifestError, Metric, TableRead};

/// Name of the custom section that carries the manifest.
pub const SECTION: &str = "strongroom-manifest";
/// Magic bytes at the start of the section.
pub const MAGIC: [u8; 4] = *b"SRMF";
/// Version of the byte layout.
pub const FORMAT_VERSION: u8 = 1;
/// Most parts a group key may have.
pub const MAX_KEY_PARTS: usize = 4;
/// Most decimal places a metric may keep.
pub const MAX_DECIMALS: u8 = 9;

/// How the room drives a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Mode {
    /// Called once per entity, in a fresh instance, with only that entity's rows (the default for
    /// modules nobody reviewed).
    Isolated,
    /// Called once, pulls batches of whole tables; only for modules the bank approved by hash.
    Table,
}

impl Mode {
    /// The byte that stands for this mode in the section.
    pub const fn code(self) -> u8 {
        match self {
            Mode::Isolated => 0,
            Mode::Table => 1,
        }
    }

    /// The mode a byte stands for.
    pub const fn from_code(code: u8) -> Option<Mode> {
        match code {
            0 => Some(Mode::Isolated),
            1 => Some(Mode::Table),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Isolated => "isolated",
            Mode::Table => "table",
        })
    }
}

/// A column type, as the manifest, the dataset schema and the SDK name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum ColumnType {
    /// 64-bit signed integer (`i64`).
    Int,
    /// 64-bit float (`f64`).
    Float,
    /// `bool`.
    Bool,
    /// Days since 1970-01-01.
    Date,
    /// Index into the column's public dictionary.
    Category,
}

impl ColumnType {
    /// The byte that stands for this type in the section.
    pub const fn code(self) -> u8 {
        match self {
            ColumnType::Int => 0,
            ColumnType::Float => 1,
            ColumnType::Bool => 2,
            ColumnType::Date => 3,
            ColumnType::Category => 4,
        }
    }

    /// The type a byte stands for.
    pub const fn from_code(code: u8) -> Option<ColumnType> {
        match code {
            0 => Some(ColumnType::Int),
            1 => Some(ColumnType::Float),
            2 => Some(ColumnType::Bool),
            3 => Some(ColumnType::Date),
            4 => Some(ColumnType::Category),
            _ => None,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Bool => "bool",
            ColumnType::Date => "date",
            ColumnType::Category => "category",
        })
    }
}

/// What a metric computes per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum MetricKind {
    /// Sum of the values.
    Sum,
    /// Number of contributions.
    Count,
    /// Sum of the values divided by the number of contributions.
    Mean,
    /// Number of distinct entities (customers) that contributed to the group: one quantity,
    /// where a count with one contribution per customer releases the same number twice.
    Distinct,
}

impl MetricKind {
    /// The byte that stands for this kind in the section.
    pub const fn code(self) -> u8 {
        match self {
            MetricKind::Sum => 0,
            MetricKind::Count => 1,
            MetricKind::Mean => 2,
            MetricKind::Distinct => 3,
        }
    }

    /// Whether the metric's contributions carry no value (a count, distinct entities).
    pub const fn counts_only(self) -> bool {
        matches!(self, MetricKind::Count | MetricKind::Distinct)
    }

    /// The kind a byte stands for.
    pub const fn from_code(code: u8) -> Option<MetricKind> {
        match code {
            0 => Some(MetricKind::Sum),
            1 => Some(MetricKind::Count),
            2 => Some(MetricKind::Mean),
            3 => Some(MetricKind::Distinct),
            _ => None,
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricKind::Sum => "sum",
            MetricKind::Count => "count",
            MetricKind::Mean => "mean",
            MetricKind::Distinct => "distinct",
        })
    }
}

/// The tag of a column domain in a group key.
pub(crate) const DOMAIN_COLUMN: u8 = 0;
/// The tag of an enumeration domain in a group key.
pub(crate) const DOMAIN_ENUMERATION: u8 = 1;

/// A metric's bounds at its fixed-point precision, and how one value is bounded: scaled by
/// 10^decimals, rounded half away from zero, clamped to [lower, upper]. The one definition the
/// room (bounding version 0.1 contributions, checking 0.2 cells) and the SDK (bounding into 0.2
/// cells) share, so the two can never round or clamp differently.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FixedPoint {
    /// 10^decimals.
    pub scale: f64,
    /// The lower bound in fixed point.
    pub lower: i64,
    /// The upper bound in fixed point.
    pub upper: i64,
}

impl FixedPoint {
    /// The fixed-point form of the bounds `[lower, upper]` at `decimals` places.
    pub fn new(lower: f64, upper: f64, decimals: u8) -> FixedPoint {
        let scale = 10f64.powi(i32::from(decimals));
        FixedPoint {
            scale,
            lower: round_half_away_from_zero(lower * scale) as i64,
            upper: round_half_away_from_zero(upper * scale) as i64,
        }
    }

    /// `value` in fixed point, bounded, and whether clamping changed it. NaN is the caller's to
    /// refuse; infinities clamp.
    pub fn bound(&self, value: f64) -> (i64, bool) {
        let fixed = round_half_away_from_zero(value * self.scale);
        if fixed < self.lower as f64 {
            (self.lower, true)
        } else if fixed > self.upper as f64 {
            (self.upper, true)
        } else {
            (fixed as i64, false)
        }
    }
}

/// `x` rounded to the nearest integer, halves away from zero: exactly `f64::round`, written with
/// `trunc` because WebAssembly has an instruction for that and none for `round` (its `nearest`
/// breaks ties to even), so inside a module `f64::round` is a software routine on every value a
/// query contributes. `x - x.trunc()` is exact for every finite `x`.
pub fn round_half_away_from_zero(x: f64) -> f64 {
    let whole = x.trunc();
    if (x - whole).abs() >= 0.5 {
        whole + x.signum()
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::declare::{self, ColumnSpec};
    use super::*;

    #[test]
    fn rounding_is_f64_round_bit_for_bit() {
        let edges = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            4503599627370495.5,
            4503599627370497.0,
            9007199254740993.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let same = |x: f64| {
            let (ours, std) = (round_half_away_from_zero(x), x.round());
            assert!(
                ours.to_bits() == std.to_bits() || (ours.is_nan() && std.is_nan()),
                "{x:e}: {ours:e} against {std:e}"
            );
        };
        edges.iter().for_each(|&x| same(x));
        // Every exponent, with random mantissas, and values near every half.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2_000_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            same(f64::from_bits(state));
            let near_half = (state % 2_000_001) as f64 / 2.0 - 500_000.0;
            same(near_half);
            same(near_half + f64::EPSILON * near_half);
            same(near_half - f64::EPSILON * near_half);
        }
    }

    #[test]
    fn fixed_point_rounds_half_away_from_zero_and_clamps() {
        let f = FixedPoint::new(-3.0, 300.0, 2);
        assert_eq!((f.lower, f.upper), (-300, 30_000));
        assert_eq!(f.bound(1.005 + 1e-12), (101, false));
        assert_eq!(f.bound(0.125), (13, false));
        assert_eq!(f.bound(-0.125), (-13, false));
        assert_eq!(f.bound(300.004), (30_000, false));
        assert_eq!(f.bound(300.006), (30_000, true));
        assert_eq!(f.bound(-7.0), (-300, true));
        assert_eq!(f.bound(f64::INFINITY), (30_000, true));
        assert_eq!(f.bound(f64::NEG_INFINITY), (-300, true));
    }

    const READS: &[declare::TableRead] = &[declare::TableRead {
        table: "transactions",
        columns: &[
            ColumnSpec {
                name: "mcc_group",
                ty: ColumnType::Category,
            },
            ColumnSpec {
                name: "amount",
                ty: ColumnType::Float,
            },
            ColumnSpec {
                name: "online",
                ty: ColumnType::Bool,
            },
        ],
    }];
    const KEY: &[declare::Domain] = &[
        declare::Domain::column("transactions", "mcc_group"),
        declare::Domain::enumeration("band", &["low", "high"]),
    ];
    const DECLARED: declare::Manifest = declare::Manifest {
        name: "spend",
        version: "1.2.0",
        mode: Mode::Table,
        reads: READS,
        metrics: &[
            declare::Metric::sum("spend", KEY, -5.0, 500.0)
                .decimals(3)
                .max_contributions_per_group(7),
            declare::Metric::count("purchases", KEY),
            declare::Metric::mean("ticket", KEY, 0.0, 80.0),
        ],
        max_groups_per_entity: 3,
    };

    #[test]
    fn what_the_sdk_encodes_the_host_decodes_to_the_same_declaration() {
        let bytes = declare::to_vec(&DECLARED);
        assert_eq!(bytes.len(), declare::encoded_len(&DECLARED));
        let decoded = Manifest::decode(&bytes).expect("decodes");
        assert_eq!(decoded.name, "spend");
        assert_eq!(decoded.version, "1.2.0");
        assert_eq!(decoded.mode, Mode::Table);
        assert_eq!(decoded.max_groups_per_entity, 3);
        assert_eq!(
            decoded.reads,
            vec![TableRead {
                table: "transactions".into(),
                columns: vec![
                    ("mcc_group".into(), ColumnType::Category),
                    ("amount".into(), ColumnType::Float),
                    ("online".into(), ColumnType::Bool),
                ],
            }]
        );
        let kinds: Vec<_> = decoded.metrics.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [MetricKind::Sum, MetricKind::Count, MetricKind::Mean]
        );
        let spend = &decoded.metrics[0];
        assert_eq!((spend.lower, spend.upper), (-5.0, 500.0));
        assert_eq!((spend.decimals, spend.max_contributions_per_group), (3, 7));
        assert_eq!(
            spend.key,
            vec![
                Domain::Column {
                    table: "transactions".into(),
                    column: "mcc_group".into()
                },
                Domain::Enumeration {
                    name: "band".into(),
                    members: vec!["low".into(), "high".into()]
                },
            ]
        );
        // The SDK's defaults, as docs/formats/manifest.md states them.
        let count = &decoded.metrics[1];
        assert_eq!((count.lower, count.upper, count.decimals), (0.0, 1.0, 2));
        assert_eq!(count.max_contributions_per_group, 1);
    }

    #[test]
    fn every_tag_round_trips_and_unknown_tags_are_refused() {
        for mode in [Mode::Isolated, Mode::Table] {
            assert_eq!(Mode::from_code(mode.code()), Some(mode));
        }
        for ty in [
            ColumnType::Int,
            ColumnType::Float,
            ColumnType::Bool,
            ColumnType::Date,
            ColumnType::Category,
        ] {
            assert_eq!(ColumnType::from_code(ty.code()), Some(ty));
        }
        for kind in [
            MetricKind::Sum,
            MetricKind::Count,
            MetricKind::Mean,
            MetricKind::Distinct,
        ] {
            assert_eq!(MetricKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(Mode::from_code(2), None);
        assert_eq!(ColumnType::from_code(5), None);
        assert_eq!(MetricKind::from_code(4), None);
        let mut bytes = declare::to_vec(&DECLARED);
        bytes.push(0);
        assert!(Manifest::decode(&bytes).is_err(), "a trailing byte");
    }
}
