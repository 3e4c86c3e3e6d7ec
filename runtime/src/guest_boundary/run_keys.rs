//! Independent keys for one run, derived from its recorded seed with HKDF-SHA256 (RFC 5869).
//!
//! A run has one seed (recorded for the bank so a run can be replayed). Everything random in a
//! run takes its own key from it under its own label, so nothing a guest can read (its random
//! stream) reveals another use's key (the shuffle of entity ordinals in table mode). Using the
//! seed directly for both let a module replay the shuffle and rank every row's customer.

use ring::hkdf;

/// The keys of one run.
#[derive(Clone, PartialEq, Eq)]
pub struct RunKeys {
    /// Seeds the shuffle of entity ordinals a table-mode guest sees.
    pub ordinals: [u8; 32],
    /// Seeds the guest's WASI randomness (secure and insecure streams).
    pub guest_random: [u8; 32],
    /// The guest's WASI `insecure-seed` value.
    pub guest_insecure_seed: u128,
}

impl std::fmt::Debug for RunKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunKeys(..)")
    }
}

const SALT: &[u8] = b"strongroom run keys v1";

fn expand(prk: &hkdf::Prk, label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // HKDF-SHA256 can expand up to 255 * 32 bytes; 32 always fits, so neither call fails.
    if let Ok(okm) = prk.expand(&[label], hkdf::HKDF_SHA256) {
        let _ = okm.fill(&mut out);
    }
    out
}

impl RunKeys {
    /// The keys derived from a run's seed.
    pub fn derive(seed: &[u8; 32]) -> RunKeys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(seed);
        let insecure = expand(&prk, b"guest insecure seed");
        let mut low = [0u8; 16];
        low.copy_from_slice(&insecure[..16]);
        RunKeys {
            ordinals: expand(&prk, b"entity ordinals"),
            guest_random: expand(&prk, b"guest random"),
            guest_insecure_seed: u128::from_le_bytes(low),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_deterministic() {
        let a = RunKeys::derive(&[7; 32]);
        assert_eq!(a, RunKeys::derive(&[7; 32]));
        assert_ne!(a.ordinals, a.guest_random);
        assert_ne!(a.ordinals, [7; 32]);
        assert_ne!(a.guest_random, [7; 32]);
        assert_ne!(a, RunKeys::derive(&[8; 32]));
        assert_ne!(
            &a.guest_insecure_seed.to_le_bytes()[..],
            &a.guest_random[..16]
        );
    }

    #[test]
    fn matches_rfc5869_construction() {
        // HKDF-SHA256 with the RFC 5869 test case 1 inputs, through the same ring calls: checks
        // the library is used as the RFC defines (extract with salt, expand with info).
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&ikm);
        struct Len42;
        impl hkdf::KeyType for Len42 {
            fn len(&self) -> usize {
                42
            }
        }
        let mut okm = [0u8; 42];
        prk.expand(&[&info], Len42)
            .expect("expand")
            .fill(&mut okm)
            .expect("fill");
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }
}
