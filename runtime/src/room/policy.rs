//! A bank's policy for one partner on one dataset (TOML, unknown fields rejected): the privacy
//! budget and mechanism, the release threshold and mode, which execution modes are allowed, and
//! caps on what a module may declare.

use serde::Deserialize;

use crate::guest_boundary::manifest::Mode;
use crate::output_gate::mechanism::{Mechanism, parse_nano};

/// When results leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseMode {
    /// As soon as the gate has produced them.
    Automatic,
    /// Only after a person at the bank releases them.
    Held,
}

/// A number given either as a TOML string (exact) or a float.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Decimal {
    Text(String),
    Float(f64),
    Int(u64),
}

impl Decimal {
    fn nano(&self) -> Result<u64, String> {
        match self {
            Decimal::Text(s) => parse_nano(s),
            Decimal::Float(f) => parse_nano(&format!("{f}")),
            Decimal::Int(i) => parse_nano(&i.to_string()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    partner: String,
    dataset: String,
    budget_rho: Decimal,
    #[serde(default = "default_mechanism")]
    mechanism: Mechanism,
    #[serde(default = "default_min_group_size")]
    min_group_size: u64,
    #[serde(default = "default_release")]
    release: ReleaseMode,
    #[serde(default = "default_modes")]
    modes: Vec<Mode>,
    #[serde(default = "default_max_groups")]
    max_groups_per_entity: u32,
    #[serde(default = "default_delta")]
    delta: f64,
    #[serde(default)]
    approval_required_for_isolated: bool,
    #[serde(default)]
    audience: Option<AudienceLimits>,
    #[serde(default)]
    expires: Option<String>,
}

/// Whether, and with how large a list, the partner may match its audience against the bank's
/// customers (`[audience]` in the policy). Absent: matching is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceLimits {
    /// Fewest members a list may have: a list of a handful of people is a lookup, not an
    /// audience.
    pub min_size: u64,
    /// Most members a list may have: a list of every possible phone number is a dictionary
    /// attack on the bank's customer base.
    pub max_size: u64,
}

fn default_mechanism() -> Mechanism {
    Mechanism::Gaussian
}
fn default_min_group_size() -> u64 {
    50
}
fn default_release() -> ReleaseMode {
    ReleaseMode::Automatic
}
fn default_modes() -> Vec<Mode> {
    vec![Mode::Isolated]
}
fn default_max_groups() -> u32 {
    32
}
fn default_delta() -> f64 {
    1e-6
}

/// A checked policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Partner it applies to.
    pub partner: String,
    /// Dataset it applies to.
    pub dataset: String,
    /// Total budget, nano-rho.
    pub budget_nano_rho: u64,
    /// Noise mechanism.
    pub mechanism: Mechanism,
    /// Minimum distinct entities for a group to be released (default 50).
    pub min_group_size: u64,
    /// Automatic or held release.
    pub release: ReleaseMode,
    /// Modes a module may run in.
    pub modes: Vec<Mode>,
    /// Cap on a manifest's `max_groups_per_entity`.
    pub max_groups_per_entity: u32,
    /// delta used to show the budget as (epsilon, delta).
    pub delta: f64,
    /// Whether isolated-mode modules also need the bank's approval (table mode always does).
    pub approval_required_for_isolated: bool,
    /// Audience matching limits; `None` when matching is not allowed.
    pub audience: Option<AudienceLimits>,
    /// When the grant ends (RFC 3339); jobs after it are refused before any charge.
    pub expires: Option<time::OffsetDateTime>,
    /// The policy text as the bank wrote it.
    pub text: String,
    /// SHA-256 of the text, hex: the policy's identity in receipts.
    pub sha256: String,
}

impl Policy {
    /// Parses and checks a policy.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let budget = file
            .budget_rho
            .nano()
            .map_err(|e| format!("budget_rho: {e}"))?;
        if file.partner.trim().is_empty() || file.dataset.trim().is_empty() {
            return Err("partner and dataset must not be empty".into());
        }
        if file.modes.is_empty() {
            return Err("modes must allow at least one mode".into());
        }
        if file.max_groups_per_entity == 0 {
            return Err("max_groups_per_entity must be at least 1".into());
        }
        if !(file.delta > 0.0 && file.delta < 1.0) {
            return Err("delta must be between 0 and 1".into());
        }
        if let Some(a) = &file.audience
            && (a.min_size == 0 || a.min_size > a.max_size)
        {
            return Err("audience: min_size must be at least 1 and at most max_size".into());
        }
        let expires = match &file.expires {
            None => None,
            Some(t) => Some(
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        format!("expires: '{t}' is not an RFC 3339 time such as 2027-06-30T00:00:00Z ({e})")
                    })?,
            ),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        Ok(Policy {
            partner: file.partner,
            dataset: file.dataset,
            budget_nano_rho: budget,
            mechanism: file.mechanism,
            min_group_size: file.min_group_size,
            release: file.release,
            modes: file.modes,
            max_groups_per_entity: file.max_groups_per_entity,
            delta: file.delta,
            approval_required_for_isolated: file.approval_required_for_isolated,
            audience: file.audience,
            expires,
            text: text.to_string(),
            sha256: hex::encode(digest.as_ref()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let p = Policy::parse("partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"0.5\"\n")
            .expect("valid");
        assert_eq!(p.budget_nano_rho, 500_000_000);
        assert_eq!(p.min_group_size, 50);
        assert_eq!(p.mechanism, Mechanism::Gaussian);
        assert_eq!(p.modes, vec![Mode::Isolated]);
        assert_eq!(
            Policy::parse("partner = \"a\"\ndataset = \"b\"\nbudget_rho = 0.25\n")
                .expect("float")
                .budget_nano_rho,
            250_000_000
        );
        assert!(
            Policy::parse("partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1\nsurprise = 1\n")
                .is_err()
        );
        assert!(Policy::parse("partner = \"a\"\ndataset = \"b\"\nbudget_rho = \"-1\"\n").is_err());
        assert!(
            Policy::parse("partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1\nmodes = []\n")
                .is_err()
        );
        assert_eq!(
            p.audience, None,
            "matching is off unless the bank turns it on"
        );
        assert_eq!(p.expires, None);
        let dated = Policy::parse(
            "partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1\nexpires = \"2027-06-30T00:00:00Z\"\n",
        )
        .expect("expiry");
        assert_eq!(dated.expires.map(|t| t.year()), Some(2027));
        let bad =
            Policy::parse("partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1\nexpires = \"June\"\n");
        assert!(bad.expect_err("refused").contains("RFC 3339"));
        let with = "partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1\n[audience]\nmin_size = 100\nmax_size = 1000\n";
        assert_eq!(
            Policy::parse(with).expect("audience").audience,
            Some(AudienceLimits {
                min_size: 100,
                max_size: 1000
            })
        );
        assert!(Policy::parse(&with.replace("100\n", "5000\n")).is_err());
        assert!(Policy::parse(&with.replace("max_size", "most")).is_err());
    }
}
