//! A partition spec: everything a worker needs to run one partition, except secrets. It travels
//! through the engine (a Spark row, a process's stdin), so it holds nothing that opens data: the
//! dataset key and the run's guest randomness come from the coordinator, wrapped to the worker
//! (see [`super::key_release`]).
//!
//! Its canonical bytes are its JSON as [`PartitionSpec::to_json`] writes it; their SHA-256 (the
//! spec's digest) is what a worker's answer is bound to, so an answer names exactly one run,
//! partition, entity range, chunk range, dataset, module, limits and parameters.

use serde::{Deserialize, Serialize};

use crate::guest_boundary::limits::RunLimits;

/// The version of the worker contract; a worker refuses any other, in-band.
pub const CONTRACT_VERSION: u32 = 1;

/// Longest spec a worker reads, bytes (its parameters and chunk list are bounded well below).
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// Why a spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Written for another version of the worker contract.
    #[error(
        "the spec is for worker contract version {0}; this worker speaks version {CONTRACT_VERSION} (the coordinator and its workers must run the same release)"
    )]
    Version(u32),
    /// Not a spec.
    #[error("{0}")]
    Invalid(String),
}

/// The chunks of one table a partition reads: `first..=last` in the file's chunk order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableChunks {
    /// The table.
    pub table: String,
    /// Its chunks holding the partition's rows, in file order (empty if it has none).
    pub chunks: Vec<usize>,
}

/// One partition of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// The worker contract's version ([`CONTRACT_VERSION`]).
    pub contract: u32,
    /// The run (the job's id).
    pub run: String,
    /// The partition's number in the run, from 0.
    pub partition: u32,
    /// The first entity ordinal.
    pub first_entity: u32,
    /// One past the last.
    pub end_entity: u32,
    /// Where the sealed dataset lies: a path every worker can read or, with `storage`, the
    /// object's name in that storage.
    pub dataset: String,
    /// The object storage holding the dataset (settings only: a worker reads with the
    /// credentials of its own environment); absent for a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::data_at_rest::storage::StorageConfig>,
    /// SHA-256 of the dataset's header, hex: its identity. Every chunk authenticates against it.
    pub dataset_sha256: String,
    /// The chunks the partition reads, per table.
    pub chunks: Vec<TableChunks>,
    /// Where the module lies (a path every worker can read; an engine may ship it and name its
    /// own copy with `strongroom worker --module`).
    pub module: String,
    /// SHA-256 of the module's bytes, hex.
    pub module_sha256: String,
    /// The run's limits.
    pub limits: RunLimits,
    /// The job's parameters, sorted by name (for a SQL job, the compiled plan alone).
    pub parameters: Vec<(String, String)>,
    /// Whether the partition runs batched (a module the bank reviewed).
    pub batched: bool,
    /// Threads the worker may use.
    pub threads: u32,
    /// The coordinator's key-release address, `host:port`.
    pub coordinator: String,
    /// The room's public keys (`room.pub`): the worker talks only to the holder of these.
    pub room: String,
}

impl PartitionSpec {
    /// The spec's canonical bytes.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a spec, refusing oversized input, another contract version (named as such,
    /// before any other field is read) and unknown fields.
    pub fn parse(text: &str) -> Result<PartitionSpec, SpecError> {
        if text.len() > MAX_SPEC_BYTES {
            return Err(SpecError::Invalid(format!(
                "the spec is over {MAX_SPEC_BYTES} bytes"
            )));
        }
        #[derive(Deserialize)]
        struct Version {
            contract: u32,
        }
        let version: Version = serde_json::from_str(text)
            .map_err(|e| SpecError::Invalid(format!("not a partition spec: {e}")))?;
        if version.contract != CONTRACT_VERSION {
            return Err(SpecError::Version(version.contract));
        }
        let spec: PartitionSpec = serde_json::from_str(text)
            .map_err(|e| SpecError::Invalid(format!("not a partition spec: {e}")))?;
        if spec.first_entity > spec.end_entity {
            return Err(SpecError::Invalid(
                "the spec's entity range is reversed".into(),
            ));
        }
        Ok(spec)
    }

    /// SHA-256 of the canonical bytes.
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(
            ring::digest::digest(&ring::digest::SHA256, self.to_json().as_bytes()).as_ref(),
        );
        out
    }
}
