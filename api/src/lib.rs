//! # strongroom-api: what a room's operations take and return
//!
//! One set of types for a room's operations, whoever performs them: the server answers HTTP
//! requests with them, and the `strongroom` command builds them from a local room or reads them
//! from a served one, so the two print the same thing. Field names are the JSON keys of the API
//! (docs/api.md, `server/openapi.json`).

use serde::{Deserialize, Serialize};

pub mod names;

/// The room: its name and public keys (`GET /v1/room`, `strongroom room pubkey`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Room name.
    pub name: String,
    /// Fingerprint of its public keys, to read over the phone.
    pub fingerprint: String,
    /// The shareable `room.pub` text.
    pub public_keys: String,
}

/// A policy was set (`PUT /v1/policies`, `strongroom policy set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySet {
    /// The partner it governs.
    pub partner: String,
    /// The dataset it governs.
    pub dataset: String,
    /// SHA-256 of its text, hex.
    pub policy_sha256: String,
    /// Total budget, as a decimal rho.
    pub budget_rho: String,
    /// Noise mechanism.
    pub mechanism: String,
    /// Fewest entities a released group must have.
    pub min_group_size: u64,
    /// `automatic` or `held`.
    pub release: String,
}

/// The bank decided on a module (`POST /v1/modules/{sha256}/decision`, `strongroom module
/// approve|reject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleDecided {
    /// The module.
    pub module_sha256: String,
    /// The partner the decision is for.
    pub partner: String,
    /// `approved` or `rejected`.
    pub decision: String,
    /// Who at the bank decided.
    pub by: String,
}

/// A privacy budget (`GET /v1/budgets`, `strongroom budget show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The partner.
    pub partner: String,
    /// The dataset.
    pub dataset: String,
    /// The privacy domain whose charges count against it.
    pub domain: String,
    /// Total, as a decimal rho.
    pub total_rho: String,
    /// Spent, as a decimal rho.
    pub spent_rho: String,
    /// Left, as a decimal rho.
    pub remaining_rho: String,
    /// Charges made.
    pub jobs: u64,
    /// The total as (epsilon, delta) at the policy's delta.
    pub total_epsilon_delta: String,
}

/// A dataset in the room (`GET /v1/datasets`, `strongroom dataset list`): a partner sees those
/// it has a policy for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// Its name (from the sealed header).
    pub name: String,
    /// SHA-256 of its authenticated header, hex.
    pub header_sha256: String,
    /// The sealing party that signed it.
    pub sealed_by: String,
    /// Entities (customers) in it.
    pub entities: u64,
    /// When it was uploaded.
    pub uploaded_at: String,
}

/// A job as the bank sees it in a list (`GET /v1/jobs` as the bank or an auditor, `strongroom
/// job list`): jobs that ended, and those still queued, running or refused, with their queue
/// state as their status. The same for a local room and a served one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// Job id.
    pub job_id: String,
    /// Partner.
    pub partner: String,
    /// Dataset.
    pub dataset: String,
    /// Module hash.
    pub module_sha256: String,
    /// Outcome code, `-` while there is none.
    pub outcome: String,
    /// released, held, withheld or failed; or the queue state (queued, running, refused).
    pub status: String,
    /// When it finished, or when it was submitted if it has not.
    pub finished_at: String,
}

/// A partner's view of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartnerJobView {
    /// Job id.
    pub job_id: String,
    /// Dataset asked for.
    pub dataset: String,
    /// Module asked for.
    pub module_sha256: String,
    /// Cost asked for.
    pub cost: String,
    /// Parameters given.
    pub parameters: std::collections::BTreeMap<String, String>,
    /// `queued` (waiting for a worker), `running` (admitted; the outcome is not visible yet),
    /// `finished` (visible), `refused` (refused before any charge; see `error`) or `failed` (the
    /// host failed after the charge, shown after the release time; see `error`).
    pub state: String,
    /// Why the job was refused before any charge (policy, budget, module): never data.
    pub error: Option<String>,
    /// For a refused job, the refusal's stable code (`mode_not_allowed`, `budget_exhausted`...).
    pub error_code: Option<String>,
    /// The partner's outcome code, once visible.
    pub outcome: Option<String>,
    /// released, held, withheld or failed, once visible.
    pub status: Option<String>,
    /// When the partner submitted the job.
    pub submitted_at: String,
    /// When the outcome becomes (or became) visible: fixed at the job's start.
    pub release_at: Option<String>,
    /// The released table, when released.
    pub result: Option<serde_json::Value>,
    /// The exact bytes the receipt's result hash covers, when released.
    pub result_json: Option<String>,
    /// The signed receipt, once visible.
    pub receipt: Option<String>,
}

/// The bank decided on a held result (`POST /v1/jobs/{id}/decision`, `strongroom job
/// release|withhold`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDecision {
    /// The job.
    pub job_id: String,
    /// `released` or `withheld`.
    pub status: String,
}

/// A proof from the room's audit log (`GET /v1/audit/proof`, `strongroom audit prove`): hashes
/// base64, checkable offline with `strongroom-verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Proof {
    /// Entry `index` is in the tree of `size` entries with `root`.
    Inclusion {
        /// The entry's index.
        index: u64,
        /// The tree's size.
        size: u64,
        /// The tree's root.
        root: String,
        /// The audit path, smallest subtree first.
        proof: Vec<String>,
    },
    /// The tree of `old_size` entries is a prefix of the tree of `size`.
    Consistency {
        /// The earlier size.
        old_size: u64,
        /// The later size.
        size: u64,
        /// The earlier root.
        old_root: String,
        /// The later root.
        root: String,
        /// The consistency proof.
        proof: Vec<String>,
    },
}

/// One stored audit entry with the room's signature over the tree head that ends with it
/// (`GET /v1/audit/entries`, `strongroom audit export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its index in the log.
    pub index: u64,
    /// Its canonical JSON text.
    pub entry: String,
    /// The signature over the tree head of size `index + 1`.
    pub tree_head_signature: String,
}

/// A signed checkpoint of the log as it is now (`GET /v1/audit/checkpoint`, `strongroom audit
/// checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// Entries covered.
    pub size: u64,
    /// The tree's root, base64.
    pub root: String,
    /// The signed note.
    pub note: String,
}
