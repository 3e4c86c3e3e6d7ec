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
