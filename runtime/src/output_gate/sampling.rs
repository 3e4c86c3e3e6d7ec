//! Exact discrete noise: the discrete Laplace and discrete Gaussian samplers of Canonne, Kamath
//! and Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020), Algorithms 1-3.
//!
//! Every step is integer or rational arithmetic on arbitrary-precision integers, fed by uniformly
//! random bytes: there is no floating point anywhere on the path, so none of the floating-point
//! attacks on naive samplers (Mironov, CCS 2012) apply. The samplers never see the value they
//! perturb: their running time depends on the noise scale and the random bits only, never on the
//! secret aggregate.

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Zero};

/// A source of uniformly random bytes.
pub trait RandomBytes {
    /// Fills `dest` with uniformly random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), SamplingError>;
}

/// The system's cryptographically secure generator (ring's `SystemRandom`), read a block at a
/// time: a sample takes a few bytes at a time, dozens of times, and each read of the system's
/// generator is a system call. The bytes are the generator's, in order, each used once; those
/// not used are zeroized with the value.
pub struct SystemRandomBytes {
    system: ring::rand::SystemRandom,
    block: zeroize::Zeroizing<[u8; RANDOM_BLOCK]>,
    /// Bytes of `block` already used.
    used: usize,
}

/// How many bytes [`SystemRandomBytes`] reads from the system at once.
const RANDOM_BLOCK: usize = 512;

impl SystemRandomBytes {
    /// A handle to the operating system's generator.
    pub fn new() -> Self {
        SystemRandomBytes {
            system: ring::rand::SystemRandom::new(),
            block: zeroize::Zeroizing::new([0u8; RANDOM_BLOCK]),
            used: RANDOM_BLOCK,
        }
    }
}

impl Default for SystemRandomBytes {
    fn default() -> Self {
        Self::new()
    }
}

impl RandomBytes for SystemRandomBytes {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), SamplingError> {
        let system = |buf: &mut [u8]| {
            ring::rand::SecureRandom::fill(&self.system, buf)
                .map_err(|_| SamplingError::NoRandomness)
        };
        if dest.len() > RANDOM_BLOCK {
            return system(dest);
        }
        let mut written = 0;
        while written < dest.len() {
            if self.used == RANDOM_BLOCK {
                system(&mut self.block[..])?;
                self.used = 0;
            }
            let n = (dest.len() - written).min(RANDOM_BLOCK - self.used);
            dest[written..written + n].copy_from_slice(&self.block[self.used..self.used + n]);
            // Used bytes are not kept.
            self.block[self.used..self.used + n].fill(0);
            self.used += n;
            written += n;
        }
        Ok(())
    }
}

/// Why a sample could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SamplingError {
    /// The operating system's generator failed.
    #[error("the system random generator failed")]
    NoRandomness,
    /// A parameter was zero or negative where it must be positive.
    #[error("invalid noise parameter: {0}")]
    InvalidParameter(&'static str),
}

/// A positive rational number `num / den`, exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rational {
    /// Numerator.
    pub num: BigUint,
    /// Denominator (non-zero).
    pub den: BigUint,
}

impl Rational {
    /// `num / den`.
    pub fn new(num: impl Into<BigUint>, den: impl Into<BigUint>) -> Rational {
        Rational {
            num: num.into(),
            den: den.into(),
        }
    }

    /// An approximation for display; never used for sampling.
    pub fn to_f64(&self) -> f64 {
        // Each side to its top 60 bits and a power of two, so a ratio above 2^60 stays finite.
        let top = |x: &BigUint| {
            let shift = x.bits().saturating_sub(60);
            let mantissa = (x >> shift).to_u64_digits().first().copied().unwrap_or(0) as f64;
            (mantissa, i32::try_from(shift).unwrap_or(i32::MAX))
        };
        let (n, n_shift) = top(&self.num);
        let (d, d_shift) = top(&self.den);
        if d == 0.0 {
            return f64::INFINITY;
        }
        (n / d) * 2f64.powi(n_shift.saturating_sub(d_shift))
    }
}

/// Exact samplers over a source of random bytes.
pub struct Sampler<R: RandomBytes> {
    rng: R,
}

impl<R: RandomBytes> Sampler<R> {
    /// Samplers drawing from `rng`.
    pub fn new(rng: R) -> Self {
        Sampler { rng }
    }

    /// Uniform in `[0, n)`, by rejection (no modulo bias). `n` must be positive.
    pub fn uniform_below(&mut self, n: &BigUint) -> Result<BigUint, SamplingError> {
        if n.is_zero() {
            return Err(SamplingError::InvalidParameter("uniform range is empty"));
        }
        let bits = n.bits();
        let bytes = bits.div_ceil(8) as usize;
        let excess = (bytes as u64 * 8 - bits) as u32;
        let mut buf = vec![0u8; bytes];
        loop {
            self.rng.fill(&mut buf)?;
            buf[0] &= 0xffu8 >> excess;
            let candidate = BigUint::from_bytes_be(&buf);
            if &candidate < n {
                return Ok(candidate);
            }
        }
    }

    /// Bernoulli(num/den) for `0 <= num <= den`.
    pub fn bernoulli(&mut self, num: &BigUint, den: &BigUint) -> Result<bool, SamplingError> {
        Ok(&self.uniform_below(den)? < num)
    }

    /// Bernoulli(exp(-num/den)) for `0 <= num/den <= 1` (CKS Algorithm 1, first part).
    fn bernoulli_exp_minus_at_most_one(
        &mut self,
        num: &BigUint,
        den: &BigUint,
    ) -> Result<bool, SamplingError> {
        let mut k = BigUint::one();
        loop {
            if self.bernoulli(num, &(den * &k))? {
                k += 1u32;
            } else {
                return Ok(k.bit(0));
            }
        }
    }

    /// Bernoulli(exp(-num/den)) for any `num/den >= 0` (CKS Algorithm 1).
    pub fn bernoulli_exp_minus(
        &mut self,
        num: &BigUint,
        den: &BigUint,
    ) -> Result<bool, SamplingError> {
        if den.is_zero() {
            return Err(SamplingError::InvalidParameter("zero denominator"));
        }
        let one = BigUint::one();
        let mut whole = num / den;
        while !whole.is_zero() {
            if !self.bernoulli_exp_minus_at_most_one(&one, &one)? {
                return Ok(false);
            }
            whole -= 1u32;
        }
        self.bernoulli_exp_minus_at_most_one(&(num % den), den)
    }

    /// Discrete Laplace with scale `t/s`: P(x) proportional to exp(-|x| s / t)
    /// (CKS Algorithm 2). `s` and `t` must be positive.
    pub fn discrete_laplace(&mut self, s: &BigUint, t: &BigUint) -> Result<BigInt, SamplingError> {
        if s.is_zero() || t.is_zero() {
            return Err(SamplingError::InvalidParameter(
                "laplace scale must be positive",
            ));
        }
        let one = BigUint::one();
        let two = BigUint::from(2u32);
        loop {
            let u = self.uniform_below(t)?;
            if !self.bernoulli_exp_minus(&u, t)? {
                continue;
            }
            let mut v = BigUint::zero();
            while self.bernoulli_exp_minus(&one, &one)? {
                v += 1u32;
            }
            let x = u + t * v;
            let y = x / s;
            let negative = self.bernoulli(&one, &two)?;
            if negative && y.is_zero() {
                continue;
            }
            return Ok(BigInt::from_biguint(
                if negative { Sign::Minus } else { Sign::Plus },
                y,
            ));
        }
    }

    /// Discrete Gaussian with variance parameter `sigma2`: P(x) proportional to
    /// exp(-x^2 / (2 sigma2)) (CKS Algorithm 3).
    pub fn discrete_gaussian(&mut self, sigma2: &Rational) -> Result<BigInt, SamplingError> {
        if sigma2.num.is_zero() || sigma2.den.is_zero() {
            return Err(SamplingError::InvalidParameter(
                "gaussian variance must be positive",
            ));
        }
        let (p, q) = (&sigma2.num, &sigma2.den);
        // t = floor(sigma) + 1, and floor(sqrt(p/q)) = isqrt(floor(p/q)).
        let t = (p / q).sqrt() + 1u32;
        let one = BigUint::one();
        // Acceptance exponent (|Y| - sigma2/t)^2 / (2 sigma2) = (|Y| q t - p)^2 / (2 p q t^2).
        let den = BigUint::from(2u32) * p * q * &t * &t;
        loop {
            let y = self.discrete_laplace(&one, &t)?;
            let qt_y = y.magnitude() * q * &t;
            let diff = if qt_y >= *p { qt_y - p } else { p - qt_y };
            if self.bernoulli_exp_minus(&(&diff * &diff), &den)? {
                return Ok(y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes for unit tests (the statistical tests live in tests/).
    struct Counter(u8);

    impl RandomBytes for Counter {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), SamplingError> {
            for b in dest {
                self.0 = self.0.wrapping_mul(97).wrapping_add(13);
                *b = self.0;
            }
            Ok(())
        }
    }

    #[test]
    fn the_system_generator_never_hands_out_a_byte_twice() {
        let mut rng = SystemRandomBytes::new();
        // Reads that straddle the block's end, and one longer than a block.
        let mut seen = Vec::new();
        for len in [7usize, 100, 300, 200, 1000, 33] {
            let mut buf = vec![0u8; len];
            rng.fill(&mut buf).expect("random");
            seen.push(buf);
        }
        let all: Vec<u8> = seen.concat();
        // 1,640 bytes: any 16-byte window repeated means bytes were handed out twice.
        let windows: std::collections::HashSet<&[u8]> = all.windows(16).collect();
        assert_eq!(windows.len(), all.len() - 15);
        assert!(
            rng.block[..rng.used].iter().all(|&b| b == 0),
            "used bytes are cleared"
        );
    }

    #[test]
    fn uniform_stays_in_range_and_rejects_empty_ranges() {
        let mut s = Sampler::new(Counter(1));
        for n in [1u32, 2, 3, 7, 255, 256, 257, 1000] {
            for _ in 0..50 {
                assert!(s.uniform_below(&BigUint::from(n)).expect("sample") < BigUint::from(n));
            }
        }
        assert!(s.uniform_below(&BigUint::zero()).is_err());
        assert!(
            s.discrete_laplace(&BigUint::zero(), &BigUint::one())
                .is_err()
        );
        assert!(s.discrete_gaussian(&Rational::new(0u32, 1u32)).is_err());
    }

    #[test]
    fn rational_display_value() {
        assert_eq!(Rational::new(1u32, 4u32).to_f64(), 0.25);
        let big = Rational::new(BigUint::from(3u32) << 200, BigUint::from(2u32) << 200);
        assert!((big.to_f64() - 1.5).abs() < 1e-12);
        // A ratio above 2^60 stays finite: the denominator must not shift down to zero.
        let huge = Rational::new(BigUint::from(3u32) << 200u32, BigUint::from(1u32));
        let expected = 3.0 * 2f64.powi(200);
        assert!(((huge.to_f64() - expected) / expected).abs() < 1e-12);
        let tiny = Rational::new(BigUint::from(1u32), BigUint::from(1u32) << 100u32);
        assert!((tiny.to_f64() - 2f64.powi(-100)).abs() < 1e-40);
    }
}
