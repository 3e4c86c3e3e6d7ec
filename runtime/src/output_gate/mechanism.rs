//! Privacy accounting: from a job's stated cost and a module's declared bounds to the exact noise
//! each released number gets.
//!
//! Costs are exact decimals held as integers in billionths ("nano" units), so budgets add up
//! without rounding. The ledger's currency is zCDP rho: a Gaussian job costs its rho; a pure-DP
//! (Laplace) job with epsilon costs epsilon^2 / 2 (epsilon-DP implies (epsilon^2/2)-zCDP).
//!
//! Sensitivities follow from the manifest: an entity reaches at most `L0` groups of a metric, adds
//! at most `m` values to each, each clamped to `[lower, upper]` (in fixed point, `B` = the larger
//! magnitude). Per group the influence is 1 on the entity count, `m` on the contribution count and
//! `m * B` on the sum; across the metric's groups the L1 sensitivity is `L0` times that and the L2
//! sensitivity `sqrt(L0)` times. The job's cost is split evenly over every released quantity.
//! docs/privacy.md states the same formulas for a risk officer.

use std::fmt;

use num_bigint::BigUint;

use super::sampling::Rational;
use strongroom_contract::manifest::{Manifest, MetricKind};

/// One billion: costs are held in billionths.
pub const NANO: u64 = 1_000_000_000;

/// Which guarantee a release gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// Discrete Gaussian noise; cost in zCDP rho.
    Gaussian,
    /// Discrete Laplace noise; cost in pure-DP epsilon.
    Laplace,
    /// No noise (thresholds and bounds only). Only a bank's policy can choose this.
    None,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mechanism::Gaussian => "discrete Gaussian (zCDP)",
            Mechanism::Laplace => "discrete Laplace (pure DP)",
            Mechanism::None => "none (thresholds and bounds only)",
        })
    }
}

/// Why a decimal amount (a budget, a cost) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecimalError(pub String);

impl From<String> for DecimalError {
    fn from(message: String) -> Self {
        DecimalError(message)
    }
}

impl From<&str> for DecimalError {
    fn from(message: &str) -> Self {
        DecimalError(message.to_string())
    }
}

/// Parses a non-negative decimal such as `0.25` into billionths, exactly.
pub fn parse_nano(text: &str) -> Result<u64, DecimalError> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let valid = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !valid(int) || !valid(frac) {
        return Err(format!("'{text}' is not a non-negative decimal number").into());
    }
    if frac.len() > 9 {
        return Err(format!("'{text}' has more than 9 decimal places").into());
    }
    let int: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| format!("'{text}' is too large"))?
    };
    let frac_value: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| format!("'{text}' is malformed"))?
    };
    let frac_nano = frac_value * 10u64.pow(9 - frac.len() as u32);
    int.checked_mul(NANO)
        .and_then(|v| v.checked_add(frac_nano))
        .ok_or_else(|| DecimalError(format!("'{text}' is too large")))
}

/// Formats billionths as a decimal, trimming trailing zeros.
pub fn format_nano(nano: u64) -> String {
    let int = nano / NANO;
    let frac = nano % NANO;
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:09}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// What a job costs in the ledger's currency (nano-rho), rounded up.
pub fn ledger_cost(mechanism: Mechanism, cost_nano: u64) -> u64 {
    match mechanism {
        Mechanism::Gaussian => cost_nano,
        // (E / 1e9)^2 / 2 in units of 1e-9: E^2 / (2e9), rounded up.
        Mechanism::Laplace => {
            let e = u128::from(cost_nano);
            let n = (e * e).div_ceil(2 * u128::from(NANO));
            u64::try_from(n).unwrap_or(u64::MAX)
        }
        Mechanism::None => 0,
    }
}

/// The (epsilon, delta)-DP guarantee implied by rho-zCDP (Bun and Steinke 2016), for display.
pub fn rho_to_epsilon(rho: f64, delta: f64) -> f64 {
    rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt()
}

/// The noise one released quantity gets.
#[derive(Clone, Debug, PartialEq)]
pub enum Noise {
    /// Discrete Gaussian with variance parameter `sigma2` (in fixed-point units squared).
    Gaussian {
        /// sigma^2, exact.
        sigma2: Rational,
    },
    /// Discrete Laplace with scale `t/s`.
    Laplace {
        /// Scale denominator.
        s: BigUint,
        /// Scale numerator.
        t: BigUint,
    },
    /// No noise.
    Exact,
}

impl Noise {
    /// Standard deviation in the quantity's own units (fixed point), for display.
    pub fn std_dev(&self) -> f64 {
        match self {
            Noise::Gaussian { sigma2 } => sigma2.to_f64().sqrt(),
            Noise::Laplace { s, t } => {
                let b = Rational::new(t.clone(), s.clone()).to_f64();
                let r = (-1.0 / b).exp();
                (2.0 * r).sqrt() / (1.0 - r)
            }
            Noise::Exact => 0.0,
        }
    }
}

/// The noise of every quantity a metric releases.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricNoise {
    /// Noise on the number of distinct entities per group (used for the threshold).
    pub entities: Noise,
    /// Noise on the fixed-point sum (sum and mean metrics).
    pub sum: Option<Noise>,
    /// Noise on the contribution count (count and mean metrics).
    pub count: Option<Noise>,
    /// L0 used: the most groups one entity can reach in this metric.
    pub l0: u64,
}

/// How a job's cost turns into noise.
#[derive(Clone, Debug, PartialEq)]
pub struct NoisePlan {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The job's cost in the mechanism's unit (nano-rho or nano-epsilon).
    pub cost_nano: u64,
    /// Number of released quantities the cost is split over.
    pub quantities: u64,
    /// Per metric, in manifest order.
    pub metrics: Vec<MetricNoise>,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A noisy mechanism with zero cost would need infinite noise.
    #[error("a job with noise must state a positive privacy cost")]
    ZeroCost,
}

/// The noise one quantity gets when `cost_nano` is split over `quantities` quantities and an
/// entity reaches at most `l0` groups, moving each by at most `linf` (fixed-point units).
pub fn noise(mechanism: Mechanism, cost_nano: u64, quantities: u64, l0: u64, linf: u128) -> Noise {
    let q = BigUint::from(quantities);
    let l0 = BigUint::from(l0);
    let linf = BigUint::from(linf);
    let nano = BigUint::from(NANO);
    match mechanism {
        // sigma^2 = Delta2^2 / (2 rho_q), Delta2^2 = L0 Linf^2, rho_q = (C / 1e9) / Q.
        Mechanism::Gaussian => Noise::Gaussian {
            sigma2: Rational::new(
                &l0 * &linf * &linf * &nano * &q,
                BigUint::from(2u32) * BigUint::from(cost_nano),
            ),
        },
        // b = Delta1 / eps_q, Delta1 = L0 Linf, eps_q = (C / 1e9) / Q: scale t/s = L0 Linf 1e9 Q / C.
        Mechanism::Laplace => Noise::Laplace {
            s: BigUint::from(cost_nano),
            t: l0 * linf * nano * q,
        },
        Mechanism::None => Noise::Exact,
    }
}

/// Plans the noise of every quantity `manifest` releases, for `cost_nano` of `mechanism`, with
/// each metric's L0 capped at `l0_cap` and at its number of groups (`group_counts`).
pub fn plan(
    manifest: &Manifest,
    mechanism: Mechanism,
    cost_nano: u64,
    l0_cap: u32,
    group_counts: &[u64],
) -> Result<NoisePlan, PlanError> {
    if mechanism != Mechanism::None && cost_nano == 0 {
        return Err(PlanError::ZeroCost);
    }
    let quantities: u64 = manifest
        .metrics
        .iter()
        .map(|m| match m.kind {
            // Distinct entities: the entity count alone, which the threshold reads too.
            MetricKind::Distinct => 1,
            MetricKind::Sum | MetricKind::Count => 2,
            MetricKind::Mean => 3,
        })
        .sum();
    let metrics = manifest
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let groups = group_counts.get(i).copied().unwrap_or(u64::MAX).max(1);
            let l0 = u64::from(manifest.max_groups_per_entity.min(l0_cap).max(1)).min(groups);
            let per_group = u128::from(m.max_contributions_per_group);
            let scale = 10f64.powi(i32::from(m.decimals));
            let bound =
                ((m.lower * scale).round().abs()).max((m.upper * scale).round().abs()) as u128;
            let n = |linf: u128| noise(mechanism, cost_nano, quantities, l0, linf);
            MetricNoise {
                entities: n(1),
                sum: matches!(m.kind, MetricKind::Sum | MetricKind::Mean)
                    .then(|| n(per_group * bound.max(1))),
                count: matches!(m.kind, MetricKind::Count | MetricKind::Mean).then(|| n(per_group)),
                l0,
            }
        })
        .collect();
    Ok(NoisePlan {
        mechanism,
        cost_nano,
        quantities,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_nano("1"), Ok(NANO));
        assert_eq!(parse_nano("0.25"), Ok(250_000_000));
        assert_eq!(parse_nano(".5"), Ok(500_000_000));
        assert_eq!(parse_nano("0.000000001"), Ok(1));
        assert!(parse_nano("0.0000000001").is_err());
        assert!(parse_nano("-1").is_err());
        assert!(parse_nano("1e3").is_err());
        assert!(parse_nano("").is_err());
        assert_eq!(format_nano(250_000_000), "0.25");
        assert_eq!(format_nano(3 * NANO), "3");
    }

    #[test]
    fn laplace_costs_epsilon_squared_over_two() {
        assert_eq!(ledger_cost(Mechanism::Laplace, NANO), NANO / 2);
        assert_eq!(ledger_cost(Mechanism::Gaussian, 123), 123);
        assert_eq!(ledger_cost(Mechanism::None, 123), 0);
    }

    #[test]
    fn a_distinct_metric_releases_one_quantity_its_entity_count() {
        use strongroom_contract::manifest::{Domain, Manifest, Metric, Mode};
        let metric = |name: &str, kind| Metric {
            name: name.into(),
            kind,
            decimals: 0,
            lower: 0.0,
            upper: if kind == MetricKind::Distinct {
                0.0
            } else {
                1.0
            },
            max_contributions_per_group: 1,
            key: vec![Domain::Enumeration {
                name: "band".into(),
                members: vec!["a".into(), "b".into()],
            }],
        };
        let manifest = |metrics| Manifest {
            name: "m".into(),
            version: "1".into(),
            mode: Mode::Isolated,
            max_groups_per_entity: 1,
            reads: Vec::new(),
            metrics,
        };
        let distinct = manifest(vec![metric("customers", MetricKind::Distinct)]);
        let p = plan(&distinct, Mechanism::Gaussian, NANO, 1, &[2]).expect("plan");
        assert_eq!(p.quantities, 1);
        assert!(p.metrics[0].sum.is_none() && p.metrics[0].count.is_none());
        // A count of one per customer releases its count and its entity count: twice the
        // quantities, so each gets more noise for the same cost.
        let count = manifest(vec![metric("customers", MetricKind::Count)]);
        let q = plan(&count, Mechanism::Gaussian, NANO, 1, &[2]).expect("plan");
        assert_eq!(q.quantities, 2);
        assert!(p.metrics[0].entities.std_dev() < q.metrics[0].entities.std_dev());
    }

    #[test]
    fn rho_to_epsilon_matches_the_published_bound() {
        // Bun & Steinke: rho = 0.5, delta = 1e-6 gives eps = 0.5 + 2 sqrt(0.5 ln 1e6).
        let eps = rho_to_epsilon(0.5, 1e-6);
        assert!((eps - (0.5 + 2.0 * (0.5f64 * 1e6f64.ln()).sqrt())).abs() < 1e-12);
    }
}
