//! `strongroom worker`: runs one partition of a run, given its spec and token, and answers with
//! an envelope. It uses the code a local run uses (the same reader, the same sandbox, the same
//! partitions inside its range), so the partials it returns merge into exactly the local result.
//!
//! A worker never touches the ledger, the log or the noise, and writes nothing but its answer:
//! running it twice on the same spec gives the same partial. How it ends tells the engine what
//! to do:
//! - [`Answer::Partial`]: the partial, MACed (exit status 0);
//! - [`Answer::Refused`]: a failure no retry changes (a chunk that does not authenticate, another
//!   contract version, a token refused), reported in-band (exit status [`EXIT_REFUSED`]);
//! - [`Answer::Transient`]: anything a retry may cure (the coordinator unreachable, a read that
//!   failed, a host fault); no answer, exit status [`EXIT_TRANSIENT`], and the engine retries.

use std::path::Path;
use std::sync::Arc;

use strongroom_contract::manifest::Mode;
use strongroom_verify::room_keys::RoomPublicKeys;

use super::envelope::{Envelope, Status};
use super::key_release::{self, ReleaseError, Released};
use super::spec::{PartitionSpec, TableChunks};
use crate::data_at_rest::open::OpenError;
use crate::data_at_rest::stream::{DEFAULT_WINDOW_ENTITIES, SealedSource};
use crate::guest_boundary::cache::ModuleCache;
use crate::guest_boundary::executor::Partial;
use crate::guest_boundary::partial_wire;
use crate::guest_boundary::run_keys::RunKeys;
use crate::guest_boundary::sandbox::EngineSettings;
use crate::guest_boundary::{RunContext, Sandbox, vet};

/// Exit status of a worker that refused its partition (its answer says why).
pub const EXIT_REFUSED: i32 = 3;
/// Exit status of a worker that failed in a way a retry may cure (no answer).
pub const EXIT_TRANSIENT: i32 = 75;
/// Largest module a worker reads, bytes.
const MAX_MODULE_READ: u64 = 256 << 20;

/// How a worker ended.
#[derive(Debug)]
pub enum Answer {
    /// The partial, in an envelope.
    Partial(Vec<u8>),
    /// A refusal, in an envelope.
    Refused(Vec<u8>, String),
    /// No answer: retry.
    Transient(String),
}

impl Answer {
    /// The process exit status for this answer.
    pub fn exit_status(&self) -> i32 {
        match self {
            Answer::Partial(_) => 0,
            Answer::Refused(..) => EXIT_REFUSED,
            Answer::Transient(_) => EXIT_TRANSIENT,
        }
    }
}

/// Why the worker stopped short, before it is put in an envelope.
enum Stop {
    Refused(String),
    Transient(String),
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// Runs the partition `spec_text` describes, obtaining its secrets with `token_hex`; `module`
/// names a local copy of the module in place of the spec's location (an engine that ships it).
pub fn run(spec_text: &str, token_hex: &str, module: Option<&Path>) -> Answer {
    let digest_of_text = sha256(spec_text.as_bytes());
    let spec = match PartitionSpec::parse(spec_text.trim_end()) {
        Ok(spec) => spec,
        Err(e) => {
            let why = e.to_string();
            let envelope = Envelope::new(
                Status::Refused,
                digest_of_text,
                0,
                why.clone().into_bytes(),
                None,
            );
            return Answer::Refused(envelope.encode(), why);
        }
    };
    let digest = spec.digest();
    let mut released: Option<Released> = None;
    match run_spec(&spec, &digest, token_hex, module, &mut released) {
        Ok(partial) => {
            let (attempt, key) = match &released {
                Some(r) => (r.attempt, Some(&*r.partition_key)),
                None => (0, None),
            };
            Answer::Partial(Envelope::new(Status::Partial, digest, attempt, partial, key).encode())
        }
        Err(Stop::Refused(why)) => {
            let (attempt, key) = match &released {
                Some(r) => (r.attempt, Some(&*r.partition_key)),
                None => (0, None),
            };
            let envelope = Envelope::new(
                Status::Refused,
                digest,
                attempt,
                why.clone().into_bytes(),
                key,
            );
            Answer::Refused(envelope.encode(), why)
        }
        Err(Stop::Transient(why)) => Answer::Transient(why),
    }
}

fn run_spec(
    spec: &PartitionSpec,
    digest: &[u8; 32],
    token_hex: &str,
    module: Option<&Path>,
    released: &mut Option<Released>,
) -> Result<Vec<u8>, Stop> {
    let refused = |m: String| Stop::Refused(m);
    let token: [u8; 32] = hex::decode(token_hex.trim())
        .ok()
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| refused("the token is not 32 bytes of hex".into()))?;
    let room = RoomPublicKeys::parse(&spec.room)
        .map_err(|e| refused(format!("the spec's room key: {e}")))?;

    // The module, checked against the spec before anything else is asked for.
    let module_path = module.unwrap_or(Path::new(&spec.module));
    let bytes = read_bounded(module_path).map_err(Stop::Transient)?;
    if hex::encode(sha256(&bytes)) != spec.module_sha256 {
        return Err(refused(format!(
            "{}: not the module the spec names (its SHA-256 differs)",
            module_path.display()
        )));
    }
    let vetted = vet(&bytes, bytes.len()).map_err(|e| refused(format!("the module: {e}")))?;
    drop(bytes);
    if vetted.manifest.mode != Mode::Isolated {
        return Err(refused("only isolated-mode runs are partitioned".into()));
    }

    // The secrets, released to this attempt alone.
    let secrets = key_release::request(&spec.coordinator, &room.sealing, digest, &token).map_err(
        |e| match e {
            ReleaseError::Unreachable(m) => Stop::Transient(format!("key release: {m}")),
            ReleaseError::Refused(m) => refused(format!("key release refused: {m}")),
        },
    )?;
    let data_key = secrets.data_key.clone();
    let keys = RunKeys {
        ordinals: [0; 32],
        guest_random: *secrets.guest_random,
        guest_insecure_seed: secrets.guest_insecure_seed,
    };
    *released = Some(secrets);

    // The partition's rows: its chunks alone, each authenticated under the released key.
    let opened = |e: OpenError| match e {
        OpenError::Io(m) => Stop::Transient(m),
        other => refused(format!("the dataset {}: {other}", spec.dataset)),
    };
    let blob = match &spec.storage {
        None => crate::data_at_rest::blob::Blob::File(std::path::PathBuf::from(&spec.dataset)),
        Some(storage) => {
            storage
                .open()
                .and_then(|s| s.blob(&spec.dataset))
                .map_err(|e| match e {
                    crate::data_at_rest::storage::StorageError::Io(e) => {
                        Stop::Transient(format!("the dataset {}: {e}", spec.dataset))
                    }
                    other => refused(format!("the dataset {}: {other}", spec.dataset)),
                })?
        }
    };
    let source =
        SealedSource::open_with_key(blob, &room.fingerprint(), &data_key).map_err(opened)?;
    if source.header_sha256() != spec.dataset_sha256 {
        return Err(refused(format!(
            "{}: not the dataset the spec names (its header's SHA-256 differs)",
            spec.dataset
        )));
    }
    let range = spec.first_entity..spec.end_entity;
    let chunks: Vec<TableChunks> = source
        .chunks_for(range.clone())
        .into_iter()
        .map(|(table, chunks)| TableChunks { table, chunks })
        .collect();
    if chunks != spec.chunks {
        return Err(refused(
            "the spec's chunks are not the chunks that hold its entities".into(),
        ));
    }
    let windows = source
        .range_windows(range, DEFAULT_WINDOW_ENTITIES)
        .map_err(opened)?;

    // The run, as a local run makes it.
    let ctx = RunContext::new(
        Arc::clone(source.shape()),
        vetted.manifest.clone(),
        Mode::Isolated,
        spec.limits.clone(),
        [0; 32],
    )
    .map_err(|e| refused(e.to_string()))?;
    let mut ctx = match spec.parameters.as_slice() {
        [(name, plan)] if name == strongroom_sql::PLAN_PARAMETER => ctx.with_sql_plan(plan.clone()),
        parameters => ctx.with_parameters(parameters).map_err(refused)?,
    }
    .with_batched(spec.batched);
    ctx.keys = keys;
    let sandbox = Sandbox::new(&EngineSettings::default())
        .map_err(|e| Stop::Transient(format!("the sandbox: {e:#}")))?;
    let manifest = vetted.manifest.clone();
    // Compiled once per engine application: beside the module's copy (the engine's own directory
    // for the run, or the room's staging directory), authenticated as the room's cache is.
    let cache = module_path
        .parent()
        .and_then(|dir| ModuleCache::open(&dir.join("strongroom-compiled")).ok());
    let prepared = sandbox
        .prepare(vetted, cache.as_ref())
        .map_err(|e| Stop::Transient(format!("compiling the module: {e:#}")))?;
    if spec.batched && !prepared.prepare_batched(&sandbox) {
        return Err(Stop::Transient(
            "compiling the module for batched runs".into(),
        ));
    }
    // Window by window, as a local run reads: memory holds one window's rows, not the
    // partition's.
    let mut partial = Partial::new(&manifest, ctx.limits.max_output_bytes);
    for window in windows {
        let window = Arc::new(RunContext {
            dataset: Arc::new(window.map_err(opened)?),
            ..RunContext::clone(&ctx)
        });
        partial.merge(
            sandbox
                .run_range(&prepared, &window, spec.threads.max(1) as usize)
                .map_err(|e| Stop::Transient(e.to_string()))?,
        );
    }
    Ok(partial_wire::encode(&partial, &manifest))
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_MODULE_READ {
        return Err(format!("{}: over {MAX_MODULE_READ} bytes", path.display()));
    }
    std::fs::read(path).map_err(io)
}
