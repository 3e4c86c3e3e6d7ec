//! The persisted job queue and its workers.
//!
//! A submitted job is a row in `job_queue` (state `queued`) before the partner hears back. A
//! worker claims a row with one conditional `UPDATE ... WHERE state = 'queued'`, so two workers
//! (or two processes) never run the same job; then runs it through [`run_job`], which charges
//! the budget before the module starts. A row still `running` whose node is gone belongs to a
//! job a service was killed in the middle of: it is marked `failed` (its charge, if it got that
//! far, stands) and logged; `queued` rows simply run. Nothing is lost, nothing runs twice.
//!
//! Several nodes may serve one room on PostgreSQL: each claim names its node, each node
//! records that it is alive six times per [`NODE_TIMEOUT`] (the service's `node_timeout`), and a
//! node not seen for that long is gone; the live nodes mark its running jobs interrupted. On SQLite the serving process is the
//! only node (`serve.lock`), so at its start every running job is another's.
//!
//! A worker does not wait for its job's release to reach the disk before it takes the next
//! job: the release is handed to the worker's settler thread (see
//! [`strongroom::room::jobs::run_job_deferred`]), and the next job's charge usually commits
//! both, one disk flush for the two. The settler commits it itself after [`SETTLE_GRACE`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strongroom::params;
use strongroom::room::db::OptionalExtension;
use tokio::sync::Notify;

use super::AppState;
use super::dataset_cache::{DatasetCache, SourceCache};
use strongroom::data_at_rest::blob::Blob;
use strongroom::data_at_rest::open::{OpenError, SealedFile};
use strongroom::data_at_rest::stream::SealedSource;
use strongroom::dataset::Dataset;
use strongroom::output_gate::mechanism::parse_nano;
use strongroom::progress::Progress;
use strongroom::room::jobs::{
    AudienceInput, JobData, JobError, JobRequest, LoadWhole, UnsettledRelease, run_job_deferred,
};
use strongroom::room::{Room, RoomError};
use strongroom_verify::event::Event;

/// Wakes workers and keeps opened datasets.
pub struct Queue {
    notify: Notify,
    stop: AtomicBool,
    /// Opened datasets, bounded in bytes.
    pub datasets: DatasetCache,
    /// Datasets opened to be read window by window (header, index, chunk locations).
    pub sources: SourceCache,
    /// Where the workers' time went.
    pub times: WorkTimes,
    /// How far each running job has come, for the bank's view.
    running: std::sync::Mutex<std::collections::HashMap<String, Arc<Progress>>>,
}

/// A job whose progress the queue shows while it runs; forgotten when this drops.
struct Following<'q> {
    queue: &'q Queue,
    job_id: String,
    progress: Arc<Progress>,
}

impl Drop for Following<'_> {
    fn drop(&mut self) {
        self.queue
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.job_id);
    }
}

/// Where the workers' time went since the service started: for the operator's measurements
/// (the service load bench), never shown to a partner.
#[derive(Debug, Default)]
pub struct WorkTimes {
    jobs: AtomicU64,
    worked_ns: AtomicU64,
    module_ns: AtomicU64,
    prepare_ns: AtomicU64,
    /// Each job's control plane (worked, less its module and its module's preparation), in
    /// microseconds: the last [`KEPT_JOB_TIMES`] jobs.
    control_us: std::sync::Mutex<std::collections::VecDeque<u64>>,
}

/// How long a settler lets a job's release wait for another write to commit it (the next
/// job's charge, usually) before committing it itself.
pub const SETTLE_GRACE: Duration = Duration::from_millis(2);

/// What a job's run leaves the worker with: how long its module ran, how long preparing it
/// took, and its release if that still has to commit.
type Ran = (Duration, Duration, Option<UnsettledRelease>);

/// Jobs whose control-plane time [`WorkTimes`] keeps.
pub const KEPT_JOB_TIMES: usize = 100_000;

/// A snapshot of [`WorkTimes`].
#[derive(Debug, Clone, Default)]
pub struct WorkSnapshot {
    /// Jobs a worker took.
    pub jobs: u64,
    /// Time from claiming each job to recording its end, summed.
    pub worked: Duration,
    /// The part of it the modules ran.
    pub module: Duration,
    /// The part of it spent vetting and compiling modules no job had run here before.
    pub prepare: Duration,
    /// Each job's control plane (`worked` less `module` and `prepare`), sorted.
    pub control: Vec<Duration>,
}

impl WorkTimes {
    fn add(&self, worked: Duration, module: Duration, prepare: Duration) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        self.worked_ns
            .fetch_add(worked.as_nanos() as u64, Ordering::Relaxed);
        self.module_ns
            .fetch_add(module.as_nanos() as u64, Ordering::Relaxed);
        self.prepare_ns
            .fetch_add(prepare.as_nanos() as u64, Ordering::Relaxed);
        let control = worked.saturating_sub(module).saturating_sub(prepare);
        let mut kept = self.control_us.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == KEPT_JOB_TIMES {
            kept.pop_front();
        }
        kept.push_back(control.as_micros() as u64);
    }

    /// What the workers did since the service started.
    pub fn snapshot(&self) -> WorkSnapshot {
        let mut control: Vec<Duration> = self
            .control_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|us| Duration::from_micros(*us))
            .collect();
        control.sort_unstable();
        WorkSnapshot {
            jobs: self.jobs.load(Ordering::Relaxed),
            worked: Duration::from_nanos(self.worked_ns.load(Ordering::Relaxed)),
            module: Duration::from_nanos(self.module_ns.load(Ordering::Relaxed)),
            prepare: Duration::from_nanos(self.prepare_ns.load(Ordering::Relaxed)),
            control,
        }
    }
}

impl Queue {
    /// An empty queue whose dataset cache holds at most `cache_bytes`.
    pub fn new(cache_bytes: u64) -> Self {
        Queue {
            notify: Notify::new(),
            stop: AtomicBool::new(false),
            datasets: DatasetCache::new(cache_bytes),
            sources: SourceCache::default(),
            running: Default::default(),
            times: WorkTimes::default(),
        }
    }

    /// How far running job `job_id` has come, once its run has planned what it reads (runs
    /// read window by window report it).
    pub fn progress_of(&self, job_id: &str) -> Option<strongroom::progress::RunProgress> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(job_id)
            .map(|p| p.snapshot())
            .filter(|p| p.customers > 0 || p.chunks > 0)
    }

    /// Follows a job's progress until the returned guard drops.
    fn follow(&self, job_id: &str) -> Following<'_> {
        let progress = Arc::new(Progress::default());
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job_id.to_string(), Arc::clone(&progress));
        Following {
            queue: self,
            job_id: job_id.to_string(),
            progress,
        }
    }

    /// Wakes a worker: a job was queued.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Whether [`Queue::shutdown`] was called.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Asks workers to stop after their current job.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// How long a node may go unseen, by default, before the others take it for gone and mark its
/// running jobs interrupted.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh node id for a serving process: 128 random bits, hex.
pub fn new_node_id() -> Result<String, RoomError> {
    let mut id = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| RoomError::Invalid("no randomness for a node id".into()))?;
    Ok(hex::encode(id))
}

/// Records that `node` is alive (and, on joining, that it started), and forgets nodes not seen
/// for a day.
pub fn heartbeat(room: &Room, node: &str) -> Result<(), RoomError> {
    let now = strongroom::clock::now_rfc3339();
    let forgotten =
        strongroom::room::db::rfc3339(time::OffsetDateTime::now_utc() - time::Duration::days(1));
    room.db().write_lazily(|conn| {
        conn.execute(
            "INSERT INTO nodes (node_id, started_at, seen_at) VALUES (?, ?, ?) \
             ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at",
            params![node, now, now],
        )?;
        conn.execute("DELETE FROM nodes WHERE seen_at < ?", params![forgotten])?;
        Ok(())
    })
}

/// Marks as failed the jobs left `running` by a node that is gone: one that has not been seen
/// for `timeout` (on SQLite, any node but `node`, the one serving process). Returns how many.
pub async fn recover(room: &Room, node: &str, timeout: Duration) -> Result<u64, RoomError> {
    let alive_since = if room.db().is_shared() {
        strongroom::room::db::rfc3339(
            time::OffsetDateTime::now_utc()
                - time::Duration::milliseconds(timeout.as_millis() as i64),
        )
    } else {
        // Later than any time a node was seen: no other node counts as alive.
        "9999".to_string()
    };
    let rows: Vec<(String, String)> = room.db().read(|conn| {
        conn.prepare_cached(
            "SELECT q.job_id, q.partner FROM job_queue q WHERE q.state = 'running' \
             AND (q.claimed_by IS NULL OR (q.claimed_by <> ? AND NOT EXISTS \
               (SELECT 1 FROM nodes n WHERE n.node_id = q.claimed_by AND n.seen_at >= ?))) \
             ORDER BY q.job_id",
        )?
        .query_map(params![node, alive_since], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(RoomError::from)
    })?;
    let mut interrupted = 0;
    for (job, partner) in &rows {
        if recorded(room, job)? {
            // It ended (its result and the entries saying so committed together) just before
            // the service stopped: it finished, it was not interrupted.
            finish(room, job, None)?;
            continue;
        }
        let marked = room.write(|change| {
            let marked = change
                .conn()
                .prepare_cached(
                    "UPDATE job_queue SET state = 'failed', error = ?, finished_at = ? WHERE job_id = ? AND state = 'running'",
                )?
                .execute(params![
                    "interrupted: the service stopped while the job ran; any charge stands",
                    strongroom::clock::now_rfc3339(),
                    job
                ])?;
            // Another node may have marked it first: one entry per interruption.
            if marked == 1 {
                change.record(Event::JobInterrupted {
                    actor: "room".into(),
                    job: job.clone(),
                    partner: partner.clone(),
                })?;
            }
            Ok::<_, RoomError>(marked)
        })?;
        interrupted += marked as u64;
    }
    Ok(interrupted)
}

/// Whether a job's end is stored (its `jobs` row, committed with its result entry).
fn recorded(room: &Room, job_id: &str) -> Result<bool, RoomError> {
    room.db().read(|conn| {
        Ok(conn
            .prepare_cached("SELECT 1 FROM jobs WHERE job_id = ?")?
            .exists(params![job_id])?)
    })
}

/// A claimed job, with the dataset row it names (read in the same transaction).
struct Claimed {
    job_id: String,
    partner: String,
    dataset: String,
    module_sha256: String,
    cost: String,
    audience: Option<String>,
    parameters: Vec<(String, String)>,
    /// A SQL job's query.
    sql: Option<String>,
    /// The dataset's row, if it still has one.
    dataset_row: Option<DatasetRow>,
}

/// What a job needs of its dataset's row.
struct DatasetRow {
    sha: String,
    file: String,
    sealed_by: String,
    quarantined: bool,
}

/// Claims the oldest queued job with a conditional update (`queued` to `running`), so that no
/// job runs twice, and reads its dataset's row, in one write on this thread. The claim is what
/// the partner sees as `running`: taken before the dataset is opened, so its time does not
/// depend on the data.
fn claim(room: &Room, node: &str) -> Result<Option<Claimed>, RoomError> {
    // Not flushed to disk before the job goes on: the charge, which is, flushes it too. Lost
    // with the machine's power before that, the job is simply queued again.
    room.db().write_lazily(|conn| {
        let next = conn
            .prepare_cached(
                "SELECT job_id, partner, dataset, module_sha256, cost, audience, parameters, sql_text FROM job_queue \
                 WHERE state = 'queued' ORDER BY submitted_at, job_id LIMIT 1",
            )?
            .query_row(params![], |r| {
                Ok(Claimed {
                    job_id: r.get(0)?,
                    partner: r.get(1)?,
                    dataset: r.get(2)?,
                    module_sha256: r.get(3)?,
                    cost: r.get(4)?,
                    audience: r.get(5)?,
                    parameters: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                    sql: r.get(7)?,
                    dataset_row: None,
                })
            })
            .optional()?;
        let Some(mut job) = next else { return Ok(None) };
        // The write holds the room's write lock from its start: no other writer can take the
        // row in between (another process or node included).
        conn.prepare_cached(
            "UPDATE job_queue SET state = 'running', claimed_by = ? WHERE job_id = ? AND state = 'queued'",
        )?
        .execute(params![node, job.job_id])?;
        job.dataset_row = conn
            .prepare_cached(
                "SELECT header_sha256, file, sealed_by, quarantined FROM datasets WHERE name = ?",
            )?
            .query_row(params![job.dataset], |r| {
                Ok(DatasetRow {
                    sha: r.get(0)?,
                    file: r.get(1)?,
                    sealed_by: r.get(2)?,
                    quarantined: r.get::<_, Option<String>>(3)?.is_some(),
                })
            })
            .optional()?;
        Ok(Some(job))
    })
}

/// Why a job ended without a result: the words, and for a job refused before its charge the
/// refusal's stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    code: Option<&'static str>,
    message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            code: None,
            message,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::from(message.to_string())
    }
}

fn finish(room: &Room, job_id: &str, error: Option<&Failure>) -> Result<(), RoomError> {
    room.db().write(|conn| {
        conn.prepare_cached(
            "UPDATE job_queue SET state = ?, error = ?, error_code = ?, finished_at = ? WHERE job_id = ?",
        )?
        .execute(params![
            if error.is_some() { "failed" } else { "finished" },
            error.map(|f| f.message.as_str()),
            error.and_then(|f| f.code),
            strongroom::clock::now_rfc3339(),
            job_id
        ])?;
        Ok(())
    })
}

/// Opens a dataset whole for a job that needs it so (table mode), through the cache.
fn open_dataset(state: &AppState, file: &Blob, sha: &str) -> Result<Arc<Dataset>, OpenError> {
    state.queue.datasets.get_or_open(sha, || {
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            file.read_all()
                .map_err(|e| OpenError::Io(format!("{}: {e}", file.name())))
                .and_then(|bytes| SealedFile::parse(&bytes))
                .and_then(|s| s.open(state.room.keys(), state.config.threads_per_job))
        }))
        .unwrap_or_else(|panic| {
            Err(OpenError::Content(format!(
                "opening it failed: {}",
                panic_message(&*panic)
            )))
        })
    })
}

/// Opens a dataset to be read window by window (its header and index), through the cache of
/// opened sources.
fn open_source(state: &AppState, file: &Blob, sha: &str) -> Result<Arc<SealedSource>, OpenError> {
    state.queue.sources.get_or_open(sha, || {
        let source = std::panic::catch_unwind(AssertUnwindSafe(|| {
            SealedSource::open_blob(file.clone(), state.room.keys())
        }))
        .unwrap_or_else(|panic| {
            Err(OpenError::Content(format!(
                "opening it failed: {}",
                panic_message(&*panic)
            )))
        })?;
        if source.header_sha256() != sha {
            return Err(OpenError::Content(
                "the file on disk is not the dataset uploaded".into(),
            ));
        }
        Ok(source)
    })
}

/// A job's failure on a dataset that could not be read: a file at fault (anything but an I/O
/// error) is quarantined.
fn unreadable(state: &AppState, job: &Claimed, sha: &str, error: &OpenError) -> Failure {
    super::problem::tracing_log(&format!(
        "dataset '{}' could not be read: {error}",
        job.dataset
    ));
    state.queue.sources.forget(sha);
    if matches!(error, OpenError::Io(_)) {
        return "the dataset could not be read; the operator has the details".into();
    }
    quarantine(&state.room, &job.dataset, sha, &error.to_string());
    Failure {
        code: Some("dataset_quarantined"),
        message: quarantined_error(&job.dataset),
    }
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Marks a dataset quarantined (until the bank uploads it again) and logs it.
fn quarantine(room: &Room, dataset: &str, sha: &str, reason: &str) {
    let marked = room.write(|change| {
        let marked = change
            .conn()
            .prepare_cached(
                "UPDATE datasets SET quarantined = ? WHERE name = ? AND header_sha256 = ? AND quarantined IS NULL",
            )?
            .execute(params![reason, dataset, sha])?;
        if marked == 1 {
            change.record(Event::DatasetQuarantined {
                actor: "room".into(),
                dataset: dataset.to_string(),
                header_sha256: sha.to_string(),
                reason: reason.to_string(),
            })?;
        }
        Ok::<(), RoomError>(())
    });
    if let Err(e) = marked {
        // The job fails either way; the next job on this dataset tries to open it again.
        super::problem::tracing_log(&format!("quarantining dataset {dataset}: {e}"));
    }
}

/// Fails a job whose worker failed inside it, with its `job.crashed` entry, in one change.
fn crashed(room: &Room, job: &Claimed, error: &str) -> Result<(), RoomError> {
    room.write(|change| {
        change
            .conn()
            .prepare_cached(
                "UPDATE job_queue SET state = 'failed', error = ?, finished_at = ? WHERE job_id = ? AND state = 'running'",
            )?
            .execute(params![error, strongroom::clock::now_rfc3339(), job.job_id])?;
        change.record(Event::JobCrashed {
            actor: "room".into(),
            job: job.job_id.clone(),
            partner: job.partner.clone(),
        })?;
        Ok(())
    })
}

async fn run_claimed(state: &Arc<AppState>, job: &Claimed) -> Result<Ran, Failure> {
    let room = &state.room;
    let cost = parse_nano(&job.cost).map_err(|e| format!("cost: {e}"))?;
    let row = job
        .dataset_row
        .as_ref()
        .ok_or_else(|| format!("no dataset '{}'", job.dataset))?;
    let (sha, file, sealed_by) = (row.sha.clone(), &row.file, row.sealed_by.clone());
    if row.quarantined {
        return Err(Failure {
            code: Some("dataset_quarantined"),
            message: quarantined_error(&job.dataset),
        });
    }
    // Read window by window as the run goes; loaded whole (and cached) only for table mode.
    let path = room
        .dataset_blob(file)
        .map_err(|e| OpenError::Io(e.to_string()))
        .map_err(|e| unreadable(state, job, &sha, &e))?;
    let source = open_source(state, &path, &sha).map_err(|e| unreadable(state, job, &sha, &e))?;
    let load: LoadWhole = {
        let (state, sha) = (Arc::clone(state), sha.clone());
        Arc::new(move || open_dataset(&state, &path, &sha))
    };
    let dataset = JobData::sealed(source, load);
    let module = std::fs::read(
        room.dir()
            .join("modules")
            .join(format!("{}.wasm", job.module_sha256)),
    )
    .map_err(|_| format!("no module {}", job.module_sha256))?;
    let audience = match &job.audience {
        None => None,
        Some(list) => {
            let file: String = room
                .db()
                .read(|conn| {
                    conn.query_row(
                        "SELECT file FROM audience_lists WHERE list_sha256 = ? AND partner = ?",
                        params![list, job.partner],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(RoomError::from)
                })
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no audience list {list}"))?;
            Some(AudienceInput::open(
                &room.dir().join(file),
                room,
                state.config.threads_per_job,
            )?)
        }
    };
    let following = state.queue.follow(&job.job_id);
    let request = JobRequest {
        partner: &job.partner,
        module: &module,
        dataset,
        dataset_sha256: sha.clone(),
        dataset_origin: format!("uploaded, sealed by {sealed_by}"),
        sealed_by: sealed_by.clone(),
        cost_nano: cost,
        threads: state.config.threads_per_job,
        audience,
        job_id: Some(job.job_id.clone()),
        parameters: job.parameters.clone(),
        sql: job.sql.clone(),
        progress: Some(Arc::clone(&following.progress)),
    };
    match run_job_deferred(room, &state.sandbox, request).await {
        Ok((result, unsettled)) => Ok((result.run_time, result.prepare_time, unsettled)),
        Err(e @ JobError::Refused(_)) => Err(Failure {
            code: e.refusal_code(),
            message: e.to_string(),
        }),
        Err(e @ JobError::Budget(_)) => Err(Failure {
            code: e.refusal_code(),
            message: match &e {
                JobError::Budget(b) => b.to_string(),
                other => other.to_string(),
            },
        }),
        Err(JobError::Dataset { error, .. }) => Err(unreadable(state, job, &sha, &error)),
        Err(JobError::AfterCharge { .. }) => Err(
            "the job failed after its charge, which stands; the operator has the details".into(),
        ),
        Err(JobError::Room(strongroom::room::RoomError::NoPolicy { partner, dataset })) => {
            Err(Failure {
                code: Some("no_policy"),
                message: format!("the bank has no policy for '{partner}' on '{dataset}'"),
            })
        }
        Err(e) => {
            super::problem::tracing_log(&e.to_string());
            Err("internal error; the operator has the details".into())
        }
    }
}

/// The error a job on a quarantined dataset ends with.
pub fn quarantined_error(dataset: &str) -> String {
    format!(
        "dataset '{dataset}' is quarantined: it failed the checks a job needs; the bank must upload it again"
    )
}

/// Runs a claimed job; a panic anywhere inside it fails the job (any charge stands) and is
/// logged, and the worker goes on.
fn run_guarded(
    state: &Arc<AppState>,
    handle: &tokio::runtime::Handle,
    job: &Claimed,
) -> Result<Ran, Failure> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        handle.block_on(run_claimed(state, job))
    })) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic_message(&*panic);
            if recorded(&state.room, &job.job_id).unwrap_or(false) {
                // The panic came after the job's end was committed: it finished.
                super::problem::tracing_log(&format!(
                    "job {} finished, then its worker failed: {message}",
                    job.job_id
                ));
                return Ok((Duration::ZERO, Duration::ZERO, None));
            }
            super::problem::tracing_log(&format!(
                "job {} failed in a worker: {message}",
                job.job_id
            ));
            let error = "internal error: the run failed and any charge stands; the operator has the details";
            for attempt in 1..=30u64 {
                match crashed(&state.room, job, error) {
                    Ok(()) => break,
                    Err(e) => {
                        super::problem::tracing_log(&format!(
                            "recording the failure of job {} (attempt {attempt}): {e}",
                            job.job_id
                        ));
                        std::thread::sleep(Duration::from_secs(attempt.min(10)));
                    }
                }
            }
            Err(error.into())
        }
    }
}

/// Claims and runs one job, or waits a little for one. A release still to commit goes to the
/// worker's settler.
fn work_once(
    state: &Arc<AppState>,
    handle: &tokio::runtime::Handle,
    settler: &std::sync::mpsc::Sender<UnsettledRelease>,
) {
    let claimed = Instant::now();
    match claim(&state.room, &state.node) {
        Ok(Some(job)) => {
            // A job that ran to its end finished its queue row with its result; only a job that
            // did not is finished here.
            let (module, prepare, unsettled) = match run_guarded(state, handle, &job) {
                Ok(ran) => ran,
                Err(failure) => {
                    finish_reliably(state, &job.job_id, Some(&failure));
                    (Duration::ZERO, Duration::ZERO, None)
                }
            };
            state.queue.times.add(claimed.elapsed(), module, prepare);
            if let Some(unsettled) = unsettled
                && let Err(std::sync::mpsc::SendError(unsettled)) = settler.send(unsettled)
            {
                // No settler (it could not start): settle here.
                settle(state, unsettled);
            }
        }
        Ok(None) => {
            handle.block_on(async {
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), state.queue.notify.notified())
                        .await;
            });
        }
        Err(e) => {
            super::problem::tracing_log(&e.to_string());
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Waits for a job's release to commit (committing it after [`SETTLE_GRACE`]); if it cannot,
/// the job ends failed (its charge stands, and the failure is in the log).
fn settle(state: &AppState, unsettled: UnsettledRelease) {
    let job_id = unsettled.job_id().to_string();
    let settled = std::panic::catch_unwind(AssertUnwindSafe(|| {
        unsettled.settle(&state.room, SETTLE_GRACE)
    }));
    let failed = match settled {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(panic) => panic_message(&*panic),
    };
    if recorded(&state.room, &job_id).unwrap_or(false) {
        // The failure came after the release committed: the job finished.
        super::problem::tracing_log(&format!("job {job_id} finished, then: {failed}"));
        return;
    }
    super::problem::tracing_log(&format!("job {job_id}: {failed}"));
    let failure = Failure::from(
        "the job failed after its charge, which stands; the operator has the details",
    );
    finish_reliably(state, &job_id, Some(&failure));
}

/// Records a job's end, retrying while the database refuses (a job left `running` would wait
/// for the next restart): the worker does not go on with a job still in hand.
fn finish_reliably(state: &AppState, job_id: &str, error: Option<&Failure>) {
    for attempt in 1..=30u64 {
        match finish(&state.room, job_id, error) {
            Ok(()) => return,
            Err(e) => {
                super::problem::tracing_log(&format!(
                    "recording the end of job {job_id} (attempt {attempt}): {e}"
                ));
                std::thread::sleep(Duration::from_secs(attempt.min(10)));
            }
        }
    }
}

/// Starts `config.workers` threads that drain the queue. Each runs jobs on its own thread and
/// uses the async runtime only to reach the database; each has a settler thread beside it that
/// sees its jobs' releases committed.
pub fn spawn_workers(state: &Arc<AppState>, handle: tokio::runtime::Handle) {
    for n in 0..state.config.workers.max(1) {
        let (settler, releases) = std::sync::mpsc::channel::<UnsettledRelease>();
        let settling = Arc::clone(state);
        let started = std::thread::Builder::new()
            .name(format!("strongroom-settle-{n}"))
            .spawn(move || {
                for unsettled in releases {
                    settle(&settling, unsettled);
                }
            });
        if let Err(e) = started {
            // The worker then settles its releases itself (the send fails).
            super::problem::tracing_log(&format!("cannot start a settler: {e}"));
        }
        let state = Arc::clone(state);
        let handle = handle.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("strongroom-worker-{n}"))
            .spawn(move || {
                // Nothing inside an iteration can take the thread down: a panic outside a job
                // (claiming, recording) is logged and the worker carries on.
                while !state.queue.stop.load(Ordering::SeqCst) {
                    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        work_once(&state, &handle, &settler)
                    })) {
                        super::problem::tracing_log(&format!(
                            "a worker failed between jobs: {}",
                            panic_message(&*panic)
                        ));
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            });
        if let Err(e) = spawned {
            super::problem::tracing_log(&format!("cannot start a worker: {e}"));
        }
    }
}
