//! The exact samplers against their exact distributions: chi-square goodness of fit over many
//! samples, at tiny, ordinary and huge scales. Randomness is a seeded ChaCha20 stream so a failure
//! reproduces; the critical values are at p = 1e-6, so a correct sampler essentially never fails.

use num_bigint::BigUint;
use num_traits::ToPrimitive;
use strongroom::output_gate::sampling::{Rational, Sampler};
use strongroom_tests::SeededBytes;

fn sampler(seed: u64) -> Sampler<SeededBytes> {
    Sampler::new(SeededBytes::new(seed))
}

/// Upper critical value of chi-square with `k` degrees of freedom at p = 1e-6 (Wilson-Hilferty).
fn critical(k: usize) -> f64 {
    let k = k as f64;
    let z = 4.753_424;
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// Chi-square of `samples` against a pmf given on `support`, merging outcomes into bins holding
/// at least 20 expected samples; everything outside the support goes into a tail bin.
fn chi_square(
    samples: &[i64],
    support: std::ops::RangeInclusive<i64>,
    pmf: impl Fn(i64) -> f64,
) -> (f64, usize) {
    let n = samples.len() as f64;
    let total: f64 = support.clone().map(&pmf).sum();
    let mut bins: Vec<(i64, i64, f64)> = Vec::new();
    let (mut start, mut mass) = (*support.start(), 0.0);
    for x in support.clone() {
        mass += pmf(x) / total;
        if mass * n >= 20.0 {
            bins.push((start, x, mass));
            start = x + 1;
            mass = 0.0;
        }
    }
    if let Some(last) = bins.last_mut() {
        last.1 = *support.end();
        last.2 += mass;
    }
    let mut observed = vec![0f64; bins.len()];
    let mut outside = 0f64;
    for &s in samples {
        match bins.iter().position(|&(a, b, _)| a <= s && s <= b) {
            Some(i) => observed[i] += 1.0,
            None => outside += 1.0,
        }
    }
    assert!(
        outside <= n * 1e-4,
        "{outside} samples fell outside the support"
    );
    let stat = bins
        .iter()
        .zip(&observed)
        .map(|(&(_, _, p), &o)| (o - p * n).powi(2) / (p * n))
        .sum();
    (stat, bins.len().saturating_sub(1).max(1))
}

fn gaussian_samples(num: u64, den: u64, n: usize, seed: u64) -> Vec<i64> {
    let mut s = sampler(seed);
    let sigma2 = Rational::new(num, den);
    (0..n)
        .map(|_| {
            s.discrete_gaussian(&sigma2)
                .expect("sample")
                .to_i64()
                .expect("fits")
        })
        .collect()
}

fn laplace_samples(s_: u64, t: u64, n: usize, seed: u64) -> Vec<i64> {
    let mut s = sampler(seed);
    (0..n)
        .map(|_| {
            s.discrete_laplace(&BigUint::from(s_), &BigUint::from(t))
                .expect("sample")
                .to_i64()
                .expect("fits")
        })
        .collect()
}

fn check_gaussian(num: u64, den: u64, n: usize, seed: u64) {
    let sigma2 = num as f64 / den as f64;
    let samples = gaussian_samples(num, den, n, seed);
    let reach = (12.0 * sigma2.sqrt()).ceil() as i64 + 2;
    let (stat, k) = chi_square(&samples, -reach..=reach, |x| {
        (-(x as f64).powi(2) / (2.0 * sigma2)).exp()
    });
    assert!(
        stat < critical(k),
        "discrete Gaussian sigma2={num}/{den}: chi-square {stat:.1} over {k} dof exceeds {:.1}",
        critical(k)
    );
}

fn check_laplace(s: u64, t: u64, n: usize, seed: u64) {
    let b = t as f64 / s as f64;
    let samples = laplace_samples(s, t, n, seed);
    let reach = (30.0 * b).ceil() as i64 + 2;
    let (stat, k) = chi_square(&samples, -reach..=reach, |x| (-(x.abs() as f64) / b).exp());
    assert!(
        stat < critical(k),
        "discrete Laplace scale {t}/{s}: chi-square {stat:.1} over {k} dof exceeds {:.1}",
        critical(k)
    );
}

#[test]
fn discrete_gaussian_fits_its_pmf_at_tiny_scale() {
    // sigma^2 = 1/100: almost all mass at 0, a little at +-1.
    check_gaussian(1, 100, 20_000, 1);
    let samples = gaussian_samples(1, 100, 20_000, 2);
    assert!(samples.iter().all(|&x| x.abs() <= 1));
}

#[test]
fn discrete_gaussian_fits_its_pmf_at_small_and_medium_scales() {
    check_gaussian(1, 3, 20_000, 3);
    check_gaussian(5, 2, 20_000, 4);
    check_gaussian(100, 1, 20_000, 5);
}

#[test]
fn discrete_gaussian_fits_its_pmf_at_large_scale() {
    check_gaussian(100_000_000, 1, 20_000, 6);
}

#[test]
fn discrete_gaussian_at_huge_scale_has_the_right_spread() {
    // sigma^2 = 10^20 (sigma = 10^10): mean near 0 and variance near sigma^2.
    let mut s = sampler(8);
    let sigma2 = Rational::new(BigUint::from(10u32).pow(20), 1u32);
    let n = 4_000;
    let xs: Vec<f64> = (0..n)
        .map(|_| {
            s.discrete_gaussian(&sigma2)
                .expect("sample")
                .to_f64()
                .expect("fits")
        })
        .collect();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    // Standard error of the mean is 1e10/sqrt(4000) = 1.6e8; of the variance about 2.2%.
    assert!(mean.abs() < 6.0 * 1.6e8, "mean {mean:e}");
    assert!(
        (var / 1e20 - 1.0).abs() < 0.12,
        "variance ratio {}",
        var / 1e20
    );
}

#[test]
fn discrete_laplace_fits_its_pmf_at_several_scales() {
    check_laplace(3, 1, 20_000, 9); // scale 1/3
    check_laplace(1, 1, 20_000, 10); // scale 1
    check_laplace(2, 5, 20_000, 11); // scale 2.5
    check_laplace(1, 100, 20_000, 12); // scale 100
    check_laplace(1, 10_000, 20_000, 13); // scale 10^4
}

#[test]
fn a_wrong_distribution_is_caught() {
    // The test must be able to fail: Laplace samples checked against a Gaussian of equal variance.
    let samples = laplace_samples(1, 10, 20_000, 14);
    let sigma2 = 200.0;
    let (stat, k) = chi_square(&samples, -400..=400, |x| {
        (-(x as f64).powi(2) / (2.0 * sigma2)).exp()
    });
    assert!(
        stat > critical(k),
        "chi-square {stat:.1} did not catch the wrong distribution"
    );
}

#[test]
fn no_floating_point_on_the_sampling_path() {
    // The sampler's source may mention f64 only in its display helper and its tests.
    let source = include_str!("../runtime/src/output_gate/sampling.rs");
    let code = source.split("#[cfg(test)]").next().expect("source");
    for (i, line) in code.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("");
        if line.contains("f64") || line.contains("f32") {
            assert!(
                in_display_helper(code, i),
                "floating point on the sampling path, line {}: {line}",
                i + 1
            );
        }
    }
}

/// True when line `i` lies inside `Rational::to_f64`, the display-only helper.
fn in_display_helper(code: &str, i: usize) -> bool {
    let start = code
        .lines()
        .position(|l| l.contains("fn to_f64"))
        .expect("helper exists");
    let end = start
        + code
            .lines()
            .skip(start)
            .position(|l| l == "    }")
            .expect("helper ends");
    (start..=end).contains(&i)
}
