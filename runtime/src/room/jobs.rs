//! A job in a room, from submission to release: vet, admit, charge the budget (durably, before
//! anything runs), run in the sandbox, pass the output gate, sign a receipt, record.

use std::sync::Arc;

use crate::params;
use crate::room::db::{OptionalExtension, SqlError};
use ring::rand::{SecureRandom, SystemRandom};

use super::policy::{Policy, ReleaseMode};
use super::{Room, RoomError, db};
use crate::audit_log::log::Appended;
use crate::data_at_rest::open::OpenError;
use crate::data_at_rest::stream::{DEFAULT_WINDOW_ENTITIES, SealedSource};
use crate::dataset::Dataset;
use crate::dataset::audience::AudienceList;
use crate::group_commit::Pending;
use crate::guest_boundary::executor::LocalPool;
use crate::guest_boundary::vetting::DEFAULT_MAX_MODULE_BYTES;
use crate::guest_boundary::{PreparedModule, RunContext, RunReport, Sandbox, VettingError, vet};
use crate::output_gate::ledger::{Charge, LedgerError, PrivacyLedger};
use crate::output_gate::mechanism::{self, NoisePlan, format_nano};
use crate::output_gate::release::{self, ReleasedTable};
use crate::output_gate::sampling::SystemRandomBytes;
use crate::progress::Progress;
use serde_json::json;
use strongroom_contract::manifest::{Domain, Manifest, Mode};
use strongroom_verify::event::{AudienceSummary, Event, ResultFacts, SqlHashes};
use strongroom_verify::receipt::{LogPosition, Receipt};

/// A partner's request to run a module on a dataset.
pub struct JobRequest<'a> {
    /// The partner asking.
    pub partner: &'a str,
    /// The module's bytes (for a SQL job, the SQL engine's).
    pub module: &'a [u8],
    /// A SQL job's query text: the room compiles it and runs the engine with the plan.
    pub sql: Option<String>,
    /// The data: decrypted in memory, or a sealed file read while the run goes.
    pub dataset: JobData,
    /// SHA-256 identifying the dataset's content, hex.
    pub dataset_sha256: String,
    /// Where the data came from, for the log (e.g. "sealed by bigbank (ed25519 ...)").
    pub dataset_origin: String,
    /// The party that sealed the dataset: its privacy domain unless the policy names one.
    pub sealed_by: String,
    /// Privacy cost in the policy mechanism's unit, nano (rho for Gaussian, epsilon for Laplace).
    pub cost_nano: u64,
    /// Worker threads for isolated runs.
    pub threads: usize,
    /// The partner's audience list to match against the bank's identifiers, if the job uses one.
    pub audience: Option<AudienceInput>,
    /// The job's id when a queue assigned one already; `None` makes a fresh one.
    pub job_id: Option<String>,
    /// The partner's parameters for the module (name, value); see
    /// [`crate::guest_boundary::check_parameters`].
    pub parameters: Vec<(String, String)>,
    /// Where the run reports how far it has come (runs read window by window), for the bank.
    pub progress: Option<Arc<Progress>>,
}

/// Loads a sealed dataset whole, for a run that needs it all at once (table mode).
pub type LoadWhole = Arc<dyn Fn() -> Result<Arc<Dataset>, OpenError> + Send + Sync>;

/// The data a job runs on.
#[derive(Clone)]
pub enum JobData {
    /// Decrypted in memory, whole.
    Loaded(Arc<Dataset>),
    /// A sealed file: an isolated-mode run reads it window by window as it goes, holding only
    /// a window's rows; a table-mode run loads it whole first, with `load`.
    Sealed {
        /// The opened file.
        source: Arc<SealedSource>,
        /// The dataset's tables and columns (with the audience column once matched).
        shape: Arc<Dataset>,
        /// Loads the whole dataset.
        load: LoadWhole,
    },
}

impl JobData {
    /// A sealed file read window by window (`load` reads it whole when a run needs that).
    pub fn sealed(source: Arc<SealedSource>, load: LoadWhole) -> JobData {
        JobData::Sealed {
            shape: Arc::clone(source.shape()),
            source,
            load,
        }
    }

    /// The dataset's name, tables, columns and entity count (and, loaded, its rows).
    pub fn shape(&self) -> &Arc<Dataset> {
        match self {
            JobData::Loaded(dataset) => dataset,
            JobData::Sealed { shape, .. } => shape,
        }
    }
}

impl From<Arc<Dataset>> for JobData {
    fn from(dataset: Arc<Dataset>) -> Self {
        JobData::Loaded(dataset)
    }
}

impl std::fmt::Debug for JobData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobData::Loaded(d) => write!(f, "Loaded({})", d.name),
            JobData::Sealed { source, .. } => write!(f, "Sealed({})", source.header_sha256()),
        }
    }
}

/// A partner's sealed audience list, opened in the room, for one job.
#[derive(Debug, Clone)]
pub struct AudienceInput {
    /// The normalized list.
    pub list: Arc<AudienceList>,
    /// SHA-256 of the sealed list's header, hex: its identity in the log.
    pub sha256: String,
    /// The party named in the sealed list's signed header.
    pub sealed_by: String,
}

impl AudienceInput {
    /// Opens a list the partner sealed to this room: every chunk authenticated and decrypted in
    /// memory, identifiers normalized. The plaintext list is dropped once normalized.
    pub fn open(
        path: &std::path::Path,
        room: &Room,
        threads: usize,
    ) -> Result<AudienceInput, String> {
        let sealed = crate::data_at_rest::open::SealedFile::read(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if sealed.header.entities > crate::dataset::audience::MAX_LIST_ENTITIES {
            return Err(format!(
                "{}: the list holds {} people, over the limit of {}",
                path.display(),
                sealed.header.entities,
                crate::dataset::audience::MAX_LIST_ENTITIES
            ));
        }
        let dataset = sealed
            .open(room.keys(), threads)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let list =
            AudienceList::from_dataset(&dataset).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(AudienceInput {
            list: Arc::new(list),
            sha256: sealed.header_sha256(),
            sealed_by: sealed.header.sealed_by.name.clone(),
        })
    }
}

/// How a job ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Released to the partner.
    Released,
    /// Waiting for the bank to release it.
    Held,
    /// The bank decided not to release it.
    Withheld,
    /// The run did not complete; nothing is released.
    Failed,
}

impl JobStatus {
    fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Released => "released",
            JobStatus::Held => "held",
            JobStatus::Withheld => "withheld",
            JobStatus::Failed => "failed",
        }
    }
}

/// What a job produced.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// Job id.
    pub job_id: String,
    /// The partner's outcome code (see [`crate::guest_boundary::RunReport::partner_outcome`]):
    /// all a partner learns about the run itself.
    pub outcome: String,
    /// When the outcome became visible to the partner (RFC 3339), fixed before the run.
    pub release_at: String,
    /// Released, held or failed.
    pub status: JobStatus,
    /// The released table, if released.
    pub released: Option<ReleasedTable>,
    /// The signed receipt.
    pub receipt: String,
    /// Cost charged, nano-rho.
    pub charged_nano_rho: u64,
    /// Budget remaining, nano-rho.
    pub remaining_nano_rho: u64,
    /// For the bank only: failed units, trap text, guest error, stderr.
    pub bank_detail: Option<String>,
    /// How long the module ran (wall time), for the operator's measurements: never stored, and
    /// never shown to a partner.
    pub run_time: std::time::Duration,
    /// How long vetting and compiling the module took when this job was the first to run it
    /// here (zero when it was prepared already); for the operator's measurements, as
    /// `run_time`.
    pub prepare_time: std::time::Duration,
    /// For the bank only: isolation units that failed (their contributions were dropped).
    pub failed_units: u64,
}

/// Why a job was refused before it ran (nothing was charged) or could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The module or request does not meet the policy (refused before any charge).
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The budget does not cover the cost (refused before any charge).
    #[error(transparent)]
    Budget(#[from] LedgerError),
    /// Room trouble.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// Database trouble.
    #[error("room database: {0}")]
    Database(#[from] sqlx::Error),
    /// The dataset could not be read: before the charge (`job` is `None`, nothing charged) or
    /// while the run read it (the charge stands). Unless it is an I/O error, the file is at
    /// fault.
    #[error("the dataset could not be read: {error}")]
    Dataset {
        /// The job, when the failure came after its charge.
        job: Option<String>,
        /// What was wrong.
        error: OpenError,
    },
    /// The job failed after its charge (the charge stands): releasing, signing the receipt.
    #[error("job {job} failed after its charge: {reason}")]
    AfterCharge {
        /// The job.
        job: String,
        /// What failed.
        reason: String,
    },
}

impl From<crate::group_commit::WriteError> for JobError {
    fn from(e: crate::group_commit::WriteError) -> Self {
        JobError::Room(e.into())
    }
}

impl From<SqlError> for JobError {
    fn from(e: SqlError) -> Self {
        JobError::Room(e.into())
    }
}

/// Why a job was refused before its charge, or a decision on it could not be made. Each has a
/// stable code (`Refusal::code`), which the service reports with the words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The policy's end date passed.
    #[error("{0}")]
    PolicyExpired(String),
    /// The module failed vetting.
    #[error("{0}")]
    ModuleRefused(String),
    /// The policy does not allow the module's mode.
    #[error("{0}")]
    ModeNotAllowed(String),
    /// The module lets one entity reach more groups than the policy allows.
    #[error("{0}")]
    TooManyGroupsPerEntity(String),
    /// A metric has more groups than a release may hold.
    #[error("{0}")]
    TooManyGroups(String),
    /// The cost asked is below the policy's minimum.
    #[error("{0}")]
    CostBelowMinimum(String),
    /// No noise plan exists for this cost and these bounds.
    #[error("{0}")]
    NoisePlan(String),
    /// The policy does not allow audience matching.
    #[error("{0}")]
    AudienceNotAllowed(String),
    /// The audience list was sealed by another party.
    #[error("{0}")]
    AudienceNotTheirs(String),
    /// The audience list's size is outside the policy's bounds.
    #[error("{0}")]
    AudienceSize(String),
    /// The audience list shares no identifier with the dataset.
    #[error("{0}")]
    AudienceUnmatched(String),
    /// The module needs the bank's approval.
    #[error("{0}")]
    NotApproved(String),
    /// The bank rejected the module.
    #[error("{0}")]
    ModuleRejected(String),
    /// The module is approved, but not with these parameters.
    #[error("{0}")]
    ParametersNotApproved(String),
    /// The parameters do not fit the module.
    #[error("{0}")]
    BadParameters(String),
    /// The dataset does not have the tables and columns the module reads.
    #[error("{0}")]
    SchemaMismatch(String),
    /// No such job.
    #[error("{0}")]
    NoSuchJob(String),
    /// The job's result is not held (any more).
    #[error("{0}")]
    NotHeld(String),
    /// The room could not take the job now (randomness, compiling the module).
    #[error("{0}")]
    Unavailable(String),
    /// The policy does not let the partner send SQL.
    #[error("{0}")]
    SqlNotAllowed(String),
    /// A SQL job named a module other than the policy's SQL engine.
    #[error("{0}")]
    NotTheSqlEngine(String),
    /// The query does not compile (with its line and column).
    #[error("{0}")]
    SqlRefused(String),
    /// The policy allows only approved templates, and this query is not one.
    #[error("{0}")]
    TemplateNotApproved(String),
}

impl Refusal {
    /// The refusal's stable code, as the service reports it.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::PolicyExpired(_) => "policy_expired",
            Refusal::ModuleRefused(_) => "module_refused",
            Refusal::ModeNotAllowed(_) => "mode_not_allowed",
            Refusal::TooManyGroupsPerEntity(_) => "too_many_groups_per_entity",
            Refusal::TooManyGroups(_) => "too_many_groups",
            Refusal::CostBelowMinimum(_) => "cost_below_minimum",
            Refusal::NoisePlan(_) => "no_noise_plan",
            Refusal::AudienceNotAllowed(_) => "audience_not_allowed",
            Refusal::AudienceNotTheirs(_) => "audience_not_theirs",
            Refusal::AudienceSize(_) => "audience_size",
            Refusal::AudienceUnmatched(_) => "audience_unmatched",
            Refusal::NotApproved(_) => "not_approved",
            Refusal::ModuleRejected(_) => "module_rejected",
            Refusal::ParametersNotApproved(_) => "parameters_not_approved",
            Refusal::BadParameters(_) => "bad_parameters",
            Refusal::SchemaMismatch(_) => "schema_mismatch",
            Refusal::NoSuchJob(_) => "no_such_job",
            Refusal::NotHeld(_) => "not_held",
            Refusal::Unavailable(_) => "unavailable",
            Refusal::SqlNotAllowed(_) => "sql_not_allowed",
            Refusal::NotTheSqlEngine(_) => "not_the_sql_engine",
            Refusal::SqlRefused(_) => "sql_refused",
            Refusal::TemplateNotApproved(_) => "template_not_approved",
        }
    }
}

impl JobError {
    /// For a job refused before any charge, the refusal's stable code; `None` otherwise.
    pub fn refusal_code(&self) -> Option<&'static str> {
        match self {
            JobError::Refused(r) => Some(r.code()),
            JobError::Budget(LedgerError::Exhausted { .. }) => Some("budget_exhausted"),
            JobError::Budget(LedgerError::TooManyJobs { .. }) => Some("too_many_jobs"),
            JobError::Room(RoomError::NoPolicy { .. }) => Some("no_policy"),
            _ => None,
        }
    }
}

/// The decoded members of each metric's key domains.
pub fn domain_labels(manifest: &Manifest, dataset: &Dataset) -> Vec<Vec<Vec<String>>> {
    manifest
        .metrics
        .iter()
        .map(|m| {
            m.key
                .iter()
                .map(|d| match d {
                    Domain::Enumeration { members, .. } => members.clone(),
                    Domain::Column { table, column } => dataset
                        .table(table)
                        .and_then(|t| t.column(column))
                        .and_then(|c| c.dictionary.as_ref())
                        .map(|d| d.to_vec())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .collect()
}

/// Vets a module against a policy and plans its noise: everything a job checks before it is
/// charged. Also what `budget preview` shows.
pub fn plan_job(
    policy: &Policy,
    manifest: &Manifest,
    dataset: &Dataset,
    cost_nano: u64,
) -> Result<NoisePlan, JobError> {
    if !policy.modes.contains(&manifest.mode) {
        return Err(JobError::Refused(Refusal::ModeNotAllowed(format!(
            "module declares {} mode, which the policy for '{}' does not allow",
            manifest.mode, policy.partner
        ))));
    }
    if manifest.max_groups_per_entity > policy.max_groups_per_entity {
        return Err(JobError::Refused(Refusal::TooManyGroupsPerEntity(format!(
            "module lets one entity reach {} groups per metric; the policy allows at most {}",
            manifest.max_groups_per_entity, policy.max_groups_per_entity
        ))));
    }
    let labels = domain_labels(manifest, dataset);
    let counts: Vec<u64> = labels
        .iter()
        .map(|d| d.iter().fold(1u64, |a, p| a.saturating_mul(p.len() as u64)))
        .collect();
    for (m, &groups) in manifest.metrics.iter().zip(&counts) {
        if groups > release::MAX_GROUPS_PER_METRIC {
            return Err(JobError::Refused(Refusal::TooManyGroups(format!(
                "metric '{}' has {groups} groups, more than a release may hold",
                m.name
            ))));
        }
    }
    let charged = mechanism::ledger_cost(policy.mechanism, cost_nano);
    if policy.mechanism != mechanism::Mechanism::None && charged < policy.min_cost_nano_rho {
        return Err(JobError::Refused(Refusal::CostBelowMinimum(format!(
            "a job costs at least rho {} under the policy for '{}' (asked: rho {})",
            format_nano(policy.min_cost_nano_rho),
            policy.partner,
            format_nano(charged)
        ))));
    }
    mechanism::plan(
        manifest,
        policy.mechanism,
        cost_nano,
        policy.max_groups_per_entity,
        &counts,
    )
    .map_err(|e| JobError::Refused(Refusal::NoisePlan(e.to_string())))
}

/// A fresh job id: time and 64 random bits.
pub fn new_job_id() -> String {
    let mut bytes = [0u8; 8];
    // A failing system generator leaves zeros; the timestamp still keeps ids apart.
    let _ = SystemRandom::new().fill(&mut bytes);
    format!(
        "job-{}-{}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        hex::encode(bytes)
    )
}

/// Coarse bucket of a fuel count for the log: the power of ten at or below it.
fn fuel_bucket(fuel: u64) -> String {
    if fuel == 0 {
        "0".into()
    } else {
        format!("1e{}", fuel.ilog10())
    }
}

/// Coarse bucket of a memory size for the log: the power of two MiB at or above it.
fn memory_bucket(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20).max(1).next_power_of_two()
}

/// Most bytes of guest-controlled text kept per job in the log.
const MAX_GUEST_TEXT: usize = 16 * 1024;

fn bounded(text: &str) -> String {
    if text.len() <= MAX_GUEST_TEXT {
        return text.to_string();
    }
    let mut end = MAX_GUEST_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...[truncated]", &text[..end])
}

/// Runs a job end to end. The budget is charged before the module runs and never refunded.
/// Every step is recorded in the room's audit log; a refusal is recorded with its reason.
pub async fn run_job(
    room: &Room,
    sandbox: &Sandbox,
    request: JobRequest<'_>,
) -> Result<JobResult, JobError> {
    run_job_as(room, sandbox, request, false)
        .await
        .map(|(result, _)| result)
}

/// [`run_job`] for a caller with more work in hand (a queue's worker): returns once the
/// release is written, before its group commits, with an [`UnsettledRelease`] the caller must
/// settle. Until then nothing of the release is durable or visible to anyone; the next job's
/// charge usually commits it, one disk flush for both.
pub async fn run_job_deferred(
    room: &Room,
    sandbox: &Sandbox,
    request: JobRequest<'_>,
) -> Result<(JobResult, Option<UnsettledRelease>), JobError> {
    run_job_as(room, sandbox, request, true).await
}

async fn run_job_as(
    room: &Room,
    sandbox: &Sandbox,
    request: JobRequest<'_>,
    defer: bool,
) -> Result<(JobResult, Option<UnsettledRelease>), JobError> {
    let partner = request.partner.to_string();
    let dataset = request.dataset.shape().name.clone();
    let module_sha256 =
        hex::encode(ring::digest::digest(&ring::digest::SHA256, request.module).as_ref());
    // The vetting entry is written with the charge (one commit fewer per job), or, for a job
    // refused after it was vetted, with the refusal.
    let mut vetted = None;
    let result = run_job_inner(room, sandbox, request, &mut vetted, defer).await;
    match &result {
        Err(JobError::AfterCharge { job, reason }) => {
            record_failed_after_charge(room, job, &partner, reason)?;
        }
        Err(JobError::Dataset {
            job: Some(job),
            error,
        }) => {
            let reason = format!("the dataset could not be read: {error}");
            record_failed_after_charge(room, job, &partner, &reason)?;
        }
        _ => {}
    }
    if let Err(e) = &result
        && matches!(
            e,
            JobError::Refused(_) | JobError::Budget(_) | JobError::Room(RoomError::NoPolicy { .. })
        )
    {
        let refused = Event::JobRefused {
            actor: format!("partner:{partner}"),
            partner: partner.clone(),
            dataset: dataset.clone(),
            module_sha256: module_sha256.clone(),
            reason: e.to_string(),
        };
        room.write(|change| {
            change.record_all(vetted.take().into_iter().chain([refused]).collect())
        })?;
    }
    result
}

/// Records that a job failed after its charge (which stands): not a refusal.
fn record_failed_after_charge(
    room: &Room,
    job: &str,
    partner: &str,
    reason: &str,
) -> Result<(), RoomError> {
    room.write(|change| {
        change.record(Event::JobFailed {
            actor: "room".into(),
            job: job.to_string(),
            partner: partner.to_string(),
            reason: reason.to_string(),
        })
    })
    .map(|_| ())
}

/// A job's release, written but not yet committed (see [`run_job_deferred`]).
#[must_use = "a release is durable and visible only once settled"]
pub struct UnsettledRelease {
    pending: Pending,
    logged: Appended,
    job_id: String,
    partner: String,
}

impl UnsettledRelease {
    /// The job released.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Waits up to `grace` for another write to commit the release's group (then commits it)
    /// and returns once the release is durable. If the group fails to commit, the release is
    /// lost with it; the failure is recorded as one after the charge, which stands, and
    /// returned as [`JobError::AfterCharge`].
    pub fn settle(self, room: &Room, grace: std::time::Duration) -> Result<(), JobError> {
        let UnsettledRelease {
            pending,
            logged,
            job_id,
            partner,
        } = self;
        fail::fail_point!("job.before_settle");
        match pending.settle(grace) {
            Ok(()) => {
                fail::fail_point!("job.after_release");
                room.audit().committed(&logged).map_err(RoomError::from)?;
                Ok(())
            }
            Err(e) => {
                let reason = format!("committing its release: {e}");
                record_failed_after_charge(room, &job_id, &partner, &reason)?;
                Err(JobError::AfterCharge {
                    job: job_id,
                    reason,
                })
            }
        }
    }
}

/// The four phases in order: admit, charge, execute, release.
async fn run_job_inner(
    room: &Room,
    sandbox: &Sandbox,
    request: JobRequest<'_>,
    vetted: &mut Option<Event>,
    defer: bool,
) -> Result<(JobResult, Option<UnsettledRelease>), JobError> {
    let admitted = admit(room, sandbox, request, vetted).await?;
    let prepare_time = admitted.prepare_time;
    let charged = charge(room, admitted, vetted).await?;
    let started = std::time::Instant::now();
    let report = execute(room, sandbox, &charged)?;
    let run_time = started.elapsed();
    let (mut result, unsettled) = release(room, charged, report, defer).await?;
    result.run_time = run_time;
    result.prepare_time = prepare_time;
    Ok((result, unsettled))
}

/// A job that passed every check: what charging it needs.
struct Admitted<'r> {
    request: JobRequest<'r>,
    policy: Policy,
    manifest: Manifest,
    actor: String,
    ctx: Arc<RunContext>,
    parameters: Vec<(String, String)>,
    plan: NoisePlan,
    prepared: Arc<PreparedModule>,
    dataset_name: String,
    prepare_time: std::time::Duration,
    sql: Option<SqlHashes>,
}

/// Proof that a job was charged: made only by [`charge`], required by [`execute`] and
/// [`release`]. It carries the noise plan the charged amount was computed from, so the amount
/// charged and the noise released cannot disagree.
struct ChargeToken {
    job_id: String,
    charged: u64,
    remaining: u64,
    plan: NoisePlan,
    release_at: time::OffsetDateTime,
    release_at_text: String,
}

/// A charged job, ready to run.
struct Charged<'r> {
    request: JobRequest<'r>,
    policy: Policy,
    manifest: Manifest,
    ctx: Arc<RunContext>,
    prepared: Arc<PreparedModule>,
    dataset_name: String,
    token: ChargeToken,
    sql: Option<SqlHashes>,
}

/// Phase 1, admit: every check made before a charge. A refusal here costs nothing.
async fn admit<'r>(
    room: &Room,
    sandbox: &Sandbox,
    request: JobRequest<'r>,
    vetted_entry: &mut Option<Event>,
) -> Result<Admitted<'r>, JobError> {
    let dataset_name = request.dataset.shape().name.clone();
    let policy = room.policy(request.partner, &dataset_name).await?;
    if let Some(expires) = policy.expires
        && time::OffsetDateTime::now_utc() >= expires
    {
        return Err(JobError::Refused(Refusal::PolicyExpired(format!(
            "the policy for '{}' on '{dataset_name}' expired at {}",
            request.partner,
            expires
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        ))));
    }
    let actor = format!("partner:{}", request.partner);
    let digest = ring::digest::digest(&ring::digest::SHA256, request.module);
    let module_sha256 = hex::encode(digest.as_ref());
    // A module this sandbox prepared before passed the same vetting: vetting depends on the
    // bytes alone, and the hash names the bytes.
    let known = <[u8; 32]>::try_from(digest.as_ref())
        .ok()
        .and_then(|hash| sandbox.prepared(&hash));
    let vetting = std::time::Instant::now();
    // The policy may cap module size below the room's cap.
    let max_module_bytes = policy
        .limits
        .max_module_bytes
        .map_or(DEFAULT_MAX_MODULE_BYTES, |m| {
            usize::try_from(m).unwrap_or(usize::MAX)
        });
    let vetted = match &known {
        _ if request.module.len() > max_module_bytes => Err(VettingError::TooLarge {
            size: request.module.len(),
            max: max_module_bytes,
        }),
        Some(prepared) => Ok(prepared.module.clone()),
        None => vet(request.module, max_module_bytes),
    };
    let mut prepare_time = match known {
        Some(_) => std::time::Duration::ZERO,
        None => vetting.elapsed(),
    };
    *vetted_entry = Some(Event::ModuleVetted {
        actor: actor.clone(),
        module_sha256: module_sha256.clone(),
        result: if vetted.is_ok() {
            "accepted"
        } else {
            "refused"
        }
        .into(),
        reason: vetted.as_ref().err().map(|e| e.to_string()),
        name: vetted.as_ref().ok().map(|m| m.manifest.name.clone()),
        version: vetted.as_ref().ok().map(|m| m.manifest.version.clone()),
    });
    let module = vetted.map_err(|e| JobError::Refused(Refusal::ModuleRefused(e.to_string())))?;
    let mut manifest = module.manifest.clone();
    let mut request = request;
    // Table mode sees whole tables: a sealed file is loaded whole for it.
    if manifest.mode == strongroom_contract::manifest::Mode::Table
        && let JobData::Sealed { load, .. } = &request.dataset
    {
        let whole = load().map_err(|error| JobError::Dataset { job: None, error })?;
        request.dataset = JobData::Loaded(whole);
    }
    if let Some(audience) = &request.audience {
        let Some(limits) = policy.audience else {
            return Err(JobError::Refused(Refusal::AudienceNotAllowed(format!(
                "the policy for '{}' on '{dataset_name}' does not allow audience matching",
                request.partner
            ))));
        };
        if audience.sealed_by != request.partner {
            return Err(JobError::Refused(Refusal::AudienceNotTheirs(format!(
                "the audience list was sealed by '{}', not by '{}'",
                audience.sealed_by, request.partner
            ))));
        }
        audience
            .list
            .check_size(limits.min_size, limits.max_size)
            .map_err(|e| JobError::Refused(Refusal::AudienceSize(e.0)))?;
        // A shared dataset is copied shallowly: its tables stay shared except the one that gains
        // the column (the entity keys are copied too).
        // Read window by window, each window is matched as it is read; the shape is matched
        // here, so that a list with nothing in common is refused before the charge.
        let dataset = match &mut request.dataset {
            JobData::Loaded(dataset) => dataset,
            JobData::Sealed { shape, .. } => shape,
        };
        audience
            .list
            .attach(Arc::make_mut(dataset))
            .map_err(|e| JobError::Refused(Refusal::AudienceUnmatched(e.to_string())))?;
    }
    let request = request;
    // A SQL job: the query compiles against the dataset's shape (with the audience column once
    // matched); the engine then runs under the manifest the room derived from the plan.
    let sql = match &request.sql {
        Some(text) => Some(
            super::sql::admit(
                &policy,
                text,
                &module_sha256,
                request.dataset.shape(),
                &request.parameters,
            )
            .map_err(JobError::Refused)?,
        ),
        None => None,
    };
    if let Some(compiled) = &sql {
        manifest = compiled.manifest.clone();
    }
    let manifest = manifest;
    // Table mode sees whole tables: only modules the bank approved by hash may use it. A
    // policy may also ask it of isolated modules, and runs batched only the modules it approved.
    let isolated = manifest.mode == strongroom_contract::manifest::Mode::Isolated;
    let needs_approval = !isolated || policy.approval_required_for_isolated;
    let mut approved = false;
    if needs_approval || policy.batched {
        match room
            .module_decision(&module_sha256, request.partner)
            .await?
        {
            Some(approval) if approval.approved => {
                // The approval covers the parameters too: a module reviewed as a segment
                // benchmark must not be pointed at one customer by its inputs. A SQL engine's
                // parameters are the query's: the policy's `[sql]` rules decide which queries
                // (and templates with which parameters) run.
                let parameters_checked = if sql.is_some() {
                    Ok(())
                } else {
                    approval.parameters.check(&request.parameters)
                };
                match parameters_checked {
                    Ok(()) => approved = true,
                    Err(why) if needs_approval => {
                        return Err(JobError::Refused(Refusal::ParametersNotApproved(format!(
                            "module {module_sha256} is approved, but not with these parameters: {why}"
                        ))));
                    }
                    // Not approved with these parameters: it runs one customer per instance.
                    Err(_) => {}
                }
            }
            Some(_) if needs_approval => {
                return Err(JobError::Refused(Refusal::ModuleRejected(format!(
                    "the bank rejected module {module_sha256}"
                ))));
            }
            None if needs_approval => {
                return Err(JobError::Refused(Refusal::NotApproved(format!(
                    "module {module_sha256} needs the bank's approval for {} mode (`strongroom module approve`)",
                    manifest.mode
                ))));
            }
            _ => {}
        }
    }
    let batched = policy.batched && isolated && approved;
    let mut seed = [0u8; 32];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| JobError::Refused(Refusal::Unavailable("no system randomness".into())))?;
    let ctx = RunContext::new(
        Arc::clone(request.dataset.shape()),
        manifest.clone(),
        manifest.mode,
        // The module's toolchain sets the defaults, the bank's policy has the last word.
        policy.limits.apply(module.toolchain.limits()),
        seed,
    )
    .map_err(|e| JobError::Refused(Refusal::SchemaMismatch(e.to_string())))?
    .with_parameters(&request.parameters)
    .map_err(|e| JobError::Refused(Refusal::BadParameters(e)))?
    .with_batched(batched);
    // The log records the partner's parameters; a SQL engine sees only the plan.
    let parameters = ctx.parameters.clone();
    let ctx = match &sql {
        Some(compiled) => ctx.with_sql_plan(compiled.plan.to_hex()),
        None => ctx,
    };
    let sql = sql.map(|c| SqlHashes {
        query_sha256: c.query_sha256,
        plan_sha256: c.plan_sha256,
    });
    let plan = plan_job(
        &policy,
        &manifest,
        request.dataset.shape(),
        request.cost_nano,
    )?;
    let prepared = match known {
        Some(prepared) => prepared,
        None => {
            let compiling = std::time::Instant::now();
            let prepared = sandbox
                .prepare_shared(module, Some(&room.module_cache()?))
                .map_err(|e| JobError::Refused(Refusal::Unavailable(format!("{e:#}"))))?;
            prepare_time += compiling.elapsed();
            prepared
        }
    };

    Ok(Admitted {
        request,
        policy,
        manifest,
        actor,
        ctx: Arc::new(ctx),
        parameters,
        plan,
        prepared,
        dataset_name,
        prepare_time,
        sql,
    })
}

/// Phase 2, charge: the budget is charged durably, with the entries that record it. The
/// [`ChargeToken`] it returns is what running and releasing require, and it carries the noise
/// plan the charge was computed from.
async fn charge<'r>(
    room: &Room,
    admitted: Admitted<'r>,
    vetted: &mut Option<Event>,
) -> Result<Charged<'r>, JobError> {
    let Admitted {
        request,
        policy,
        manifest,
        actor,
        ctx,
        parameters,
        plan,
        prepared,
        dataset_name,
        prepare_time: _,
        sql,
    } = admitted;
    // Charge first, durably. From here on nothing is refunded.
    let job_id = request.job_id.clone().unwrap_or_else(new_job_id);
    let charged = mechanism::ledger_cost(policy.mechanism, request.cost_nano);
    let domain = policy
        .domain
        .clone()
        .unwrap_or_else(|| request.sealed_by.clone());
    // When the partner will see the outcome: fixed now, before the run, from the policy alone.
    let started = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let release_at = started + time::Duration::seconds(policy.result_delay_seconds as i64);
    let release_at_text = db::rfc3339(release_at);
    let audit = room.audit();
    // The charge, the job's release time and the entries that record them commit together, or
    // none of them does. Every job writes the same entries in the same order, whatever its data:
    // dataset.loaded, budget.charged, job.started now; job.finished and the result entry at the
    // release time.
    enum ChargeOutcome {
        Done(crate::output_gate::ledger::BudgetStatus, Appended),
        Refused(LedgerError, Option<Appended>),
    }
    let charged_ = room.db().write(|conn| {
        let status = match PrivacyLedger::charge_in(
            conn,
            &Charge {
                partner: request.partner,
                dataset: &dataset_name,
                domain: &domain,
                job_id: &job_id,
                cost: charged,
                max_jobs_per_day: policy.max_jobs_per_day,
            },
        ) {
            Ok(status) => status,
            Err(e @ (LedgerError::TooManyJobs { .. } | LedgerError::Exhausted { .. })) => {
                // Refused: only the dataset's domain was recorded, and the vetting entry.
                let appended = match vetted.take() {
                    Some(entry) => Some(audit.append_in(conn, &entry).map_err(RoomError::from)?),
                    None => None,
                };
                return Ok(ChargeOutcome::Refused(e, appended));
            }
            Err(e) => return Err(JobError::from(e)),
        };
        fail::fail_point!("job.inside_charge");
        let queued = conn
            .prepare_cached(
                "UPDATE job_queue SET release_at = ? WHERE job_id = ? AND state = 'running'",
            )?
            .execute(params![release_at_text, job_id])?;
        // A queued job is charged only while its worker's claim stands (a claim lost with a
        // group that failed to commit leaves the job queued, for a worker to take again).
        if queued == 0
            && conn
                .prepare_cached("SELECT 1 FROM job_queue WHERE job_id = ?")?
                .exists(params![job_id])?
        {
            return Err(JobError::Room(RoomError::Invalid(format!(
                "job {job_id} is no longer claimed"
            ))));
        }
        // The vetting entry first (when this job vetted its module), then the three the charge
        // makes: appended together.
        let mut entries: Vec<Event> = vetted.take().into_iter().collect();
        entries.extend([
            Event::DatasetLoaded {
                actor: "room".into(),
                job: job_id.clone(),
                dataset: dataset_name.clone(),
                dataset_sha256: request.dataset_sha256.clone(),
                origin: request.dataset_origin.clone(),
                domain: domain.to_string(),
                entities: request.dataset.shape().entities() as u64,
                // The list's identity and size, never how many customers it matched.
                audience: request.audience.as_ref().map(|a| AudienceSummary {
                    list_sha256: a.sha256.clone(),
                    sealed_by: a.sealed_by.clone(),
                    members: a.list.members() as u64,
                    identifiers: a.list.identifier_counts(),
                }),
            },
            Event::BudgetCharged {
                actor: actor.clone(),
                job: job_id.clone(),
                partner: request.partner.to_string(),
                dataset: dataset_name.clone(),
                domain: domain.to_string(),
                module_sha256: prepared.module.hash_hex(),
                policy_sha256: policy.sha256.clone(),
                sql: sql.clone(),
                mechanism: format!("{:?}", policy.mechanism).to_lowercase(),
                cost_nano_rho: charged,
                remaining_nano_rho: status.remaining(),
            },
            Event::JobStarted {
                actor: "room".into(),
                job: job_id.clone(),
                mode: if ctx.batched {
                    "batched".to_string()
                } else {
                    manifest.mode.to_string()
                },
                entities: request.dataset.shape().entities() as u64,
                release_at: release_at_text.clone(),
                parameters: parameters.clone(),
            },
        ]);
        let started_entry = audit
            .append_all_in(conn, &entries)
            .map_err(RoomError::from)?
            .pop()
            .ok_or_else(|| RoomError::Invalid("the charge's entries were not appended".into()))?;
        Ok(ChargeOutcome::Done(status, started_entry))
    })?;
    let status = match charged_ {
        ChargeOutcome::Done(status, started_entry) => {
            audit.committed(&started_entry).map_err(RoomError::from)?;
            status
        }
        ChargeOutcome::Refused(e, appended) => {
            if let Some(appended) = appended {
                audit.committed(&appended).map_err(RoomError::from)?;
            }
            return Err(e.into());
        }
    };
    fail::fail_point!("job.after_charge");
    fail::fail_point!("job.after_started");
    Ok(Charged {
        request,
        policy,
        manifest,
        ctx,
        prepared,
        dataset_name,
        sql,
        token: ChargeToken {
            job_id,
            charged,
            remaining: status.remaining(),
            plan,
            release_at,
            release_at_text,
        },
    })
}

/// Phase 3, execute: the module runs in the sandbox. Only a charged job can run.
fn execute(room: &Room, sandbox: &Sandbox, charged: &Charged<'_>) -> Result<RunReport, JobError> {
    let request = &charged.request;
    let report = match &request.dataset {
        // A room with an engine hands an isolated run's partitions to it (an audience job
        // matches the partner's list in the room, so it runs here).
        JobData::Sealed { source, .. }
            if charged.ctx.mode == Mode::Isolated && request.audience.is_none() =>
        {
            match room.engine() {
                Some(engine) => run_elsewhere(room, engine, source, charged)?,
                None => run_sealed_here(sandbox, charged, source)?,
            }
        }
        JobData::Sealed { source, .. } => run_sealed_here(sandbox, charged, source)?,
        JobData::Loaded(_) => {
            sandbox.run(&charged.prepared, Arc::clone(&charged.ctx), request.threads)
        }
    };
    fail::fail_point!("job.after_run");
    Ok(report)
}

/// An isolated run on a sealed dataset, read window by window on this machine's threads.
fn run_sealed_here(
    sandbox: &Sandbox,
    charged: &Charged<'_>,
    source: &Arc<SealedSource>,
) -> Result<RunReport, JobError> {
    let request = &charged.request;
    let unreadable = |error| JobError::Dataset {
        job: Some(charged.token.job_id.clone()),
        error,
    };
    let audience = request.audience.as_ref().map(|a| Arc::clone(&a.list));
    let mut windows = source
        .windows(DEFAULT_WINDOW_ENTITIES)
        .map_err(unreadable)?;
    if let Some(progress) = &request.progress {
        windows = windows.with_progress(Arc::clone(progress));
    }
    if request.audience.is_some() {
        windows = windows.with_identifiers();
    }
    let windows = windows.map(|window| {
        let mut window = window?;
        if let Some(list) = &audience {
            list.attach(&mut window)
                .map_err(|e| OpenError::Content(e.to_string()))?;
        }
        Ok(window)
    });
    sandbox
        .run_windows(
            &charged.prepared,
            Arc::clone(&charged.ctx),
            windows,
            &LocalPool {
                threads: request.threads,
            },
            request.progress.as_deref(),
        )
        .map_err(unreadable)
}

/// An isolated run on a sealed dataset, its partitions run by the room's engine (see
/// [`crate::remote`]): the coordinator merges the workers' partials into what a local run
/// makes. A run that gets no authentic partial for some partition is a host fault, as a lost
/// thread is locally, its cause kept for the bank.
fn run_elsewhere(
    room: &Room,
    engine: &crate::remote::engine::EngineConfig,
    source: &Arc<SealedSource>,
    charged: &Charged<'_>,
) -> Result<RunReport, JobError> {
    let unavailable = |e: String| JobError::Refused(Refusal::Unavailable(e));
    let (placement, engine) = engine.build(room.dir()).map_err(unavailable)?;
    let run = crate::remote::coordinator::RemoteRun {
        run: &charged.token.job_id,
        source,
        dataset_location: source.blob(),
        module: &charged.prepared.module,
        ctx: &charged.ctx,
        room: room.keys(),
    };
    let (merged, tally) = crate::remote::coordinator::run(&run, &placement, engine.as_ref());
    // For the bank: how the engine ran, and why a run has no result.
    let summary = match &merged {
        Ok(_) => tally.to_string(),
        Err(e) => format!("{e}\n{tally}"),
    };
    let mut report = crate::guest_boundary::sandbox::isolated_report(
        &charged.ctx,
        merged.map_err(|_| crate::guest_boundary::executor::HostFault),
    );
    report.detail = Some(match report.detail.take() {
        Some(units) if report.aggregate.is_some() => format!("{units}\n{summary}"),
        _ => summary,
    });
    Ok(report)
}

/// Phase 4, release: the output gate noises the aggregate with the plan the charge was computed
/// from, and the job's end, its result entry, its receipt and its stored result commit together.
async fn release(
    room: &Room,
    charged: Charged<'_>,
    report: RunReport,
    defer: bool,
) -> Result<(JobResult, Option<UnsettledRelease>), JobError> {
    let Charged {
        request,
        policy,
        manifest,
        ctx: _,
        prepared,
        dataset_name,
        sql,
        token:
            ChargeToken {
                job_id,
                charged,
                remaining,
                plan,
                release_at,
                release_at_text,
            },
    } = charged;
    let audit = room.audit();
    let outcome = report.partner_outcome().to_string();
    let failed_units = report.failed_unit_count();
    let mut bank_detail = String::new();
    if report.outcome != crate::guest_boundary::Outcome::Completed {
        bank_detail.push_str(&format!("outcome: {}\n", report.outcome));
    }
    if failed_units > 0 {
        bank_detail.push_str(&format!(
            "{failed_units} of {} units failed; their contributions were dropped ({})\n",
            report.units,
            report
                .failed_units
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(detail) = &report.detail {
        bank_detail.push_str(detail);
        bank_detail.push('\n');
    }
    if !report.stderr.is_empty() {
        bank_detail.push_str(&format!(
            "stderr:\n{}",
            String::from_utf8_lossy(&report.stderr)
        ));
    }
    let bank_detail = (!bank_detail.is_empty()).then_some(bank_detail);
    // Guest-controlled text, for the bank only: kept outside the log's leaves; the log holds a
    // salted commitment to it, so neither its presence nor its content moves a leaf hash.
    let diagnostics = serde_json::to_string(&json!({
        "trap_or_error": report.detail.as_deref().map(bounded),
        "guest_stdout": bounded(&String::from_utf8_lossy(&report.stdout)),
        "guest_stderr": bounded(&String::from_utf8_lossy(&report.stderr)),
    }))
    .unwrap_or_default();
    let after_charge = |reason: String| JobError::AfterCharge {
        job: job_id.clone(),
        reason,
    };
    let (diagnostics_salt, diagnostics_sha256) =
        commit_diagnostics(&diagnostics).map_err(|e| after_charge(e.to_string()))?;
    fail::fail_point!("job.release_error", |_| Err(after_charge(
        "injected release error".into()
    )));
    let released = match &report.aggregate {
        Some(aggregate) => {
            let labels = domain_labels(&manifest, request.dataset.shape());
            let table = release::release(
                &manifest,
                aggregate,
                &labels,
                &plan,
                policy.min_group_size,
                SystemRandomBytes::new(),
            )
            .map_err(|e| after_charge(e.to_string()))?;
            Some(ReleasedTable {
                cost_rho: format_nano(charged),
                remaining_rho: format_nano(remaining),
                ..table
            })
        }
        None => None,
    };
    let result_json = released
        .as_ref()
        .map(|t| serde_json::to_string(t).unwrap_or_default());
    let result_sha256 = result_json.as_ref().map_or("none".to_string(), |j| {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, j.as_bytes()).as_ref())
    });
    let job_status = match (&released, policy.release) {
        (None, _) => JobStatus::Failed,
        (Some(_), ReleaseMode::Automatic) => JobStatus::Released,
        (Some(_), ReleaseMode::Held) => JobStatus::Held,
    };
    // Nothing about the run reaches the partner, or the log, before the release time.
    let overran = sleep_until(release_at).await;
    // The job's end, its result entry and its stored result commit together, or none does.
    let finished = Event::JobFinished {
        actor: "room".into(),
        job: job_id.clone(),
        outcome: outcome.clone(),
        run_outcome: report.outcome.code().into(),
        units: report.units,
        failed_units: report
            .failed_units
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        overran_release_time: overran,
        fuel_bucket: fuel_bucket(report.fuel_consumed),
        memory_bucket_mib: memory_bucket(report.peak_memory_bytes),
        seed: hex::encode(report.seed),
        diagnostics_sha256: diagnostics_sha256.clone(),
    };
    let facts = ResultFacts {
        actor: "room".into(),
        job: job_id.clone(),
        partner: request.partner.to_string(),
        dataset: dataset_name.clone(),
        dataset_sha256: request.dataset_sha256.clone(),
        module_sha256: prepared.module.hash_hex(),
        policy_sha256: policy.sha256.clone(),
        sql: sql.clone(),
        outcome: outcome.clone(),
        result_sha256: result_sha256.clone(),
        cost_nano_rho: charged,
        status: job_status.as_str().into(),
    };
    let release_event = match job_status {
        JobStatus::Released => Event::ResultReleased(facts),
        JobStatus::Held => Event::ResultHeld(facts),
        _ => Event::ResultNone(facts),
    };
    let write = |conn: &crate::room::db::Conn<'_>| {
        let logged = audit
            .append_all_in(conn, &[finished, release_event])
            .map_err(RoomError::from)?
            .pop()
            .ok_or_else(|| RoomError::Invalid("the job's end was not appended".into()))?;
        fail::fail_point!("job.after_result_entry");
        let receipt = Receipt {
            room: room.name().to_string(),
            job: job_id.clone(),
            partner: request.partner.to_string(),
            module_sha256: prepared.module.hash_hex(),
            sql: sql.clone(),
            dataset: dataset_name.clone(),
            dataset_sha256: request.dataset_sha256.clone(),
            policy_sha256: policy.sha256.clone(),
            outcome: outcome.clone(),
            result_sha256,
            cost_rho: format_nano(charged),
            // The release time, fixed before the run: the receipt carries no duration.
            time: release_at_text.clone(),
            log: Some(LogPosition {
                index: logged.index,
                size: logged.checkpoint.size,
                root: logged.checkpoint.root,
                proof: logged.proof.clone(),
                entry: logged.entry.clone(),
            }),
        };
        let receipt = room
            .keys
            .signer()
            .sign(&receipt.text())
            .map_err(|e| after_charge(format!("signing the receipt: {e}")))?;
        conn.prepare_cached(
            "INSERT INTO jobs (job_id, partner, dataset, module_sha256, outcome, status, result_json, receipt, bank_detail, finished_at, release_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            job_id,
            request.partner,
            dataset_name,
            prepared.module.hash_hex(),
            outcome,
            job_status.as_str(),
            result_json,
            receipt,
            bank_detail,
            crate::clock::now_rfc3339(),
            release_at_text
        ])?;
        conn.prepare_cached("INSERT INTO job_diagnostics (job_id, salt, text) VALUES (?, ?, ?)")?
            .execute(params![job_id, diagnostics_salt, diagnostics])?;
        // A queued job's queue row ends with it (a job run directly has none). A row no longer
        // running was given up for interrupted by another node (this one stopped answering for
        // longer than the room waits): its end stands, this release is not written.
        let ended = conn
            .prepare_cached(
                "UPDATE job_queue SET state = 'finished', error = NULL, finished_at = ? WHERE job_id = ? AND state = 'running'",
            )?
            .execute(params![crate::clock::now_rfc3339(), job_id])?;
        if ended == 0
            && conn
                .prepare_cached("SELECT 1 FROM job_queue WHERE job_id = ?")?
                .exists(params![job_id])?
        {
            return Err(after_charge(
                "another node marked the job interrupted while it ran here".into(),
            ));
        }
        fail::fail_point!("job.before_release_commit");
        Ok::<_, JobError>((logged, receipt))
    };
    // A release that could not be written is a failure after the charge, not a refusal.
    let unwritten = |e: JobError| match e {
        e @ JobError::AfterCharge { .. } => e,
        other => after_charge(format!("writing its release: {other}")),
    };
    let ((logged, receipt), unsettled) = if defer {
        let (written, pending) = room.db().write_deferred(write).map_err(unwritten)?;
        (written, Some(pending))
    } else {
        (room.db().write(write).map_err(unwritten)?, None)
    };
    let unsettled = match unsettled {
        Some(pending) => Some(UnsettledRelease {
            pending,
            logged,
            job_id: job_id.clone(),
            partner: request.partner.to_string(),
        }),
        None => {
            audit.committed(&logged).map_err(RoomError::from)?;
            fail::fail_point!("job.after_release");
            None
        }
    };
    let result = JobResult {
        run_time: std::time::Duration::ZERO,
        prepare_time: std::time::Duration::ZERO,
        job_id,
        outcome,
        release_at: release_at_text,
        released: if job_status == JobStatus::Released {
            released
        } else {
            None
        },
        status: job_status,
        receipt,
        charged_nano_rho: charged,
        remaining_nano_rho: remaining,
        bank_detail,
        failed_units,
    };
    Ok((result, unsettled))
}

/// Waits until `at`. Returns whether `at` had already passed (the run overran its release time:
/// the outcome then becomes visible when the run ends, the residual timing channel).
async fn sleep_until(at: time::OffsetDateTime) -> bool {
    let left = at - time::OffsetDateTime::now_utc();
    if left.is_negative() {
        return true;
    }
    tokio::time::sleep(left.unsigned_abs()).await;
    false
}

/// A salted commitment to the diagnostics text: (salt hex, SHA-256(salt || text) hex).
pub fn commit_diagnostics(text: &str) -> Result<(String, String), JobError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| JobError::Refused(Refusal::Unavailable("no system randomness".into())))?;
    Ok((hex::encode(salt), diagnostics_commitment(&salt, text)))
}

/// SHA-256(salt || text), hex: what `job.finished` records as `diagnostics_sha256`.
pub fn diagnostics_commitment(salt: &[u8], text: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(salt);
    ctx.update(text.as_bytes());
    hex::encode(ctx.finish().as_ref())
}

pub use strongroom_api::JobSummary;

/// The newest 1000 jobs, newest first, optionally only those with `status`: those that ended
/// (released, held, withheld, failed) and, on a served room, those queued, running or refused.
pub async fn list_jobs(room: &Room, status: Option<&str>) -> Result<Vec<JobSummary>, JobError> {
    // Jobs that ended, and jobs a served room has queued or is running (or refused): those have
    // no result yet, and show their queue state as their status.
    let query = "SELECT job_id, partner, dataset, module_sha256, outcome, status, finished_at FROM ( \
           SELECT job_id, partner, dataset, module_sha256, outcome, status, finished_at FROM jobs \
           UNION ALL \
           SELECT q.job_id, q.partner, q.dataset, q.module_sha256, '-' AS outcome, q.state AS status, \
                  COALESCE(q.finished_at, q.submitted_at) AS finished_at \
           FROM job_queue q WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = q.job_id) \
         ) AS listed \
         WHERE (? IS NULL OR status = ?) ORDER BY finished_at DESC, job_id DESC LIMIT 1000";
    room.db().read(|conn| {
        conn.prepare_cached(query)?
            .query_map(params![status, status], |r| {
                Ok(JobSummary {
                    job_id: r.get("job_id")?,
                    partner: r.get("partner")?,
                    dataset: r.get("dataset")?,
                    module_sha256: r.get("module_sha256")?,
                    outcome: r.get("outcome")?,
                    status: r.get("status")?,
                    finished_at: r.get("finished_at")?,
                    progress: None,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .map_err(JobError::from)
    })
}

/// The bank's decision on a held result: release it (returning the table) or withhold it.
pub async fn decide_held(
    room: &Room,
    job_id: &str,
    release: bool,
    actor: &str,
    reason: &str,
) -> Result<Option<ReleasedTable>, JobError> {
    let row: Option<(String, Option<String>)> = room.db().read(|conn| {
        conn.query_row(
            "SELECT status, result_json FROM jobs WHERE job_id = ?",
            params![job_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(JobError::from)
    })?;
    let Some((status, json)) = row else {
        return Err(JobError::Refused(Refusal::NoSuchJob(format!(
            "no job '{job_id}'"
        ))));
    };
    if status != "held" {
        return Err(JobError::Refused(Refusal::NotHeld(format!(
            "job '{job_id}' is {status}, not held"
        ))));
    }
    let new_status = if release { "released" } else { "withheld" };
    room.write(|change| {
        let done = change
            .conn()
            .prepare_cached("UPDATE jobs SET status = ? WHERE job_id = ? AND status = 'held'")?
            .execute(params![new_status, job_id])?;
        if done == 0 {
            return Err(JobError::Refused(Refusal::NotHeld(format!(
                "job '{job_id}' was decided by someone else meanwhile"
            ))));
        }
        fail::fail_point!("held.before_entry", |_| Err(JobError::Refused(
            Refusal::NotHeld("injected failure before the decision's entry".into())
        )));
        let (actor, job) = (actor.to_string(), job_id.to_string());
        let reason = (!reason.is_empty()).then(|| reason.to_string());
        change.record(if release {
            Event::ResultReleasedByBank { actor, job, reason }
        } else {
            Event::ResultWithheld { actor, job, reason }
        })?;
        Ok(())
    })?;
    if !release {
        return Ok(None);
    }
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}
