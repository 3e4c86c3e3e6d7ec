//! What the room would release from an aggregate, before any budget is spent: the real release
//! (the same plan, threshold, samplers and post-processing) applied to a partner's own sample
//! many times, summarized per group as the error to expect, the range the released value falls
//! in 95% of the time, and the chance the group is suppressed.
//!
//! For a partner's plaintext only (`strongroom dev run --policy`): the exact values it compares
//! against are the partner's own.

use std::collections::HashMap;

use super::aggregate::Aggregate;
use super::mechanism::NoisePlan;
use super::release::{ReleaseError, release};
use super::sampling::RandomBytes;
use strongroom_contract::manifest::{Domain, Manifest, MetricKind};

/// One group's forecast.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GroupForecast {
    /// Labels, one per key part.
    pub labels: Vec<String>,
    /// The exact value on the sample (`None` for a mean of a group with no contribution).
    pub exact: Option<f64>,
    /// Mean absolute difference between the released and the exact value, over the trials that
    /// released the group (`None` when none did).
    pub expected_error: Option<f64>,
    /// The 2.5th and 97.5th percentiles of the released values: where 95% of releases fall.
    pub range_95: Option<[f64; 2]>,
    /// Fraction of the trials that suppressed the group.
    pub suppressed: f64,
}

/// One metric's forecast.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MetricForecast {
    /// Metric name.
    pub name: String,
    /// sum, count or mean.
    pub kind: String,
    /// Column headers of the key parts.
    pub key: Vec<String>,
    /// Every group of the metric's domains, in key order.
    pub groups: Vec<GroupForecast>,
}

/// Releases `aggregate` `trials` times through the real gate (`plan`, `threshold`, randomness
/// from `rng`) and summarizes each group.
pub fn forecast<R: RandomBytes>(
    manifest: &Manifest,
    aggregate: &Aggregate,
    labels: &[Vec<Vec<String>>],
    plan: &NoisePlan,
    threshold: u64,
    trials: u32,
    mut rng: R,
) -> Result<Vec<MetricForecast>, ReleaseError> {
    let trials = trials.max(1);
    // Per metric, per group (by labels): the values released over the trials.
    let mut released: Vec<HashMap<Vec<String>, Vec<f64>>> =
        vec![HashMap::new(); manifest.metrics.len()];
    for _ in 0..trials {
        let table = release(
            manifest,
            aggregate,
            labels,
            plan,
            threshold,
            Forward(&mut rng),
        )?;
        for (m, metric) in table.metrics.into_iter().enumerate() {
            for group in metric.groups {
                released[m]
                    .entry(group.labels)
                    .or_default()
                    .push(group.value);
            }
        }
    }
    let forecasts = manifest
        .metrics
        .iter()
        .enumerate()
        .map(|(m, metric)| {
            let scale = 10f64.powi(i32::from(metric.decimals));
            let exact: HashMap<Vec<String>, f64> = aggregate.metrics[m]
                .rows
                .iter()
                .filter_map(|row| {
                    let value = match metric.kind {
                        MetricKind::Sum => row.sum_fixed as f64 / scale,
                        MetricKind::Count => row.contributions as f64,
                        MetricKind::Distinct => row.entities as f64,
                        MetricKind::Mean if row.contributions > 0 => {
                            row.sum_fixed as f64 / scale / row.contributions as f64
                        }
                        MetricKind::Mean => return None,
                    };
                    let key = row
                        .key
                        .iter()
                        .zip(&labels[m])
                        .map(|(&k, domain)| domain[k as usize].clone())
                        .collect();
                    Some((key, value))
                })
                .collect();
            let groups = every_key(&labels[m])
                .into_iter()
                .map(|key| {
                    let exact = exact.get(&key).copied().or(match metric.kind {
                        MetricKind::Mean => None,
                        _ => Some(0.0),
                    });
                    let mut values = released[m].remove(&key).unwrap_or_default();
                    values.sort_by(f64::total_cmp);
                    let expected_error = match (exact, values.is_empty()) {
                        (Some(x), false) => Some(
                            values.iter().map(|v| (v - x).abs()).sum::<f64>() / values.len() as f64,
                        ),
                        _ => None,
                    };
                    let range_95 = (!values.is_empty())
                        .then(|| [quantile(&values, 0.025), quantile(&values, 0.975)]);
                    GroupForecast {
                        suppressed: 1.0 - values.len() as f64 / f64::from(trials),
                        labels: key,
                        exact,
                        expected_error,
                        range_95,
                    }
                })
                .collect();
            MetricForecast {
                name: metric.name.clone(),
                kind: metric.kind.to_string(),
                key: metric.key.iter().map(Domain::label).collect(),
                groups,
            }
        })
        .collect();
    Ok(forecasts)
}

/// Every key of the domains `labels`, in row-major order (as the release walks them).
fn every_key(labels: &[Vec<String>]) -> Vec<Vec<String>> {
    labels.iter().fold(vec![Vec::new()], |keys, domain| {
        keys.into_iter()
            .flat_map(|key| {
                domain.iter().map(move |member| {
                    let mut next = key.clone();
                    next.push(member.clone());
                    next
                })
            })
            .collect()
    })
}

/// The `p` quantile of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Lends a generator to one release at a time.
struct Forward<'a, R>(&'a mut R);

impl<R: RandomBytes> RandomBytes for Forward<'_, R> {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), super::sampling::SamplingError> {
        self.0.fill(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_walked_in_row_major_order_and_quantiles_by_nearest_rank() {
        let labels = vec![
            vec!["a".to_string(), "b".to_string()],
            vec!["x".to_string(), "y".to_string(), "z".to_string()],
        ];
        let keys = every_key(&labels);
        assert_eq!(keys.len(), 6);
        assert_eq!(keys[0], ["a", "x"]);
        assert_eq!(keys[2], ["a", "z"]);
        assert_eq!(keys[3], ["b", "x"]);
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.025), 5.0);
        assert_eq!(quantile(&values, 0.975), 195.0);
        assert_eq!(quantile(&[3.0], 0.975), 3.0);
    }
}
