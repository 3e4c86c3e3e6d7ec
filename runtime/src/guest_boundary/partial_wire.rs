//! A [`Partial`] as canonical, versioned bytes: what a partition run elsewhere (another process,
//! another machine) hands back to the room that merges, charges, adds noise and logs.
//!
//! Canonical: one partial has exactly one encoding (groups sorted by key, counts by code,
//! failures by entity), so equal partials have equal bytes and [`digest`]s, and a coordinator can
//! bind a partial to the partition it was asked for by its digest. Every number is little-endian:
//!
//! ```text
//! "SRPT" version:u8 (1)
//! metrics:u32, per metric: groups:u32, per group (keys strictly increasing):
//!     key: arity x u32, entities:u64, contributions:u64, sum:i128
//! dropped_over_group_limit:u64 dropped_over_contribution_limit:u64 clamped:u64 entities:u64
//! units:u64 fuel:u64 peak_memory:u64
//! failure codes:u32, per code (strictly increasing): code:str, units:u64
//! failures:u32 (at most 16), per failure (entities increasing): entity:u32 code:str
//!     text:str (the trap kind or violation; empty otherwise) detail:str
//! stdout:bytes stderr:bytes          str and bytes: length:u32, then the bytes
//! ```
//!
//! Decoding trusts nothing: every count and length is checked against the bytes left and a
//! limit before anything is allocated, keys against the manifest's key arity, codes against the
//! known outcomes, output against the run's cap; trailing bytes are refused.

use std::collections::BTreeMap;

use strongroom_contract::manifest::Manifest;

use super::executor::{MAX_FAILURE_DETAILS, Partial};
use super::outcome::Outcome;
use crate::output_gate::{Accumulator, Aggregator, BoundingStats, GroupKey};

const MAGIC: &[u8; 4] = b"SRPT";
/// The encoding's version; a decoder refuses any other.
pub const VERSION: u8 = 1;
/// Longest text (a failure's detail, an outcome's text) a partial carries.
const MAX_TEXT: usize = 64 << 10;

/// Why bytes are not a partial of this run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a partial of this run: {0}")]
pub struct WireError(String);

/// The canonical bytes of `partial` (made for `manifest`).
pub fn encode(partial: &Partial, manifest: &Manifest) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    let groups = partial.aggregator.sorted_groups();
    put_u32(&mut out, groups.len() as u32);
    for (metric, groups) in manifest.metrics.iter().zip(&groups) {
        put_u32(&mut out, groups.len() as u32);
        for (key, acc) in groups {
            for part in key.parts(metric.key.len()) {
                put_u32(&mut out, *part);
            }
            out.extend_from_slice(&acc.entities.to_le_bytes());
            out.extend_from_slice(&acc.contributions.to_le_bytes());
            out.extend_from_slice(&acc.sum.to_le_bytes());
        }
    }
    let stats = partial.aggregator.stats();
    for n in [
        stats.dropped_over_group_limit,
        stats.dropped_over_contribution_limit,
        stats.clamped,
        partial.aggregator.entities(),
        partial.units,
        partial.fuel_consumed,
        partial.peak_memory_bytes,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    put_u32(&mut out, partial.failed_units.len() as u32);
    for (code, n) in &partial.failed_units {
        put_bytes(&mut out, code.as_bytes());
        out.extend_from_slice(&n.to_le_bytes());
    }
    let mut failures: Vec<&(u32, Outcome, String)> = partial.first_failures.iter().collect();
    failures.sort_by_key(|f| f.0);
    put_u32(&mut out, failures.len() as u32);
    for (entity, outcome, detail) in failures {
        put_u32(&mut out, *entity);
        put_bytes(&mut out, outcome.code().as_bytes());
        let text = match outcome {
            Outcome::Trap(t) | Outcome::ContractViolation(t) => t.as_str(),
            _ => "",
        };
        put_bytes(&mut out, text.as_bytes());
        put_bytes(&mut out, detail.as_bytes());
    }
    put_bytes(&mut out, &partial.stdout);
    put_bytes(&mut out, &partial.stderr);
    out
}

/// SHA-256 of a partial's canonical bytes.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// The partial `bytes` encode, for a run of `manifest` keeping `output_cap` bytes of output.
pub fn decode(bytes: &[u8], manifest: &Manifest, output_cap: usize) -> Result<Partial, WireError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err(WireError("it does not start with SRPT".into()));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(WireError(format!(
            "encoding version {version}; this room reads {VERSION}"
        )));
    }
    let metrics = r.u32()? as usize;
    if metrics != manifest.metrics.len() {
        return Err(WireError(format!(
            "{metrics} metrics; the module declares {}",
            manifest.metrics.len()
        )));
    }
    let mut groups = Vec::with_capacity(metrics);
    for metric in &manifest.metrics {
        let arity = metric.key.len();
        let record = arity * 4 + 8 + 8 + 16;
        let n = r.count(record, "groups")?;
        let mut list: Vec<(GroupKey, Accumulator)> = Vec::with_capacity(n);
        for _ in 0..n {
            let mut parts = [0u32; 4];
            for p in parts.iter_mut().take(arity) {
                *p = r.u32()?;
            }
            let key = GroupKey::new(&parts[..arity]);
            if list.last().is_some_and(|(last, _)| *last >= key) {
                return Err(WireError(format!(
                    "metric '{}': groups are not in increasing key order",
                    metric.name
                )));
            }
            let acc = Accumulator {
                entities: r.u64()?,
                contributions: r.u64()?,
                sum: i128::from_le_bytes(r.array()?),
            };
            list.push((key, acc));
        }
        groups.push(list);
    }
    let stats = BoundingStats {
        dropped_over_group_limit: r.u64()?,
        dropped_over_contribution_limit: r.u64()?,
        clamped: r.u64()?,
    };
    let entities = r.u64()?;
    let mut partial = Partial::new(manifest, output_cap);
    partial.aggregator = Aggregator::from_parts(groups, stats, entities);
    partial.units = r.u64()?;
    partial.fuel_consumed = r.u64()?;
    partial.peak_memory_bytes = r.u64()?;
    let codes = r.count(4 + 8, "failure codes")?;
    let mut failed_units = BTreeMap::new();
    for _ in 0..codes {
        let code = known_code(&r.text()?)?;
        if failed_units
            .keys()
            .next_back()
            .is_some_and(|&last| last >= code)
        {
            return Err(WireError(
                "failure codes are not in increasing order".into(),
            ));
        }
        failed_units.insert(code, r.u64()?);
    }
    partial.failed_units = failed_units;
    let failures = r.count(4 + 12, "failures")?;
    if failures > MAX_FAILURE_DETAILS {
        return Err(WireError(format!(
            "{failures} failure details; a partial keeps at most {MAX_FAILURE_DETAILS}"
        )));
    }
    for _ in 0..failures {
        let entity = r.u32()?;
        let code = known_code(&r.text()?)?;
        let text = r.text()?;
        if !text.is_empty() && !matches!(code, "trap" | "contract_violation") {
            return Err(WireError(format!(
                "a failure '{code}' with a text, which only traps and violations carry"
            )));
        }
        let detail = r.text()?;
        if partial.first_failures.last().is_some_and(|f| f.0 > entity) {
            return Err(WireError("failures are not in entity order".into()));
        }
        partial
            .first_failures
            .push((entity, outcome_of(code, text), detail));
    }
    for stream in ["stdout", "stderr"] {
        let bytes = r.bytes()?;
        if bytes.len() > output_cap {
            return Err(WireError(format!(
                "{} bytes of {stream}, over the run's cap of {output_cap}",
                bytes.len()
            )));
        }
        match stream {
            "stdout" => partial.stdout = bytes.to_vec(),
            _ => partial.stderr = bytes.to_vec(),
        }
    }
    if r.at != bytes.len() {
        return Err(WireError(format!(
            "{} bytes after the end",
            bytes.len() - r.at
        )));
    }
    Ok(partial)
}

/// Every outcome a failure can have, by its code.
const FAILURE_CODES: &[&str] = &[
    "out_of_fuel",
    "deadline",
    "memory_limit",
    "table_limit",
    "stack_overflow",
    "output_limit",
    "contribution_limit",
    "trap",
    "guest_error",
    "contract_violation",
];

fn known_code(code: &str) -> Result<&'static str, WireError> {
    FAILURE_CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .ok_or_else(|| WireError(format!("unknown failure code '{code}'")))
}

fn outcome_of(code: &'static str, text: String) -> Outcome {
    match code {
        "out_of_fuel" => Outcome::OutOfFuel,
        "deadline" => Outcome::Deadline,
        "memory_limit" => Outcome::MemoryLimit,
        "table_limit" => Outcome::TableLimit,
        "stack_overflow" => Outcome::StackOverflow,
        "output_limit" => Outcome::OutputLimit,
        "contribution_limit" => Outcome::ContributionLimit,
        "trap" => Outcome::Trap(text),
        "guest_error" => Outcome::GuestError,
        _ => Outcome::ContractViolation(text),
    }
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| WireError(format!("it ends early (at byte {})", self.at)))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count of records of at least `record` bytes each, checked against the bytes left.
    fn count(&mut self, record: usize, what: &str) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        let left = self.bytes.len() - self.at;
        if n.saturating_mul(record) > left {
            return Err(WireError(format!(
                "{n} {what} cannot fit in the {left} bytes left"
            )));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn text(&mut self) -> Result<String, WireError> {
        let bytes = self.bytes()?;
        if bytes.len() > MAX_TEXT {
            return Err(WireError(format!(
                "a text of {} bytes, over {MAX_TEXT}",
                bytes.len()
            )));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError("a text is not UTF-8".into()))
    }
}
