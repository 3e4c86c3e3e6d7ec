//! The release: from exact, bounded aggregates to the table a partner may see.
//!
//! Groups are the full cross product of each metric's public key domains, fixed before the run,
//! so which groups appear reveals nothing: empty groups are noised like any other. Each group's
//! distinct-entity count gets noise; a group whose noisy count is below the policy's minimum is
//! suppressed (thresholding after noise); the others get their noisy value.

use std::collections::HashMap;

use num_bigint::BigInt;
use num_traits::ToPrimitive;

use super::accuracy::{self, Estimate, Values};
use super::aggregate::{Aggregate, GroupRow};
use super::mechanism::{Mechanism, MetricNoise, Noise, NoisePlan};
use super::sampling::{RandomBytes, Sampler, SamplingError};
use strongroom_contract::manifest::{Domain, Manifest, Metric, MetricKind};

/// Most groups a metric may have (the product of its key domains).
pub const MAX_GROUPS_PER_METRIC: u64 = 1_000_000;

/// One released group.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReleasedGroup {
    /// Decoded labels, one per key part.
    pub labels: Vec<String>,
    /// The noisy value (sum, count or mean), post-processed into where the exact value can be:
    /// a count at zero or more, a sum of values that cannot be negative at zero or more, a mean
    /// inside the metric's bounds.
    pub value: f64,
    /// The lower end of the interval that holds the exact value with probability
    /// [`ReleasedTable::confidence`] (see `accuracy.rs`).
    #[serde(default)]
    pub low: f64,
    /// The upper end of that interval.
    #[serde(default)]
    pub high: f64,
    /// The noisy number of distinct entities.
    pub entities: f64,
}

/// One released metric.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReleasedMetric {
    /// Metric name.
    pub name: String,
    /// sum, count or mean.
    pub kind: String,
    /// Column headers of the key parts.
    pub key: Vec<String>,
    /// Groups above the threshold.
    pub groups: Vec<ReleasedGroup>,
    /// Groups suppressed because their (noisy) entity count was below the threshold.
    pub suppressed_groups: u64,
    /// Standard deviation of the noise on each value, in value units (for a mean, whose noise
    /// depends on its count, the noise on its sum; its intervals are per group).
    pub value_noise_std: f64,
    /// Standard deviation of the noise on the entity counts.
    pub entities_noise_std: f64,
}

/// What a partner gets: values and public metadata, nothing about the run itself.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReleasedTable {
    /// The mechanism, in words.
    pub mechanism: String,
    /// Minimum distinct entities for a group to be released.
    pub threshold: u64,
    /// The probability each group's interval holds its exact value.
    #[serde(default)]
    pub confidence: f64,
    /// The cost charged for this release, as rho (set by the job that ran it).
    #[serde(default)]
    pub cost_rho: String,
    /// The partner's budget left on this dataset after the charge, as rho.
    #[serde(default)]
    pub remaining_rho: String,
    /// Metrics in manifest order.
    pub metrics: Vec<ReleasedMetric>,
}

/// Why a release could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A metric's key domains multiply to too many groups.
    #[error(
        "metric '{metric}' has {groups} groups, more than the {MAX_GROUPS_PER_METRIC} a release may hold"
    )]
    TooManyGroups {
        /// Metric.
        metric: String,
        /// Its group count.
        groups: u64,
    },
    /// Randomness failed.
    #[error(transparent)]
    Sampling(#[from] SamplingError),
}

/// The number of groups of each metric: the product of its domain sizes.
pub fn group_counts(domain_sizes: &[Vec<u32>]) -> Vec<u64> {
    domain_sizes
        .iter()
        .map(|sizes| {
            sizes
                .iter()
                .fold(1u64, |acc, &s| acc.saturating_mul(u64::from(s)))
        })
        .collect()
}

/// Checks every metric's group count against [`MAX_GROUPS_PER_METRIC`].
pub fn check_group_counts(
    manifest: &Manifest,
    domain_sizes: &[Vec<u32>],
) -> Result<(), ReleaseError> {
    for (metric, groups) in manifest.metrics.iter().zip(group_counts(domain_sizes)) {
        if groups > MAX_GROUPS_PER_METRIC {
            return Err(ReleaseError::TooManyGroups {
                metric: metric.name.clone(),
                groups,
            });
        }
    }
    Ok(())
}

fn perturb<R: RandomBytes>(
    sampler: &mut Sampler<R>,
    exact: i128,
    noise: &Noise,
) -> Result<i128, SamplingError> {
    let delta = match noise {
        Noise::Gaussian { sigma2 } => sampler.discrete_gaussian(sigma2)?,
        Noise::Laplace { s, t } => sampler.discrete_laplace(s, t)?,
        Noise::Exact => BigInt::from(0),
    };
    // Noise beyond i128 would need a scale no policy allows; saturate rather than wrap.
    Ok(exact.saturating_add(delta.to_i128().unwrap_or(
        if delta.sign() == num_bigint::Sign::Minus {
            i128::MIN
        } else {
            i128::MAX
        },
    )))
}

/// A released group's value and interval from its noisy sum and count.
/// The half-widths of one metric's intervals: they depend on its noise alone, so they are worked
/// out once per release, not per group (a discrete Gaussian's is a sum over its mass).
#[derive(Clone, Copy)]
enum Widths {
    /// A sum, a count or a distinct metric: its one number's.
    One(f64),
    /// A mean: its sum's and its count's, each at [`accuracy::mean_part_level`].
    Mean(f64, f64),
}

fn widths(metric: &Metric, noise: &MetricNoise) -> Widths {
    let exact = Noise::Exact;
    let sum = noise.sum.as_ref().unwrap_or(&exact);
    let count = noise.count.as_ref().unwrap_or(&exact);
    let level = accuracy::LEVEL;
    match metric.kind {
        MetricKind::Sum => Widths::One(accuracy::half_width(sum, level)),
        MetricKind::Count => Widths::One(accuracy::half_width(count, level)),
        // The released entity count itself: the one number a distinct metric releases.
        MetricKind::Distinct => Widths::One(accuracy::half_width(&noise.entities, level)),
        MetricKind::Mean => {
            let each = accuracy::mean_part_level(level);
            Widths::Mean(
                accuracy::half_width(sum, each),
                accuracy::half_width(count, each),
            )
        }
    }
}

/// A released group's value and interval from its noisy numbers.
fn estimate(
    metric: &Metric,
    widths: Widths,
    (sum, count, entities): (Option<i128>, Option<i128>, i128),
    scale: f64,
) -> Estimate {
    let (sum, count) = (sum.unwrap_or(0), count.unwrap_or(0));
    let values = Values {
        scale,
        lower: metric.lower,
        upper: metric.upper,
    };
    match (metric.kind, widths) {
        (MetricKind::Sum, Widths::One(h)) => accuracy::sum(sum, h, values),
        (MetricKind::Distinct, Widths::One(h)) => accuracy::count(entities, h),
        (MetricKind::Mean, Widths::Mean(a, b)) => accuracy::mean((sum, a), (count, b), values),
        // A count: `widths` makes `Mean` for a mean alone.
        (_, Widths::One(h) | Widths::Mean(_, h)) => accuracy::count(count, h),
    }
}

/// Applies threshold and noise to `aggregate`. `labels[m][part]` are the domains' members.
pub fn release<R: RandomBytes>(
    manifest: &Manifest,
    aggregate: &Aggregate,
    labels: &[Vec<Vec<String>>],
    plan: &NoisePlan,
    threshold: u64,
    rng: R,
) -> Result<ReleasedTable, ReleaseError> {
    let mut sampler = Sampler::new(rng);
    let mut metrics = Vec::with_capacity(manifest.metrics.len());
    for (i, metric) in manifest.metrics.iter().enumerate() {
        let domains: &Vec<Vec<String>> = &labels[i];
        let groups: u64 = domains
            .iter()
            .fold(1u64, |acc, d| acc.saturating_mul(d.len() as u64));
        if groups > MAX_GROUPS_PER_METRIC {
            return Err(ReleaseError::TooManyGroups {
                metric: metric.name.clone(),
                groups,
            });
        }
        let exact: HashMap<&[u32], &GroupRow> = aggregate.metrics[i]
            .rows
            .iter()
            .map(|r| (r.key.as_slice(), r))
            .collect();
        let noise = &plan.metrics[i];
        let widths = widths(metric, noise);
        let scale = 10f64.powi(i32::from(metric.decimals));
        let mut released = Vec::new();
        let mut suppressed = 0u64;
        let mut key = vec![0u32; domains.len()];
        for _ in 0..groups {
            let row = exact.get(key.as_slice());
            let entities = perturb(
                &mut sampler,
                row.map_or(0, |r| i128::from(r.entities)),
                &noise.entities,
            )?;
            // Every group draws all its noise, released or not, so the work done does not depend
            // on which groups pass the threshold.
            let sum = match &noise.sum {
                Some(n) => Some(perturb(&mut sampler, row.map_or(0, |r| r.sum_fixed), n)?),
                None => None,
            };
            let count = match &noise.count {
                Some(n) => Some(perturb(
                    &mut sampler,
                    row.map_or(0, |r| i128::from(r.contributions)),
                    n,
                )?),
                None => None,
            };
            if entities < i128::from(threshold) || entities <= 0 {
                suppressed += 1;
            } else {
                let estimate = estimate(metric, widths, (sum, count, entities), scale);
                released.push(ReleasedGroup {
                    labels: key
                        .iter()
                        .zip(domains)
                        .map(|(&k, d)| d[k as usize].clone())
                        .collect(),
                    value: estimate.value,
                    low: estimate.low,
                    high: estimate.high,
                    entities: entities as f64,
                });
            }
            // Next key in row-major order.
            for part in (0..key.len()).rev() {
                key[part] += 1;
                if (key[part] as usize) < domains[part].len() {
                    break;
                }
                key[part] = 0;
            }
        }
        let value_noise = match metric.kind {
            MetricKind::Count => noise.count.as_ref().map_or(0.0, Noise::std_dev),
            MetricKind::Distinct => noise.entities.std_dev(),
            _ => noise.sum.as_ref().map_or(0.0, Noise::std_dev) / scale,
        };
        metrics.push(ReleasedMetric {
            name: metric.name.clone(),
            kind: metric.kind.to_string(),
            key: metric.key.iter().map(Domain::label).collect(),
            groups: released,
            suppressed_groups: suppressed,
            value_noise_std: value_noise,
            entities_noise_std: noise.entities.std_dev(),
        });
    }
    let mechanism: Mechanism = plan.mechanism;
    Ok(ReleasedTable {
        mechanism: mechanism.to_string(),
        threshold,
        confidence: accuracy::LEVEL,
        cost_rho: String::new(),
        remaining_rho: String::new(),
        metrics,
    })
}
