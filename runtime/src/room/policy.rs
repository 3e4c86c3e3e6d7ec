//! A bank's policy for one partner on one dataset (TOML, unknown fields rejected): the privacy
//! budget and mechanism, the release threshold and mode, which execution modes are allowed, and
//! caps on what a module may declare.

use serde::Deserialize;

use crate::output_gate::mechanism::{Mechanism, parse_nano};
use strongroom_contract::manifest::Mode;

/// When results leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseMode {
    /// As soon as the gate has produced them.
    Automatic,
    /// Only after a person at the bank releases them.
    Held,
}

/// A number given as a TOML string (an exact decimal) or an integer. A TOML float is refused:
/// it is binary, so `0.1` is not what the bank meant, and budgets are exact.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Decimal {
    Text(String),
    Int(u64),
    Float(f64),
}

impl Decimal {
    fn nano(&self) -> Result<u64, String> {
        match self {
            Decimal::Text(s) => parse_nano(s).map_err(|e| e.0),
            Decimal::Float(f) => Err(format!(
                "write it as an exact decimal string, e.g. \"{f}\" (a TOML float is binary, not exact)"
            )),
            Decimal::Int(i) => parse_nano(&i.to_string()).map_err(|e| e.0),
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
    batched: bool,
    #[serde(default)]
    audience: Option<AudienceLimits>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    min_cost_rho: Option<Decimal>,
    #[serde(default)]
    max_jobs_per_day: Option<u64>,
    #[serde(default)]
    allow_unnoised: bool,
    #[serde(default = "default_result_delay")]
    result_delay_seconds: u64,
    #[serde(default)]
    sql: Option<SqlPolicy>,
    #[serde(default)]
    limits: PolicyLimits,
}

/// Resource limits the bank sets for this partner's jobs (`[limits]` in the policy), over the
/// defaults of the module's toolchain (`guest_boundary::toolchain`). Each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLimits {
    /// Fuel (about one WebAssembly instruction each) one customer may use in isolated mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_customer: Option<u64>,
    /// Wall-clock limit of one customer (isolated) or one batch (batched), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_deadline_ms: Option<u64>,
    /// Largest module this partner's jobs may run, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_module_bytes: Option<u64>,
}

/// The most fuel a policy may give one customer: about 20 seconds of work.
pub const MAX_FUEL_PER_CUSTOMER: u64 = 20_000_000_000;
/// The longest unit deadline a policy may set.
pub const MAX_UNIT_DEADLINE_MS: u64 = 60_000;

impl PolicyLimits {
    /// `defaults` (the toolchain's) with this policy's limits in place of theirs.
    pub fn apply(
        &self,
        defaults: crate::guest_boundary::RunLimits,
    ) -> crate::guest_boundary::RunLimits {
        crate::guest_boundary::RunLimits {
            fuel_per_entity: self.fuel_per_customer.unwrap_or(defaults.fuel_per_entity),
            unit_deadline: self
                .unit_deadline_ms
                .map_or(defaults.unit_deadline, std::time::Duration::from_millis),
            ..defaults
        }
    }
}

/// Which SQL queries the partner may run, and through which engine (`[sql]` in the policy).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlPolicy {
    /// SHA-256 of the SQL engine module the bank reviewed (hex): SQL jobs run through it alone.
    pub engine_sha256: String,
    /// `any`: free-form SQL (each query's bounds are checked like a module's); `templates`:
    /// only the queries whose normal form hashes to one of `templates`.
    #[serde(default = "default_sql_queries")]
    pub queries: SqlQueries,
    /// Approved queries: SHA-256 of each query's normal form (`strongroom sql explain` prints
    /// it), with named parameters left free.
    #[serde(default)]
    pub templates: Vec<String>,
}

/// What SQL a partner may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlQueries {
    /// Any query that compiles.
    Any,
    /// Only approved templates.
    Templates,
}

fn default_sql_queries() -> SqlQueries {
    SqlQueries::Any
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
fn default_result_delay() -> u64 {
    DEFAULT_RESULT_DELAY_SECONDS
}

/// The default wait between a job's start and the moment its result (or failure) becomes
/// visible to the partner, whatever the run took.
pub const DEFAULT_RESULT_DELAY_SECONDS: u64 = 60;
/// The longest result delay a policy may set (a day).
pub const MAX_RESULT_DELAY_SECONDS: u64 = 86_400;
/// The default minimum cost of a job, as a fraction of the budget: at most this many jobs.
pub const DEFAULT_MIN_COST_DIVISOR: u64 = 100;

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
    /// Whether isolated-mode modules the bank approved by hash run batched: many customers, one
    /// after another, in one instance (faster; a module with state across calls could mix
    /// customers, which is what the bank's review rules out).
    pub batched: bool,
    /// Audience matching limits; `None` when matching is not allowed.
    pub audience: Option<AudienceLimits>,
    /// When the grant ends (RFC 3339); jobs after it are refused before any charge.
    pub expires: Option<time::OffsetDateTime>,
    /// The privacy domain the budget is kept in: every dataset of a domain describes the same
    /// people and shares one budget per partner. `None`: the party that sealed the dataset.
    pub domain: Option<String>,
    /// Least a job may cost, nano-rho (default: 1% of the budget), so probing is never free.
    pub min_cost_nano_rho: u64,
    /// Most jobs the partner may run in this domain in any 24 hours; `None`: no cap.
    pub max_jobs_per_day: Option<u64>,
    /// Whether the bank explicitly allows `mechanism = "none"` (exact, unnoised results).
    pub allow_unnoised: bool,
    /// Seconds from a job's start to when its outcome becomes visible to the partner.
    pub result_delay_seconds: u64,
    /// SQL jobs: the engine and which queries; `None` when the partner may not send SQL.
    pub sql: Option<SqlPolicy>,
    /// Resource limits over the module's toolchain defaults (`[limits]`).
    pub limits: PolicyLimits,
    /// The policy text as the bank wrote it.
    pub text: String,
    /// SHA-256 of the text, hex: the policy's identity in receipts.
    pub sha256: String,
}

/// Why a policy was refused, in words the bank can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl From<String> for PolicyError {
    fn from(message: String) -> Self {
        PolicyError(message)
    }
}

impl From<&str> for PolicyError {
    fn from(message: &str) -> Self {
        PolicyError(message.to_string())
    }
}

impl Policy {
    /// Parses and checks a policy.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = crate::toml_text::parse(text)?;
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
        if file.mechanism == Mechanism::None && !file.allow_unnoised {
            return Err(
                "mechanism = \"none\" releases exact results: set allow_unnoised = true to mean it"
                    .into(),
            );
        }
        if file.result_delay_seconds > MAX_RESULT_DELAY_SECONDS {
            return Err(format!(
                "result_delay_seconds: at most {MAX_RESULT_DELAY_SECONDS} (a day)"
            )
            .into());
        }
        if let Some(d) = &file.domain
            && (d.is_empty()
                || d.len() > 64
                || !d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)))
        {
            return Err(
                format!("domain '{d}': use 1-64 letters, digits, '-', '_', '.' or ':'").into(),
            );
        }
        let min_cost = match &file.min_cost_rho {
            Some(m) => m.nano().map_err(|e| format!("min_cost_rho: {e}"))?,
            None => (budget / DEFAULT_MIN_COST_DIVISOR).max(1),
        };
        if file.mechanism != Mechanism::None && min_cost == 0 {
            return Err("min_cost_rho must be positive: a free job is a free probe".into());
        }
        if file.max_jobs_per_day == Some(0) {
            return Err("max_jobs_per_day must be at least 1 (remove it for no cap)".into());
        }
        if let Some(sql) = &file.sql {
            let hex64 = |h: &str| {
                h.len() == 64
                    && h.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            };
            if !hex64(&sql.engine_sha256) {
                return Err(
                    "sql.engine_sha256: the SQL engine module's SHA-256, 64 lower-case hex digits"
                        .into(),
                );
            }
            if let Some(bad) = sql.templates.iter().find(|t| !hex64(t)) {
                return Err(format!(
                    "sql.templates: '{bad}' is not a SHA-256 (strongroom sql explain prints a query's template hash)"
                )
                .into());
            }
            if sql.queries == SqlQueries::Templates && sql.templates.is_empty() {
                return Err("sql: queries = \"templates\" needs at least one template hash in sql.templates".into());
            }
        }
        let l = &file.limits;
        if l.fuel_per_customer
            .is_some_and(|f| f == 0 || f > MAX_FUEL_PER_CUSTOMER)
        {
            return Err(format!("limits.fuel_per_customer: 1 to {MAX_FUEL_PER_CUSTOMER}").into());
        }
        if l.unit_deadline_ms
            .is_some_and(|d| d == 0 || d > MAX_UNIT_DEADLINE_MS)
        {
            return Err(format!("limits.unit_deadline_ms: 1 to {MAX_UNIT_DEADLINE_MS}").into());
        }
        if l.max_module_bytes == Some(0) {
            return Err("limits.max_module_bytes must be at least 1".into());
        }
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
            batched: file.batched,
            audience: file.audience,
            expires,
            domain: file.domain,
            min_cost_nano_rho: min_cost,
            max_jobs_per_day: file.max_jobs_per_day,
            allow_unnoised: file.allow_unnoised,
            result_delay_seconds: file.result_delay_seconds,
            limits: file.limits,
            sql: file.sql,
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
        let float = Policy::parse("partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1.5\n")
            .expect_err("a float is not exact");
        assert!(
            float.0.contains("budget_rho") && float.0.contains("\"1.5\""),
            "{float}"
        );
        assert_eq!(
            Policy::parse("partner = \"a\"\ndataset = \"b\"\nbudget_rho = 2\n")
                .expect("integer")
                .budget_nano_rho,
            2_000_000_000
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
        assert_eq!(
            p.min_cost_nano_rho, 5_000_000,
            "1% of the budget by default"
        );
        assert_eq!(p.result_delay_seconds, DEFAULT_RESULT_DELAY_SECONDS);
        assert_eq!(p.domain, None);
        let base = "partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1\n";
        let none = Policy::parse(&format!("{base}mechanism = \"none\"\n"));
        assert!(none.expect_err("needs opt-in").0.contains("allow_unnoised"));
        assert!(
            Policy::parse(&format!(
                "{base}mechanism = \"none\"\nallow_unnoised = true\n"
            ))
            .is_ok()
        );
        assert!(Policy::parse(&format!("{base}min_cost_rho = \"0\"\n")).is_err());
        assert!(Policy::parse(&format!("{base}max_jobs_per_day = 0\n")).is_err());
        assert!(Policy::parse(&format!("{base}domain = \"a b\"\n")).is_err());
        assert!(Policy::parse(&format!("{base}result_delay_seconds = 100000\n")).is_err());
        let dated = Policy::parse(
            "partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1\nexpires = \"2027-06-30T00:00:00Z\"\n",
        )
        .expect("expiry");
        assert_eq!(dated.expires.map(|t| t.year()), Some(2027));
        let bad =
            Policy::parse("partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1\nexpires = \"June\"\n");
        assert!(bad.expect_err("refused").0.contains("RFC 3339"));
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
