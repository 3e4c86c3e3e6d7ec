//! The room's state as the API's shared types (`strongroom-api`): what the server answers and
//! what the CLI prints for a local room, built in one place.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use strongroom::output_gate::ledger::BudgetStatus;
use strongroom::output_gate::mechanism::{format_nano, rho_to_epsilon};
use strongroom::params;
use strongroom::room::db::OptionalExtension;
use strongroom::room::policy::Policy;
use strongroom::room::{Room, RoomError};
use strongroom_api::{
    AuditEntry, Budget, DatasetDetail, DatasetSummary, PolicyEntry, PolicySet, Proof, RoomInfo,
    SignedCheckpoint,
};

/// The room's name and public keys.
pub fn room_info(room: &Room) -> RoomInfo {
    let keys = &room.keys().public;
    RoomInfo {
        name: room.name().to_string(),
        fingerprint: keys.fingerprint(),
        public_keys: keys.encode(),
    }
}

/// A budget; `delta` is its policy's, for the (epsilon, delta) reading.
pub fn budget(b: BudgetStatus, delta: f64) -> Budget {
    let rho = b.total_nano_rho as f64 / 1e9;
    Budget {
        total_rho: format_nano(b.total_nano_rho),
        spent_rho: format_nano(b.spent_nano_rho),
        remaining_rho: format_nano(b.remaining()),
        jobs: b.jobs,
        total_epsilon_delta: format!("({:.3}, {delta:e})", rho_to_epsilon(rho, delta)),
        partner: b.partner,
        dataset: b.dataset,
        domain: b.domain,
    }
}

/// Every budget the caller may see (`partner`: only that partner's), with its (epsilon, delta).
pub async fn budgets(room: &Room, partner: Option<&str>) -> Result<Vec<Budget>, RoomError> {
    let mut out = Vec::new();
    for b in room
        .ledger()
        .all()
        .await
        .map_err(|e| RoomError::Invalid(e.to_string()))?
    {
        if partner.is_some_and(|p| p != b.partner) {
            continue;
        }
        let delta = room
            .policy(&b.partner, &b.dataset)
            .await
            .map_or(DEFAULT_DELTA, |p| p.delta);
        out.push(budget(b, delta));
    }
    Ok(out)
}

/// The datasets the caller may see (`partner`: those it has a policy for), by name.
pub async fn datasets(
    room: &Room,
    partner: Option<&str>,
) -> Result<Vec<DatasetSummary>, RoomError> {
    room.db().read(|conn| {
        conn.prepare_cached(
            "SELECT name, header_sha256, sealed_by, entities, uploaded_at FROM datasets \
             WHERE ? IS NULL OR name IN (SELECT dataset FROM policies WHERE partner = ?) ORDER BY name",
        )?
        .query_map(params![partner, partner], |r| {
            Ok(DatasetSummary {
                name: r.get("name")?,
                header_sha256: r.get("header_sha256")?,
                sealed_by: r.get("sealed_by")?,
                entities: r.get::<_, i64>("entities")?.max(0) as u64,
                uploaded_at: r.get("uploaded_at")?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(RoomError::from)
    })
}

/// The dataset `name` with its schema (column names, roles and public dictionaries, never a
/// value); `None` when there is none, or when `partner` (a partner asking) has no policy on it.
pub async fn dataset(
    room: &Room,
    name: &str,
    partner: Option<&str>,
) -> Result<Option<DatasetDetail>, RoomError> {
    room.db().read(|conn| {
        conn.query_row(
            "SELECT name, header_sha256, sealed_by, entities, uploaded_at, schema_toml FROM datasets \
             WHERE name = ? AND (? IS NULL OR name IN (SELECT dataset FROM policies WHERE partner = ?))",
            params![name, partner, partner],
            |row| {
                Ok(DatasetDetail {
                    name: row.get("name")?,
                    header_sha256: row.get("header_sha256")?,
                    sealed_by: row.get("sealed_by")?,
                    entities: row.get::<_, i64>("entities")?.max(0) as u64,
                    uploaded_at: row.get("uploaded_at")?,
                    schema_toml: row.get("schema_toml")?,
                })
            },
        )
        .optional()
        .map_err(RoomError::from)
    })
}

/// The policies in force (`partner`: a partner asking sees its own).
pub async fn policies(room: &Room, partner: Option<&str>) -> Result<Vec<PolicyEntry>, RoomError> {
    room.db().read(|conn| {
        conn.prepare_cached(
            "SELECT partner, dataset, policy_toml, policy_sha256, set_at FROM policies \
             WHERE ? IS NULL OR partner = ? ORDER BY partner, dataset",
        )?
        .query_map(params![partner, partner], |r| {
            Ok(PolicyEntry {
                partner: r.get("partner")?,
                dataset: r.get("dataset")?,
                policy_toml: r.get("policy_toml")?,
                policy_sha256: r.get("policy_sha256")?,
                set_at: r.get("set_at")?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(RoomError::from)
    })
}

/// A policy that was set.
pub fn policy_set(policy: &Policy) -> PolicySet {
    PolicySet {
        partner: policy.partner.clone(),
        dataset: policy.dataset.clone(),
        policy_sha256: policy.sha256.clone(),
        budget_rho: format_nano(policy.budget_nano_rho),
        mechanism: format!("{:?}", policy.mechanism).to_lowercase(),
        min_group_size: policy.min_group_size,
        release: format!("{:?}", policy.release).to_lowercase(),
    }
}

/// The delta a budget is read at when its policy is gone.
const DEFAULT_DELTA: f64 = 1e-6;

/// Why a proof could not be made: the request (an index or size outside the log), or the room.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The request does not fit the log.
    #[error("{0}")]
    Request(String),
    /// The room could not read its log.
    #[error(transparent)]
    Room(#[from] RoomError),
}

/// An inclusion proof of entry `index`, or a consistency proof from `old_size`, in the tree of
/// `size` entries (default: the whole log).
pub async fn proof(
    room: &Room,
    index: Option<u64>,
    old_size: Option<u64>,
    size: Option<u64>,
) -> Result<Proof, ProofError> {
    let tree = room.audit().tree().await.map_err(RoomError::from)?;
    let size = size.unwrap_or(tree.size());
    let encode = |p: Vec<[u8; 32]>| p.iter().map(|h| B64.encode(h)).collect::<Vec<_>>();
    let bad = |e: strongroom_verify::merkle::ProofError| ProofError::Request(e.to_string());
    let root = B64.encode(tree.root(size).map_err(bad)?);
    match (index, old_size) {
        (Some(index), None) => Ok(Proof::Inclusion {
            index,
            size,
            root,
            proof: encode(tree.inclusion_proof(index, size).map_err(bad)?),
        }),
        (None, Some(old_size)) => Ok(Proof::Consistency {
            old_size,
            size,
            old_root: B64.encode(tree.root(old_size).map_err(bad)?),
            root,
            proof: encode(tree.consistency_proof(old_size, size).map_err(bad)?),
        }),
        _ => Err(ProofError::Request(
            "give an index (inclusion proof) or an old size (consistency proof), not both".into(),
        )),
    }
}

/// Up to `limit` audit entries from `from`.
pub async fn audit_entries(
    room: &Room,
    from: u64,
    limit: u64,
) -> Result<Vec<AuditEntry>, RoomError> {
    Ok(room
        .audit()
        .entries_page(from, limit)
        .await?
        .into_iter()
        .map(|e| AuditEntry {
            index: e.index,
            entry: e.entry,
            tree_head_signature: e.signature,
        })
        .collect())
}

/// The log's signed checkpoint as it is now.
pub async fn checkpoint(room: &Room) -> Result<SignedCheckpoint, RoomError> {
    let (cp, note) = room.audit().checkpoint().await?;
    Ok(SignedCheckpoint {
        size: cp.size,
        root: B64.encode(cp.root),
        note,
    })
}
