//! The coordinating room's side of a partitioned run: it plans the partitions (ranges of
//! entities, so runs of the sealed file's chunks), issues a spec and a token for each, releases
//! keys while the engine runs them, then checks every answer and merges the partials in
//! partition order. It accepts exactly one authentic partial per planned partition: answers
//! with a bad MAC (forged), for another run or another spec, and second copies (a retried or
//! duplicated attempt) are counted and dropped. The merged partial is what a local run of the
//! same job computes, exactly; the room then releases it as it releases a local run's.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::engine::{Engine, Task};
use super::envelope::{Envelope, Status};
use super::key_release::{KeyServer, RunSecrets, random32};
use super::spec::{CONTRACT_VERSION, PartitionSpec, TableChunks};
use crate::data_at_rest::stream::SealedSource;
use crate::guest_boundary::executor::{Partial, Partition, partitions};
use crate::guest_boundary::{Outcome, RunContext, VettedModule, partial_wire};
use crate::keys::RoomKeys;

/// Entities per partition unless the room's engine settings say otherwise.
pub const DEFAULT_PARTITION_ENTITIES: u32 = 65_536;

/// Where and how a room runs partitions elsewhere (`[engine]` in room.toml, less the engine).
#[derive(Debug, Clone)]
pub struct Placement {
    /// Entities per partition.
    pub partition_entities: u32,
    /// Where the key-release listener binds, `host:port` (port 0 picks one).
    pub listen: String,
    /// The host workers reach the coordinator at (default: the address bound).
    pub advertise: Option<String>,
    /// A directory every worker can read, where the coordinator stages the module.
    pub work_dir: PathBuf,
    /// Threads each worker uses.
    pub worker_threads: u32,
    /// What a partition without an authentic partial does to the run.
    pub on_refused: OnRefused,
}

/// A run to partition.
pub struct RemoteRun<'a> {
    /// The run's id (the job's).
    pub run: &'a str,
    /// The sealed dataset, opened.
    pub source: &'a SealedSource,
    /// Where workers read it.
    pub dataset_location: &'a crate::data_at_rest::blob::Blob,
    /// The module.
    pub module: &'a VettedModule,
    /// The run's context (made against the dataset's shape): limits, parameters, keys.
    pub ctx: &'a RunContext,
    /// The room's keys (the coordinator's).
    pub room: &'a RoomKeys,
}

/// What collecting a run's answers found (for the bank: never partner-visible).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Partitions planned.
    pub planned: u32,
    /// Partials accepted (one per partition at most).
    pub accepted: u32,
    /// Authentic second copies dropped.
    pub duplicates: u32,
    /// Answers refused: not an envelope, a bad MAC, another run's or another spec's.
    pub rejected: u32,
    /// Authentic refusals and unauthenticated claims, by partition: (partition, reason).
    pub refusals: Vec<(u32, String)>,
    /// Key releases made, by partition: (partition, releases).
    pub releases: Vec<(u32, u32)>,
    /// Customers run again one per partition after their partition was refused.
    pub split: u32,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let releases: u32 = self.releases.iter().map(|(_, n)| n).sum();
        let retried: Vec<String> = self
            .releases
            .iter()
            .filter(|(_, n)| *n > 1)
            .map(|(p, n)| format!("{p} ({n})"))
            .collect();
        write!(
            f,
            "partitions elsewhere: {} planned, {} partials accepted, {} duplicates dropped, {} answers refused; {releases} key releases",
            self.planned, self.accepted, self.duplicates, self.rejected
        )?;
        if !retried.is_empty() {
            write!(f, ", more than one for partition {}", retried.join(", "))?;
        }
        if self.split > 0 {
            write!(f, "; {} customers run again one per partition", self.split)?;
        }
        for (partition, why) in self.refusals.iter().take(3) {
            write!(f, "; partition {partition} refused: {why}")?;
        }
        Ok(())
    }
}

/// The trap kind of a customer dropped because its partition was refused (by the bank's
/// `on_refused_partition = "split"`).
pub const PARTITION_REFUSED: &str = "partition refused";

/// What a coordinator does with a partition that got no authentic partial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRefused {
    /// The run fails (nothing is released; the charge stays).
    #[default]
    Fail,
    /// Its customers run again one per partition, and those whose partition is refused again
    /// are dropped, as units that failed.
    Split,
}

/// Why a partitioned run has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The run could not start (a listener, the staging directory, the randomness).
    #[error("the partitioned run could not start: {0}")]
    Setup(String),
    /// The engine failed as a whole.
    #[error("the engine failed: {0}")]
    Engine(String),
    /// Partitions came back without an authentic partial.
    #[error("{missing} of {planned} partitions have no partial: {detail}")]
    Missing {
        /// Partitions with no partial.
        missing: u32,
        /// Partitions planned.
        planned: u32,
        /// The first refusals, or what is missing.
        detail: String,
    },
}

/// A planned partition: its spec and the token that releases its key.
pub struct Planned {
    /// The partition.
    pub partition: Partition,
    /// Its spec.
    pub spec: PartitionSpec,
    /// Its spec's digest.
    pub digest: [u8; 32],
    /// Its token.
    pub token: Zeroizing<[u8; 32]>,
}

/// Checks answers against a run's plan and keeps one partial per partition.
pub struct Collector<'a> {
    planned: &'a [Planned],
    secrets: &'a RunSecrets,
    ctx: &'a RunContext,
    partials: Vec<Option<Partial>>,
    tally: Tally,
}

impl<'a> Collector<'a> {
    /// A collector for `planned`, whose MAC keys derive from `secrets`.
    pub fn new(planned: &'a [Planned], secrets: &'a RunSecrets, ctx: &'a RunContext) -> Self {
        Collector {
            planned,
            secrets,
            ctx,
            partials: (0..planned.len()).map(|_| None).collect(),
            tally: Tally {
                planned: planned.len() as u32,
                ..Tally::default()
            },
        }
    }

    /// Takes one answer.
    pub fn take(&mut self, bytes: &[u8]) {
        let Ok(envelope) = Envelope::decode(bytes) else {
            self.tally.rejected += 1;
            return;
        };
        let Some(at) = self.planned.iter().position(|p| p.digest == envelope.spec) else {
            // Another run's, or a spec this run never issued.
            self.tally.rejected += 1;
            return;
        };
        let planned = &self.planned[at];
        let key = self.secrets.partition_key(&planned.digest);
        if !envelope.authentic(&key) {
            if envelope.status == Status::Refused && envelope.mac.is_none() {
                // A refusal made before the worker had its key: a claim, kept for the bank.
                self.tally.refusals.push((
                    planned.spec.partition,
                    format!(
                        "(unauthenticated) {}",
                        String::from_utf8_lossy(&envelope.payload)
                    ),
                ));
            } else {
                self.tally.rejected += 1;
            }
            return;
        }
        match envelope.status {
            Status::Refused => self.tally.refusals.push((
                planned.spec.partition,
                String::from_utf8_lossy(&envelope.payload).into_owned(),
            )),
            Status::Partial => {
                if self.partials[at].is_some() {
                    self.tally.duplicates += 1;
                    return;
                }
                let decoded = partial_wire::decode(
                    &envelope.payload,
                    &self.ctx.manifest,
                    self.ctx.limits.max_output_bytes,
                );
                let expected = u64::from(planned.partition.end - planned.partition.first);
                match decoded {
                    Ok(partial) if partial.units == expected => {
                        self.partials[at] = Some(partial);
                        self.tally.accepted += 1;
                    }
                    Ok(partial) => self.tally.refusals.push((
                        planned.spec.partition,
                        format!(
                            "a partial of {} units for {expected} customers",
                            partial.units
                        ),
                    )),
                    Err(e) => self
                        .tally
                        .refusals
                        .push((planned.spec.partition, e.to_string())),
                }
            }
        }
    }

    /// The tally so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The partials accepted, by planned partition (`None`: no authentic partial), and the
    /// tally.
    pub fn into_parts(self) -> (Vec<Option<Partial>>, Tally) {
        (self.partials, self.tally)
    }

    /// The merged partial, in partition order, if every partition has one.
    pub fn finish(self) -> (Result<Partial, RemoteError>, Tally) {
        let planned = self.planned.len() as u32;
        let missing: Vec<u32> = self
            .partials
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_none())
            .map(|(i, _)| i as u32)
            .collect();
        if !missing.is_empty() {
            let mut detail: Vec<String> = self
                .tally
                .refusals
                .iter()
                .filter(|(p, _)| missing.contains(p))
                .take(3)
                .map(|(p, why)| format!("partition {p}: {why}"))
                .collect();
            if detail.is_empty() {
                detail.push(format!(
                    "no answer for partition{} {}",
                    if missing.len() == 1 { "" } else { "s" },
                    missing
                        .iter()
                        .take(8)
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            return (
                Err(RemoteError::Missing {
                    missing: missing.len() as u32,
                    planned,
                    detail: detail.join("; "),
                }),
                self.tally,
            );
        }
        let mut total = Partial::new(&self.ctx.manifest, self.ctx.limits.max_output_bytes);
        for partial in self.partials.into_iter().flatten() {
            total.merge(partial);
        }
        (Ok(total), self.tally)
    }
}

/// Plans the partitions of `run`: a spec and a token each.
pub fn plan(
    run: &RemoteRun<'_>,
    placement: &Placement,
    coordinator: &str,
    module_location: &Path,
) -> Result<Vec<Planned>, RemoteError> {
    let span = run.source.shape().span.clone();
    let parts = partitions(span, placement.partition_entities.max(1));
    plan_partitions(run, placement, coordinator, module_location, &parts, 0)
}

/// Specs and tokens for `parts`, numbered from `first_number`.
fn plan_partitions(
    run: &RemoteRun<'_>,
    placement: &Placement,
    coordinator: &str,
    module_location: &Path,
    parts: &[Partition],
    first_number: u32,
) -> Result<Vec<Planned>, RemoteError> {
    // Workers run elsewhere, in directories of their own: locations are absolute.
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (dataset, storage) = match run.dataset_location {
        crate::data_at_rest::blob::Blob::File(path) => (absolute(path).display().to_string(), None),
        object => match object.location() {
            Some((storage, key)) => (key.to_string(), Some(storage.clone())),
            None => {
                return Err(RemoteError::Setup(format!(
                    "{}: an object outside the room's storage, which workers cannot find",
                    object.name()
                )));
            }
        },
    };
    let module_location = absolute(module_location);
    parts
        .iter()
        .copied()
        .enumerate()
        .map(|(i, partition)| {
            let spec = PartitionSpec {
                contract: CONTRACT_VERSION,
                run: run.run.to_string(),
                partition: first_number + i as u32,
                first_entity: partition.first,
                end_entity: partition.end,
                dataset: dataset.clone(),
                storage: storage.clone(),
                dataset_sha256: run.source.header_sha256().to_string(),
                chunks: run
                    .source
                    .chunks_for(partition.entities())
                    .into_iter()
                    .map(|(table, chunks)| TableChunks { table, chunks })
                    .collect(),
                module: module_location.display().to_string(),
                module_sha256: run.module.hash_hex(),
                limits: run.ctx.limits.clone(),
                parameters: run.ctx.parameters.clone(),
                batched: run.ctx.batched,
                threads: placement.worker_threads.max(1),
                coordinator: coordinator.to_string(),
                room: run.room.public.encode(),
            };
            Ok(Planned {
                partition,
                digest: spec.digest(),
                spec,
                token: Zeroizing::new(random32().map_err(RemoteError::Setup)?),
            })
        })
        .collect()
}

/// The run's secrets: the dataset key, the guest randomness, a fresh MAC secret.
pub fn secrets(run: &RemoteRun<'_>) -> Result<RunSecrets, RemoteError> {
    Ok(RunSecrets {
        data_key: run
            .source
            .data_key(run.room)
            .map_err(|e| RemoteError::Setup(e.to_string()))?,
        guest_random: Zeroizing::new(run.ctx.keys.guest_random),
        guest_insecure_seed: run.ctx.keys.guest_insecure_seed,
        mac_secret: Zeroizing::new(random32().map_err(RemoteError::Setup)?),
    })
}

/// Writes the module where workers read it (`WORK/modules/SHA256.wasm`), unless it is there.
pub fn stage_module(module: &VettedModule, work_dir: &Path) -> Result<PathBuf, RemoteError> {
    let setup = |e: std::io::Error| RemoteError::Setup(format!("{}: {e}", work_dir.display()));
    let dir = work_dir.join("modules");
    std::fs::create_dir_all(&dir).map_err(setup)?;
    let path = dir.join(format!("{}.wasm", module.hash_hex()));
    if std::fs::read(&path).is_ok_and(|b| b == module.bytes) {
        return Ok(path);
    }
    let mut staged = tempfile::NamedTempFile::new_in(&dir).map_err(setup)?;
    std::io::Write::write_all(&mut staged, &module.bytes).map_err(setup)?;
    staged.persist(&path).map_err(|e| setup(e.error))?;
    Ok(path)
}

/// Runs `run`'s partitions on `engine` and returns the merged partial, with the tally.
pub fn run(
    run: &RemoteRun<'_>,
    placement: &Placement,
    engine: &dyn Engine,
) -> (Result<Partial, RemoteError>, Tally) {
    let failed = |e: RemoteError| (Err(e), Tally::default());
    let module_location = match stage_module(run.module, &placement.work_dir) {
        Ok(path) => path,
        Err(e) => return failed(e),
    };
    let secrets = match secrets(run) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    // The key server holds its own copy of the secrets; the collector derives MAC keys from
    // these.
    let served = RunSecrets {
        data_key: secrets.data_key.clone(),
        guest_random: secrets.guest_random.clone(),
        guest_insecure_seed: secrets.guest_insecure_seed,
        mac_secret: secrets.mac_secret.clone(),
    };
    // The listener binds first so that the specs can name its port.
    let server = match KeyServer::start(&placement.listen, run.room, served) {
        Ok(s) => s,
        Err(e) => return failed(RemoteError::Setup(e)),
    };
    let coordinator = match &placement.advertise {
        Some(host) => format!("{host}:{}", server.addr().port()),
        None => server.addr().to_string(),
    };
    let planned = match plan(run, placement, &coordinator, &module_location) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    if planned.is_empty() {
        // No customers: nothing to hand out.
        return Collector::new(&planned, &secrets, run.ctx).finish();
    }
    let round = |planned: &[Planned]| -> Result<Vec<Vec<u8>>, String> {
        server.grant(
            planned
                .iter()
                .map(|p| (*p.token, p.spec.partition, p.digest))
                .collect(),
        );
        let tasks: Vec<Task> = planned
            .iter()
            .map(|p| Task {
                partition: p.spec.partition,
                spec: p.spec.to_json(),
                token: Zeroizing::new(hex::encode(*p.token)),
            })
            .collect();
        engine.run(run.run, &tasks, &module_location)
    };
    let answers = round(&planned);
    let mut collector = Collector::new(&planned, &secrets, run.ctx);
    let answers = match answers {
        Ok(a) => a,
        Err(e) => {
            let mut tally = collector.tally().clone();
            tally.releases = server.releases();
            return (Err(RemoteError::Engine(e)), tally);
        }
    };
    for answer in &answers {
        collector.take(answer);
    }
    fail::fail_point!("remote.after_collect");
    if placement.on_refused == OnRefused::Fail {
        let (merged, mut tally) = collector.finish();
        tally.releases = server.releases();
        return (merged, tally);
    }

    // Split: each partition without a partial runs again one customer per partition; a
    // customer whose own partition still has none is dropped, as a unit that failed.
    let (partials, mut tally) = collector.into_parts();
    let missing: Vec<Partition> = planned
        .iter()
        .zip(&partials)
        .filter(|(_, p)| p.is_none())
        .map(|(p, _)| p.partition)
        .collect();
    let singles: Vec<Partition> = missing
        .iter()
        .flat_map(|p| p.entities())
        .map(|e| Partition {
            first: e,
            end: e + 1,
        })
        .collect();
    let mut total = Partial::new(&run.ctx.manifest, run.ctx.limits.max_output_bytes);
    for partial in partials.into_iter().flatten() {
        total.merge(partial);
    }
    if !singles.is_empty() {
        let again = match plan_partitions(
            run,
            placement,
            &coordinator,
            &module_location,
            &singles,
            planned.len() as u32,
        ) {
            Ok(p) => p,
            Err(e) => return (Err(e), tally),
        };
        let answers = match round(&again) {
            Ok(a) => a,
            Err(e) => {
                tally.releases = server.releases();
                return (Err(RemoteError::Engine(e)), tally);
            }
        };
        let mut collector = Collector::new(&again, &secrets, run.ctx);
        for answer in &answers {
            collector.take(answer);
        }
        let (singles_done, split_tally) = collector.into_parts();
        for (planned, partial) in again.iter().zip(singles_done) {
            match partial {
                Some(partial) => total.merge(partial),
                None => {
                    let why = split_tally
                        .refusals
                        .iter()
                        .find(|(p, _)| *p == planned.spec.partition)
                        .map_or("no answer", |(_, why)| why.as_str());
                    let mut dropped =
                        Partial::new(&run.ctx.manifest, run.ctx.limits.max_output_bytes);
                    dropped.units = 1;
                    dropped.fail(
                        planned.partition.first,
                        Outcome::Trap(PARTITION_REFUSED.into()),
                        format!("its partition was refused: {why}"),
                    );
                    total.merge(dropped);
                }
            }
        }
        tally.accepted += split_tally.accepted;
        tally.duplicates += split_tally.duplicates;
        tally.rejected += split_tally.rejected;
        tally.refusals.extend(split_tally.refusals);
        tally.split = singles.len() as u32;
    }
    tally.releases = server.releases();
    (Ok(total), tally)
}
