//! Parties, their roles and their bearer tokens.
//!
//! A token is `sr_<id>_<secret>`: the id (16 hex digits) finds the party's row, the secret (32
//! random bytes, base64url) is checked against the stored SHA-256 with a constant-time
//! comparison. Only the hash is stored; the token is shown once, when the party is added.
//! Revoked tokens stop working at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use strongroom::params;
use strongroom::room::db::OptionalExtension;
use subtle::ConstantTimeEq;

use strongroom::room::{Room, RoomError};
use strongroom_verify::event::Event;

/// What a party may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The bank: uploads sealed data, sets policies, approves modules, releases held results.
    Bank,
    /// A partner: uploads modules and audience lists, submits jobs, reads its own results.
    Partner,
    /// The security team: reads the audit log, checkpoints and proofs.
    Auditor,
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Bank => "bank",
            Role::Partner => "partner",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "bank" => Some(Role::Bank),
            "partner" => Some(Role::Partner),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }

    /// Every role.
    pub const ALL: [Role; 3] = [Role::Bank, Role::Partner, Role::Auditor];
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Party name.
    pub party: String,
    /// Its role.
    pub role: Role,
}

impl Caller {
    /// How the caller appears as an actor in the audit log.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.party)
    }
}

/// A party as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartyRecord {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When added.
    pub created_at: String,
    /// When revoked, if it was.
    pub revoked_at: Option<String>,
}

use strongroom_api::names::valid_name;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// A fresh token's id (16 hex digits) and secret (32 random bytes, base64url).
fn new_token() -> Result<(String, String), RoomError> {
    let rng = SystemRandom::new();
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rng.fill(&mut id)
        .and_then(|()| rng.fill(&mut secret))
        .map_err(|_| RoomError::Invalid("no system randomness".into()))?;
    Ok((hex::encode(id), B64.encode(secret)))
}

/// Adds a party and returns its token (shown once; only its hash is kept).
pub async fn add_party(room: &Room, name: &str, role: Role) -> Result<String, RoomError> {
    if !valid_name(name) {
        return Err(RoomError::Invalid(format!(
            "party name '{name}': use 1-64 letters, digits, '-', '_' or '.'"
        )));
    }
    let (id, secret) = new_token()?;
    room.write(|change| {
        let done = change
            .conn()
            .prepare_cached(
                "INSERT INTO parties (name, role, token_id, token_sha256, created_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![
                name,
                role.as_str(),
                id,
                sha256_hex(secret.as_bytes()),
                strongroom::clock::now_rfc3339()
            ])?;
        if done == 0 {
            return Err(RoomError::Invalid(format!(
                "a party named '{name}' exists; revoke it and add it under another name, or `party rotate`"
            )));
        }
        fail::fail_point!("party.before_entry", |_| Err(RoomError::Invalid(
            "injected failure before the party's entry".into()
        )));
        change.record(Event::PartyAdded {
            actor: "operator".into(),
            party: name.to_string(),
            role: role.as_str().into(),
            token_id: id.clone(),
        })
    })?;
    Ok(format!("sr_{id}_{secret}"))
}

/// Issues a new token for an existing party (the old one stops working).
pub async fn rotate_token(room: &Room, name: &str) -> Result<String, RoomError> {
    let (id, secret) = new_token()?;
    room.write(|change| {
        let done = change
            .conn()
            .prepare_cached(
                "UPDATE parties SET token_id = ?, token_sha256 = ?, revoked_at = NULL WHERE name = ?",
            )?
            .execute(params![id, sha256_hex(secret.as_bytes()), name])?;
        if done == 0 {
            return Err(RoomError::Invalid(format!("no party named '{name}'")));
        }
        fail::fail_point!("party.before_entry", |_| Err(RoomError::Invalid(
            "injected failure before the party's entry".into()
        )));
        change.record(Event::PartyTokenRotated {
            actor: "operator".into(),
            party: name.to_string(),
            token_id: id.clone(),
        })
    })?;
    Ok(format!("sr_{id}_{secret}"))
}

/// Revokes a party's token.
pub async fn revoke_party(room: &Room, name: &str) -> Result<(), RoomError> {
    room.write(|change| {
        let done = change
            .conn()
            .prepare_cached(
                "UPDATE parties SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            )?
            .execute(params![strongroom::clock::now_rfc3339(), name])?;
        if done == 0 {
            return Err(RoomError::Invalid(format!(
                "no active party named '{name}'"
            )));
        }
        fail::fail_point!("party.before_entry", |_| Err(RoomError::Invalid(
            "injected failure before the party's entry".into()
        )));
        change.record(Event::PartyRevoked {
            actor: "operator".into(),
            party: name.to_string(),
        })
    })?;
    Ok(())
}

/// Every party.
pub async fn list_parties(room: &Room) -> Result<Vec<PartyRecord>, RoomError> {
    type PartyRow = (String, String, String, Option<String>);
    let rows: Vec<PartyRow> = room.db().read(|conn| {
        conn.prepare_cached("SELECT name, role, created_at, revoked_at FROM parties ORDER BY name")?
            .query_map(params![], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<Vec<_>, _>>()
            .map_err(RoomError::from)
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, role, created_at, revoked_at)| {
            Some(PartyRecord {
                name,
                role: Role::parse(&role)?,
                created_at,
                revoked_at,
            })
        })
        .collect())
}

/// Why a token was not accepted (the caller is told only "unauthorized").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not a token of ours, or a wrong secret.
    Invalid,
    /// A revoked token.
    Revoked,
}

/// A token's id (the part that finds its party's row), if it has the token's shape.
pub fn token_id(token: &str) -> Option<&str> {
    let (id, _) = token.strip_prefix("sr_")?.split_once('_')?;
    (id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// Checks a bearer token.
pub async fn authenticate(room: &Room, token: &str) -> Result<Caller, AuthFailure> {
    let Some((id, secret)) = token
        .strip_prefix("sr_")
        .and_then(|rest| rest.split_once('_'))
    else {
        return Err(AuthFailure::Invalid);
    };
    if id.len() != 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AuthFailure::Invalid);
    }
    type PartyRow = (String, String, String, Option<String>);
    let row: Option<PartyRow> = room
        .db()
        .read(|conn| {
            conn.prepare_cached(
                "SELECT name, role, token_sha256, revoked_at FROM parties WHERE token_id = ?",
            )?
            .query_row(params![id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(RoomError::from)
        })
        .map_err(|_| AuthFailure::Invalid)?;
    // Hash even when there is no row, so a wrong id costs the same as a wrong secret.
    let presented = sha256_hex(secret.as_bytes());
    let Some((name, role, stored, revoked_at)) = row else {
        let _ = bool::from(presented.as_bytes().ct_eq(sha256_hex(b"").as_bytes()));
        return Err(AuthFailure::Invalid);
    };
    if !bool::from(presented.as_bytes().ct_eq(stored.as_bytes())) {
        return Err(AuthFailure::Invalid);
    }
    if revoked_at.is_some() {
        return Err(AuthFailure::Revoked);
    }
    let role = Role::parse(&role).ok_or(AuthFailure::Invalid)?;
    Ok(Caller { party: name, role })
}

/// A token bucket per party: `rate` requests a second on average, bursts of `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `party`; false when its bucket is empty.
    pub fn allow(&self, party: &str) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets
            .entry(party.to_string())
            .or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Requests refused for a missing, wrong or revoked token, counted per source address and
/// reason until the next summary is written to the log. Nothing is written per request, so a
/// flood of bad tokens cannot grow the log faster than one entry per source and period.
#[derive(Default)]
pub struct DeniedCounter {
    counts: Mutex<HashMap<(String, &'static str), u64>>,
}

impl DeniedCounter {
    /// Counts one refusal.
    pub fn count(&self, source: &str, reason: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((source.to_string(), reason))
            .or_default() += 1;
    }

    /// Takes the counts so far, per source: reason -> refusals.
    pub fn take(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        let mut out: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for ((source, reason), n) in counts {
            out.entry(source).or_default().insert(reason, n);
        }
        out
    }

    /// Writes one `access.denied_summary` entry per source with refusals since the last call.
    pub async fn flush(&self, room: &Room, period_seconds: u64) {
        for (source, reasons) in self.take() {
            if let Err(e) = room
                .audit()
                .append(&Event::AccessDeniedSummary {
                    actor: "unknown".into(),
                    source,
                    refusals: reasons
                        .into_iter()
                        .map(|(reason, n)| (reason.to_string(), n))
                        .collect(),
                    period_seconds,
                })
                .await
            {
                super::problem::tracing_log(&format!("writing an audit entry: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refuses_past_the_burst_and_refills() {
        let limiter = RateLimiter::new(1000.0, 3.0);
        assert!(limiter.allow("a") && limiter.allow("a") && limiter.allow("a"));
        assert!(!limiter.allow("a"), "burst of 3 spent");
        assert!(limiter.allow("b"), "buckets are per party");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(limiter.allow("a"), "refilled");
    }
}
