//! Audit entries and their canonical serialization.
//!
//! An entry is a JSON object of strings, integers, booleans and nested objects/arrays. Its
//! canonical form, the bytes the Merkle leaf covers, is written by [`canonical`]: keys sorted by
//! their UTF-8 bytes, no whitespace, strings escaped as JSON requires (`"`, `\`, control
//! characters as `\u00XX` or the short escapes), no floating-point numbers. We write it ourselves
//! rather than rely on a library's default ordering, because the offline verifier must reproduce
//! it byte for byte.

use serde_json::{Map, Value};

/// Why an entry cannot be made canonical.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry is not canonical JSON: {0}")]
pub struct CanonicalError(pub String);

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write(out: &mut String, v: &Value) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                return Err(CanonicalError(format!("{n} is not an integer")));
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(out: &mut String, map: &Map<String, Value>) -> Result<(), CanonicalError> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    out.push('{');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, k);
        out.push(':');
        write(out, &map[*k])?;
    }
    out.push('}');
    Ok(())
}

/// The canonical text of a JSON value.
pub fn canonical(v: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write(&mut out, v)?;
    Ok(out)
}

/// The kinds of events the room records.
pub mod event {
    /// Room keys were created.
    pub const ROOM_CREATED: &str = "room.created";
    /// A dataset was loaded for a run (name, content hash).
    pub const DATASET_LOADED: &str = "dataset.loaded";
    /// A policy was set or changed (hash, previous hash, diff).
    pub const POLICY_SET: &str = "policy.set";
    /// A module was vetted (hash, result).
    pub const MODULE_VETTED: &str = "module.vetted";
    /// The bank approved a module (by hash) for a partner.
    pub const MODULE_APPROVED: &str = "module.approved";
    /// The bank rejected a module (by hash) for a partner.
    pub const MODULE_REJECTED: &str = "module.rejected";
    /// A job was refused before any charge (reason).
    pub const JOB_REFUSED: &str = "job.refused";
    /// A job's cost was charged to the budget.
    pub const BUDGET_CHARGED: &str = "budget.charged";
    /// A job's module started running (admitted and charged).
    pub const JOB_STARTED: &str = "job.started";
    /// A job finished (outcome, fuel bucket).
    pub const JOB_FINISHED: &str = "job.finished";
    /// A job ended without a result (table mode run failed, or a host fault): nothing released.
    pub const RESULT_NONE: &str = "result.none";
    /// A result was released automatically.
    pub const RESULT_RELEASED: &str = "result.released";
    /// A result was held for the bank.
    pub const RESULT_HELD: &str = "result.held";
    /// A person at the bank released a held result.
    pub const RESULT_RELEASED_BY_BANK: &str = "result.released_by_bank";
    /// A person at the bank withheld a held result.
    pub const RESULT_WITHHELD: &str = "result.withheld";
    /// A party was added (name, role, token id; never the token).
    pub const PARTY_ADDED: &str = "party.added";
    /// A party's token was replaced.
    pub const PARTY_TOKEN_ROTATED: &str = "party.token_rotated";
    /// A party's token was revoked.
    pub const PARTY_REVOKED: &str = "party.revoked";
    /// A request to the service was refused: no, wrong or revoked token, or a role not allowed.
    pub const ACCESS_DENIED: &str = "access.denied";
    /// The bank uploaded a sealed dataset (name, header hash, sealing party).
    pub const DATASET_UPLOADED: &str = "dataset.uploaded";
    /// A partner uploaded a sealed audience list (header hash).
    pub const AUDIENCE_UPLOADED: &str = "audience.uploaded";
    /// A partner uploaded a module (hash, vetting result).
    pub const MODULE_UPLOADED: &str = "module.uploaded";
    /// A partner queued a job.
    pub const JOB_QUEUED: &str = "job.queued";
    /// A job was running when the service stopped; it is failed, its charge stands.
    pub const JOB_INTERRUPTED: &str = "job.interrupted";
    /// A job failed after its charge (releasing or signing its receipt failed); the charge
    /// stands. Not a refusal: `job.refused` means refused before any charge.
    pub const JOB_FAILED: &str = "job.failed";
    /// A worker failed inside a job (a panic): the job is failed, its charge stands, and the
    /// worker goes on with the next job.
    pub const JOB_CRASHED: &str = "job.crashed";
    /// A dataset could not be opened for a job: no job runs on it until it is uploaded again.
    pub const DATASET_QUARANTINED: &str = "dataset.quarantined";
    /// Requests with no, a wrong or a revoked token, counted per source address over a period
    /// (one entry per address and period, written only when the period had refusals).
    pub const ACCESS_DENIED_SUMMARY: &str = "access.denied_summary";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_sorts_keys_and_escapes() {
        let v: Value = serde_json::from_str(
            r#"{"b":1,"a":{"z":"x\"y","y":[true,null,-3]},"c":"line\nbreak\u0001"}"#,
        )
        .expect("json");
        assert_eq!(
            canonical(&v).expect("canonical"),
            r#"{"a":{"y":[true,null,-3],"z":"x\"y"},"b":1,"c":"line\nbreak\u0001"}"#
        );
        let float: Value = serde_json::from_str(r#"{"x":1.5}"#).expect("json");
        assert!(canonical(&float).is_err());
        // Reading the canonical text back gives the same canonical text.
        let again: Value = serde_json::from_str(&canonical(&v).expect("canonical")).expect("json");
        assert_eq!(canonical(&again), canonical(&v));
    }
}
