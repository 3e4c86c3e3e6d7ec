//! What the room records: every audit event as a typed value.
//!
//! The room writes entries only from an [`Event`]; an auditor's tool or the web console reads
//! them back with [`Event::from_entry`]. An entry is the event's fields plus `event` (its name,
//! such as `job.finished`), and the log's own `index`, `time` and `salt`, which the log adds.
//! docs/audit.md describes each event for people.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An audience list as a job's `dataset.loaded` entry describes it: its identity and size, never
/// how many customers it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceSummary {
    /// SHA-256 of the sealed list, hex.
    pub list_sha256: String,
    /// The party that sealed it.
    pub sealed_by: String,
    /// Members in the list.
    pub members: u64,
    /// Distinct normalized identifiers per identifier column.
    pub identifiers: BTreeMap<String, u64>,
}

/// The lines a policy change removed and added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDiff {
    /// Lines of the previous policy that are gone.
    pub removed: Vec<String>,
    /// Lines of the new policy that are new.
    pub added: Vec<String>,
}

/// Every event the room records. Field names are the entry's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
#[non_exhaustive]
pub enum Event {
    /// The room was created with these public keys.
    #[serde(rename = "room.created")]
    RoomCreated {
        /// Who acted.
        actor: String,
        /// Room name.
        room: String,
        /// Fingerprint of the public keys.
        fingerprint: String,
        /// X25519 sealing key, hex.
        sealing_x25519: String,
        /// Ed25519 signing key, hex.
        signing_ed25519: String,
    },
    /// A policy was set or changed.
    #[serde(rename = "policy.set")]
    PolicySet {
        /// Who acted.
        actor: String,
        /// The partner it governs.
        partner: String,
        /// The dataset it governs.
        dataset: String,
        /// SHA-256 of its text, hex.
        policy_sha256: String,
        /// The policy it replaced, if any.
        previous_sha256: Option<String>,
        /// What changed.
        diff: PolicyDiff,
    },
    /// The bank approved a module for a partner.
    #[serde(rename = "module.approved")]
    ModuleApproved {
        /// Who acted.
        actor: String,
        /// The person at the bank.
        by: String,
        /// The partner.
        partner: String,
        /// The module.
        module_sha256: String,
        /// Why.
        comment: String,
        /// The parameter rules, as JSON text (ranges are decimals; entries hold integers only).
        parameters: String,
    },
    /// The bank rejected a module for a partner.
    #[serde(rename = "module.rejected")]
    ModuleRejected {
        /// Who acted.
        actor: String,
        /// The person at the bank.
        by: String,
        /// The partner.
        partner: String,
        /// The module.
        module_sha256: String,
        /// Why.
        comment: String,
        /// The parameter rules, as JSON text.
        parameters: String,
    },
    /// A module was vetted for a local run.
    #[serde(rename = "module.vetted")]
    ModuleVetted {
        /// Who acted.
        actor: String,
        /// The module.
        module_sha256: String,
        /// `accepted` or `refused`.
        result: String,
        /// Why it was refused.
        reason: Option<String>,
        /// Its manifest's name, when accepted.
        name: Option<String>,
        /// Its manifest's version, when accepted.
        version: Option<String>,
    },
    /// A partner uploaded a module.
    #[serde(rename = "module.uploaded")]
    ModuleUploaded {
        /// Who acted.
        actor: String,
        /// The module.
        module_sha256: String,
        /// `accepted` or `refused`.
        result: String,
        /// Why it was refused.
        reason: Option<String>,
    },
    /// A party was added (never its token, only the token's id).
    #[serde(rename = "party.added")]
    PartyAdded {
        /// Who acted.
        actor: String,
        /// The party.
        party: String,
        /// `bank`, `partner` or `auditor`.
        role: String,
        /// The token's public id.
        token_id: String,
    },
    /// A party's token was replaced.
    #[serde(rename = "party.token_rotated")]
    PartyTokenRotated {
        /// Who acted.
        actor: String,
        /// The party.
        party: String,
        /// The new token's public id.
        token_id: String,
    },
    /// A party's token was revoked.
    #[serde(rename = "party.revoked")]
    PartyRevoked {
        /// Who acted.
        actor: String,
        /// The party.
        party: String,
    },
    /// A request was refused for the caller's role.
    #[serde(rename = "access.denied")]
    AccessDenied {
        /// Who acted.
        actor: String,
        /// Why (`role`).
        reason: String,
        /// The request's method.
        method: String,
        /// The route template.
        route: String,
    },
    /// Requests with no, a wrong or a revoked token from one source over a period, counted.
    #[serde(rename = "access.denied_summary")]
    AccessDeniedSummary {
        /// Who acted (`unknown`).
        actor: String,
        /// The source address.
        source: String,
        /// Refusals per reason.
        refusals: BTreeMap<String, u64>,
        /// The period counted.
        period_seconds: u64,
    },
    /// The bank uploaded a sealed dataset.
    #[serde(rename = "dataset.uploaded")]
    DatasetUploaded {
        /// Who acted.
        actor: String,
        /// Dataset name.
        dataset: String,
        /// SHA-256 of the sealed header, hex.
        header_sha256: String,
        /// The sealing party.
        sealed_by: String,
        /// Its Ed25519 key.
        sealed_by_ed25519: String,
        /// Entities in it.
        entities: u64,
    },
    /// A dataset failed to open for a job: no job runs on it until it is uploaded again.
    #[serde(rename = "dataset.quarantined")]
    DatasetQuarantined {
        /// Who acted.
        actor: String,
        /// Dataset name.
        dataset: String,
        /// SHA-256 of the sealed header, hex.
        header_sha256: String,
        /// Why.
        reason: String,
    },
    /// A partner uploaded a sealed audience list.
    #[serde(rename = "audience.uploaded")]
    AudienceUploaded {
        /// Who acted.
        actor: String,
        /// SHA-256 of the sealed list, hex.
        list_sha256: String,
        /// Members in it.
        members: u64,
    },
    /// A partner queued a job.
    #[serde(rename = "job.queued")]
    JobQueued {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// The dataset.
        dataset: String,
        /// The module.
        module_sha256: String,
        /// The cost asked, as a decimal.
        cost: String,
    },
    /// A job was refused before any charge.
    #[serde(rename = "job.refused")]
    JobRefused {
        /// Who acted.
        actor: String,
        /// The partner.
        partner: String,
        /// The dataset.
        dataset: String,
        /// The module.
        module_sha256: String,
        /// Why.
        reason: String,
    },
    /// The dataset a job runs on, loaded.
    #[serde(rename = "dataset.loaded")]
    DatasetLoaded {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// The dataset.
        dataset: String,
        /// SHA-256 identifying its content, hex.
        dataset_sha256: String,
        /// Where it came from.
        origin: String,
        /// Its privacy domain.
        domain: String,
        /// Entities in it.
        entities: u64,
        /// The partner's audience list, if the job matches one.
        audience: Option<AudienceSummary>,
    },
    /// A job's cost was charged to its budget.
    #[serde(rename = "budget.charged")]
    BudgetCharged {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// The partner.
        partner: String,
        /// The dataset.
        dataset: String,
        /// The privacy domain charged.
        domain: String,
        /// The module.
        module_sha256: String,
        /// The policy the charge follows.
        policy_sha256: String,
        /// A SQL job's query and plan.
        #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
        sql: Option<SqlHashes>,
        /// The noise mechanism.
        mechanism: String,
        /// The cost, billionths.
        cost_nano_rho: u64,
        /// What is left, billionths.
        remaining_nano_rho: u64,
    },
    /// A job's module started running (admitted and charged).
    #[serde(rename = "job.started")]
    JobStarted {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// `isolated` or `table`.
        mode: String,
        /// Entities it runs over.
        entities: u64,
        /// When its outcome becomes visible to its partner.
        release_at: String,
        /// The partner's parameters, (name, value).
        parameters: Vec<(String, String)>,
    },
    /// A job's run ended.
    #[serde(rename = "job.finished")]
    JobFinished {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// The partner's outcome code.
        outcome: String,
        /// The run's own outcome code (for the bank).
        run_outcome: String,
        /// Units run.
        units: u64,
        /// Units that failed, per reason.
        failed_units: BTreeMap<String, u64>,
        /// Whether the run passed the time its outcome was due.
        overran_release_time: bool,
        /// Fuel used, as a bucket.
        fuel_bucket: String,
        /// Peak memory, as a power-of-two bucket in MiB.
        memory_bucket_mib: u64,
        /// The run's seed, hex.
        seed: String,
        /// SHA-256 of the bank's diagnostics, hex.
        diagnostics_sha256: String,
    },
    /// A result was released to its partner.
    #[serde(rename = "result.released")]
    ResultReleased(ResultFacts),
    /// A result was held for the bank.
    #[serde(rename = "result.held")]
    ResultHeld(ResultFacts),
    /// A job ended without a result: nothing was released.
    #[serde(rename = "result.none")]
    ResultNone(ResultFacts),
    /// A person at the bank released a held result.
    #[serde(rename = "result.released_by_bank")]
    ResultReleasedByBank {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// Why, as the person at the bank wrote it (absent in entries written before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A person at the bank withheld a held result.
    #[serde(rename = "result.withheld")]
    ResultWithheld {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// Why, as the person at the bank wrote it (absent in entries written before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A job failed after its charge; the charge stands.
    #[serde(rename = "job.failed")]
    JobFailed {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// The partner.
        partner: String,
        /// Why.
        reason: String,
    },
    /// A job was running when the service stopped; it is failed, its charge stands.
    #[serde(rename = "job.interrupted")]
    JobInterrupted {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// The partner.
        partner: String,
    },
    /// The operator exercised the log (`strongroom audit stress`): an entry with no other
    /// meaning.
    #[serde(rename = "log.exercised")]
    LogExercised {
        /// Who acted.
        actor: String,
        /// Its number in the run.
        n: u64,
        /// Free text.
        note: String,
    },
    /// A worker failed inside a job; the job is failed, its charge stands.
    #[serde(rename = "job.crashed")]
    JobCrashed {
        /// Who acted.
        actor: String,
        /// The job.
        job: String,
        /// The partner.
        partner: String,
    },
}

/// What identifies a SQL job's query: the module it names is the bank-approved SQL engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlHashes {
    /// SHA-256 of the query's normal form, hex (a template's hash).
    pub query_sha256: String,
    /// SHA-256 of the plan the room compiled it to, hex.
    pub plan_sha256: String,
}

/// The facts a job's result entry states (and its receipt repeats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultFacts {
    /// Who acted.
    pub actor: String,
    /// The job.
    pub job: String,
    /// The partner.
    pub partner: String,
    /// The dataset.
    pub dataset: String,
    /// SHA-256 identifying the dataset's content, hex.
    pub dataset_sha256: String,
    /// The module.
    pub module_sha256: String,
    /// The policy.
    pub policy_sha256: String,
    /// A SQL job's query and plan (the module is then the SQL engine).
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlHashes>,
    /// The partner's outcome code.
    pub outcome: String,
    /// SHA-256 of the released result, hex, or `none`.
    pub result_sha256: String,
    /// The cost charged, billionths.
    pub cost_nano_rho: u64,
    /// The job's status.
    pub status: String,
}

/// Why an entry is not an event this version knows.
#[derive(Debug, thiserror::Error)]
#[error("not a known audit event: {0}")]
pub struct EventError(#[from] serde_json::Error);

impl Event {
    /// The event's name, as entries carry it (`job.finished`).
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_default()
    }

    /// The entry's fields without the log's own (`index`, `time`, `salt`), as a JSON object
    /// with `event`.
    pub fn to_fields(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Reads an entry's canonical text back into its event (the log's own fields are ignored).
    pub fn from_entry(entry: &str) -> Result<Event, EventError> {
        Ok(serde_json::from_str(entry)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_its_name_and_reads_back_from_an_entry_with_the_logs_fields() {
        let event = Event::ResultHeld(ResultFacts {
            actor: "room".into(),
            job: "j1".into(),
            partner: "socialco".into(),
            dataset: "bank".into(),
            dataset_sha256: "00".repeat(32),
            module_sha256: "11".repeat(32),
            policy_sha256: "22".repeat(32),
            sql: None,
            outcome: "completed".into(),
            result_sha256: "none".into(),
            cost_nano_rho: 250_000_000,
            status: "held".into(),
        });
        assert_eq!(event.name(), "result.held");
        let mut entry = event.to_fields();
        entry["index"] = 7.into();
        entry["time"] = "2026-12-01T00:00:00Z".into();
        entry["salt"] = "AAAA".into();
        let text = crate::canonical::canonical(&entry).expect("canonical");
        assert_eq!(Event::from_entry(&text).expect("reads back"), event);
        assert!(Event::from_entry(r#"{"event":"no.such"}"#).is_err());
    }
}
