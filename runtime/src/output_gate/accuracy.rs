//! What the noise means for a released number: an interval that holds the exact value with a
//! stated probability, worked out from the known noise distributions, and the post-processing
//! that keeps a released value where the exact one can be (a count at zero or more, a mean
//! inside its bounds). Post-processing uses nothing but the released numbers and public bounds,
//! so it costs no privacy.
//!
//! - A sum or a count released as `v = x + Z` (Z the noise, symmetric about 0): with `h` the
//!   smallest integer such that `P(|Z| <= h) >= level`, the exact `x` lies in `[v - h, v + h]`
//!   with probability at least `level`, whatever `x` is.
//! - A mean released from a noisy sum `S'` and a noisy count `C'`: each gets its half-width at
//!   `(1 + level) / 2`, so both hold together with probability at least `level` (union bound);
//!   when they do, the exact mean is a ratio `s / c` with `s` and `c` in those ranges, and the
//!   interval is the range of that ratio, intersected with the metric's bounds (the whole bounds
//!   when the count's range reaches below one contribution).
//!
//! Thresholding does not change this: the entity count that decides suppression gets noise of
//! its own, independent of the value's.

use super::mechanism::Noise;
use super::sampling::Rational;

/// The confidence level of the intervals the room releases.
pub const LEVEL: f64 = 0.95;

/// Below this standard deviation a discrete Gaussian's tail is summed term by term; above it the
/// continuous normal's tail is used, which differs from the discrete one by far less than one
/// unit at any half-width a release would show.
const SUMMED_SIGMA: f64 = 1_000.0;

/// The smallest integer `h >= 0` with `P(|noise| <= h) >= level`, in the quantity's own
/// (fixed-point) units.
pub fn half_width(noise: &Noise, level: f64) -> f64 {
    let miss = (1.0 - level).clamp(f64::MIN_POSITIVE, 1.0);
    match noise {
        Noise::Exact => 0.0,
        // P(X = k) = (1 - r) / (1 + r) r^|k| with r = exp(-1/b), so
        // P(|X| > k) = 2 r^(k + 1) / (1 + r): the smallest k with that at most `miss`.
        Noise::Laplace { s, t } => {
            let b = Rational::new(t.clone(), s.clone()).to_f64();
            if b <= 0.0 {
                return 0.0;
            }
            let r = (-1.0 / b).exp();
            let k = (-b * (miss * (1.0 + r) / 2.0).ln()).ceil() - 1.0;
            // Guard the rounding of the closed form: step to the exact smallest k.
            let tail = |k: f64| 2.0 * (-(k + 1.0) / b).exp() / (1.0 + r);
            let mut k = k.max(0.0);
            while k > 0.0 && tail(k - 1.0) <= miss {
                k -= 1.0;
            }
            while tail(k) > miss {
                k += 1.0;
            }
            k
        }
        Noise::Gaussian { sigma2 } => {
            let sigma2 = sigma2.to_f64();
            let sigma = sigma2.sqrt();
            if sigma == 0.0 {
                0.0
            } else if sigma <= SUMMED_SIGMA {
                discrete_gaussian_half_width(sigma2, miss)
            } else {
                (normal_quantile(1.0 - miss / 2.0) * sigma).ceil()
            }
        }
    }
}

/// `half_width` for a discrete Gaussian of variance parameter `sigma2`, summing its mass.
fn discrete_gaussian_half_width(sigma2: f64, miss: f64) -> f64 {
    let weight = |k: f64| (-k * k / (2.0 * sigma2)).exp();
    // Mass out to 40 sigma: what lies beyond is below f64's resolution.
    let reach = (40.0 * sigma2.sqrt()).ceil() as u64 + 1;
    let total: f64 = 1.0 + 2.0 * (1..=reach).map(|k| weight(k as f64)).sum::<f64>();
    let mut inside = 1.0;
    let mut k = 0u64;
    while (total - inside) / total > miss {
        k += 1;
        inside += 2.0 * weight(k as f64);
    }
    k as f64
}

/// The standard normal's quantile at `p` (0 < p < 1), by bisection on `erfc`.
fn normal_quantile(p: f64) -> f64 {
    let upper_tail = |z: f64| 0.5 * libm::erfc(z / std::f64::consts::SQRT_2);
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if 1.0 - upper_tail(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// A released number after post-processing, with its interval, in the value's units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The released value.
    pub value: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

/// The level each of a mean's two intervals (its sum's and its count's) is taken at, so that both
/// hold together with probability at least `level`.
pub fn mean_part_level(level: f64) -> f64 {
    (1.0 + level) / 2.0
}

/// A noisy count (of entities or of contributions) whose noise has half-width `h` at the level
/// wanted ([`half_width`], worked out once per metric): at zero or more.
pub fn count(noisy: i128, h: f64) -> Estimate {
    let v = noisy as f64;
    Estimate {
        value: v.max(0.0),
        low: (v - h).max(0.0),
        high: (v + h).max(0.0),
    }
}

/// What a metric's values are: fixed point at `scale` (10^decimals), each in `[lower, upper]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Values {
    /// 10^decimals.
    pub scale: f64,
    /// Each value's lower bound.
    pub lower: f64,
    /// Each value's upper bound.
    pub upper: f64,
}

/// A noisy fixed-point sum of `values` whose noise has half-width `h` (fixed-point units) at the
/// level wanted: at zero or more when no value can be negative, at zero or less when none can be
/// positive.
pub fn sum(noisy: i128, h: f64, values: Values) -> Estimate {
    let h = h / values.scale;
    let v = noisy as f64 / values.scale;
    let floor = if values.lower >= 0.0 {
        0.0
    } else {
        f64::NEG_INFINITY
    };
    let ceiling = if values.upper <= 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    let fit = |x: f64| x.clamp(floor, ceiling);
    Estimate {
        value: fit(v),
        low: fit(v - h),
        high: fit(v + h),
    }
}

/// A mean of `values` released as a noisy fixed-point sum over a noisy contribution count, each
/// with its noise's half-width at [`mean_part_level`] (the sum's in fixed-point units): inside
/// the bounds, with the interval of the module doc.
pub fn mean(
    (noisy_sum, sum_h): (i128, f64),
    (noisy_count, count_h): (i128, f64),
    values: Values,
) -> Estimate {
    let Values {
        scale,
        lower,
        upper,
    } = values;
    let a = sum_h / scale;
    let b = count_h;
    let s = noisy_sum as f64 / scale;
    let c = noisy_count as f64;
    let value = (s / c.max(1.0)).clamp(lower, upper);
    if c - b < 1.0 {
        return Estimate {
            value,
            low: lower,
            high: upper,
        };
    }
    let corners = [
        (s - a) / (c - b),
        (s - a) / (c + b),
        (s + a) / (c - b),
        (s + a) / (c + b),
    ];
    let low = corners.iter().copied().fold(f64::INFINITY, f64::min);
    let high = corners.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Estimate {
        value,
        low: low.clamp(lower, upper),
        high: high.clamp(lower, upper),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output_gate::mechanism::{Mechanism, noise};
    use crate::output_gate::sampling::{Sampler, SystemRandomBytes};
    use num_traits::ToPrimitive;

    #[test]
    fn the_normal_quantile_matches_published_values() {
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-9);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.995) - 2.575_829_303_548_901).abs() < 1e-9);
    }

    #[test]
    fn half_widths_are_the_exact_quantiles_of_the_discrete_distributions() {
        // Discrete Laplace with b = 1: P(|X| > k) = 2 e^-(k+1) / (1 + e^-1).
        let laplace = noise(Mechanism::Laplace, 1_000_000_000, 1, 1, 1);
        let h = half_width(&laplace, 0.95);
        let r = (-1.0f64).exp();
        let tail = |k: f64| 2.0 * (-(k + 1.0)).exp() / (1.0 + r);
        assert!(tail(h) <= 0.05 && tail(h - 1.0) > 0.05, "h = {h}");
        // A discrete Gaussian with a small sigma, and one past the summed range, both within one
        // unit of the continuous normal's 1.96 sigma.
        for cost in [500_000_000u64, 1] {
            let gaussian = noise(Mechanism::Gaussian, cost, 1, 1, 1);
            let Noise::Gaussian { sigma2 } = &gaussian else {
                unreachable!()
            };
            let sigma = sigma2.to_f64().sqrt();
            let h = half_width(&gaussian, 0.95);
            assert!(
                (h - 1.96 * sigma).abs() <= 1.0 + 1e-6 * sigma,
                "{h} {sigma}"
            );
        }
        assert_eq!(half_width(&Noise::Exact, 0.95), 0.0);
    }

    /// Draws from the room's own samplers fall inside the half-width at the stated rate.
    #[test]
    fn intervals_cover_the_exact_value_at_the_stated_rate() {
        let mut sampler = Sampler::new(SystemRandomBytes::new());
        for noise in [
            noise(Mechanism::Gaussian, 100_000_000, 3, 2, 30),
            noise(Mechanism::Laplace, 300_000_000, 3, 2, 30),
        ] {
            let h = half_width(&noise, LEVEL);
            let draws = 10_000;
            let inside = (0..draws)
                .filter(|_| {
                    let z = match &noise {
                        Noise::Gaussian { sigma2 } => sampler.discrete_gaussian(sigma2),
                        Noise::Laplace { s, t } => sampler.discrete_laplace(s, t),
                        Noise::Exact => unreachable!(),
                    }
                    .expect("draw");
                    z.to_f64().expect("finite").abs() <= h
                })
                .count();
            let rate = inside as f64 / f64::from(draws);
            // 95% of 10,000 draws: a standard error of 0.22 points.
            assert!((0.94..=0.965).contains(&rate), "{rate} with h = {h}");
        }
    }

    #[test]
    fn post_processing_keeps_values_where_exact_ones_can_be() {
        let n = noise(Mechanism::Gaussian, 100_000_000, 1, 1, 1);
        let h = half_width(&n, LEVEL);
        let each = half_width(&n, mean_part_level(LEVEL));
        let c = count(-3, h);
        assert_eq!(c.value, 0.0);
        assert!(c.low == 0.0 && c.high > 0.0);
        let values = Values {
            scale: 100.0,
            lower: 0.0,
            upper: 300.0,
        };
        let s = sum(-250, h, values);
        assert_eq!(s.value, 0.0);
        let m = mean((90_000, each), (2, each), values);
        assert_eq!(m.value, 300.0, "450 per contribution is past the bound");
        // A count whose range reaches below one: the whole bounds.
        assert_eq!((m.low, m.high), (0.0, 300.0));
        let tight = mean((1_000_000, 0.0), (10_000, 0.0), values);
        assert_eq!((tight.value, tight.low, tight.high), (1.0, 1.0, 1.0));
    }
}

/// What a job's plan says of one metric's released numbers before it runs: the value's noise
/// standard deviation and its 95% half-width, in the value's units. A mean's noise depends on
/// its group's count: its half-width is given for 1,000 contributions at the middle of its
/// bounds, and it has no single standard deviation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expected {
    /// The value's noise standard deviation (`None` for a mean).
    pub value_std: Option<f64>,
    /// Half the 95% interval of the value.
    pub value_half_width: f64,
    /// Half the 95% interval of the group's noisy count of customers.
    pub entities_half_width: f64,
}

/// [`Expected`] for `metric` under its part of a noise plan.
pub fn expected(
    metric: &strongroom_contract::manifest::Metric,
    noise: &super::mechanism::MetricNoise,
) -> Expected {
    use strongroom_contract::manifest::MetricKind;
    let scale = 10f64.powi(i32::from(metric.decimals));
    let exact = Noise::Exact;
    let sum = noise.sum.as_ref().unwrap_or(&exact);
    let count = noise.count.as_ref().unwrap_or(&exact);
    let (value_std, value_half_width) = match metric.kind {
        MetricKind::Sum => (Some(sum.std_dev() / scale), half_width(sum, LEVEL) / scale),
        MetricKind::Count => (Some(count.std_dev()), half_width(count, LEVEL)),
        MetricKind::Distinct => (
            Some(noise.entities.std_dev()),
            half_width(&noise.entities, LEVEL),
        ),
        MetricKind::Mean => {
            let values = Values {
                scale,
                lower: metric.lower,
                upper: metric.upper,
            };
            let mid = (metric.lower + metric.upper) / 2.0;
            let each = mean_part_level(LEVEL);
            let e = mean(
                (
                    (mid * 1_000.0 * scale).round() as i128,
                    half_width(sum, each),
                ),
                (1_000, half_width(count, each)),
                values,
            );
            (None, (e.high - e.low) / 2.0)
        }
    };
    Expected {
        value_std,
        value_half_width,
        entities_half_width: half_width(&noise.entities, LEVEL),
    }
}
