//! Where a partitioned run's workers run. An engine takes the run's tasks (a spec and a token
//! each), runs `strongroom worker` for each somewhere, retries what failed transiently, and
//! hands back every answer it got, in any order, duplicates included: the coordinator checks
//! them all. An engine sees specs and tokens, never a key.
//!
//! - [`Processes`]: worker processes on this machine (a room with spare cores, and the tests'
//!   reference for what any engine must return);
//! - [`Spark`]: the bank's Spark cluster, through `spark-submit` and the launcher shipped in
//!   `deploy/spark/strongroom_spark.py` (docs/deploy.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use parking_lot::Mutex;
use zeroize::Zeroizing;

use super::key_release::{MAX_ATTEMPTS, random32};
use super::worker::{EXIT_REFUSED, EXIT_TRANSIENT};

/// One partition's work, as an engine carries it.
pub struct Task {
    /// The partition's number.
    pub partition: u32,
    /// Its spec's canonical JSON.
    pub spec: String,
    /// Its token, hex: handed to the worker on stdin only.
    pub token: Zeroizing<String>,
}

impl Task {
    /// What the worker reads on stdin: the spec, then the token, a line each.
    pub fn stdin(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n{}\n", self.spec, &*self.token))
    }
}

/// Runs workers.
pub trait Engine: Send + Sync {
    /// Runs every task (the module staged at `module`) and returns the answers got.
    fn run(&self, run: &str, tasks: &[Task], module: &Path) -> Result<Vec<Vec<u8>>, String>;
}

/// The last `n` bytes of `text`, as text.
fn tail(text: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&text[text.len().saturating_sub(n)..])
        .trim()
        .to_string()
}

/// Worker processes on this machine, `parallel` at a time, each task tried up to
/// [`MAX_ATTEMPTS`] times while it fails transiently.
pub struct Processes {
    /// The `strongroom` binary.
    pub worker: PathBuf,
    /// Workers at once.
    pub parallel: usize,
}

impl Processes {
    fn attempt(&self, task: &Task, module: &Path) -> Result<(i32, Vec<u8>, Vec<u8>), String> {
        let mut child = Command::new(&self.worker)
            .arg("worker")
            .arg("--module")
            .arg(module)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.worker.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A worker that exits before reading its input fails below, by its status.
            let _ = stdin.write_all(task.stdin().as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{}: {e}", self.worker.display()))?;
        Ok((out.status.code().unwrap_or(-1), out.stdout, out.stderr))
    }
}

impl Engine for Processes {
    fn run(&self, _run: &str, tasks: &[Task], module: &Path) -> Result<Vec<Vec<u8>>, String> {
        let next = AtomicUsize::new(0);
        let answers = Mutex::new(Vec::new());
        let failed = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..self.parallel.max(1) {
                scope.spawn(|| {
                    while let Some(task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let mut last = String::new();
                        let mut answered = false;
                        for _ in 0..MAX_ATTEMPTS {
                            match self.attempt(task, module) {
                                Ok((0 | EXIT_REFUSED, stdout, _)) => {
                                    answers.lock().push(stdout);
                                    answered = true;
                                    break;
                                }
                                // A transient failure, or a crash (treated as one): retried.
                                Ok((code, _, stderr)) => {
                                    let kind = if code == EXIT_TRANSIENT {
                                        "transient"
                                    } else {
                                        "crashed"
                                    };
                                    last = format!(
                                        "{kind}, exit status {code}: {}",
                                        tail(&stderr, 2000)
                                    );
                                }
                                Err(e) => last = e,
                            }
                        }
                        if !answered {
                            failed.lock().get_or_insert(format!(
                                "partition {} failed {MAX_ATTEMPTS} times; last: {last}",
                                task.partition
                            ));
                        }
                    }
                });
            }
        });
        match failed.into_inner() {
            Some(e) => Err(e),
            None => Ok(answers.into_inner()),
        }
    }
}

/// The bank's Spark cluster. The coordinator runs the launcher with a Python that has PySpark;
/// the launcher starts its driver with the cluster's `spark-submit` (client mode, the arguments
/// in `PYSPARK_SUBMIT_ARGS`), reads the tasks on its stdin, makes a DataFrame of them (one Spark
/// task each) and runs `strongroom worker` for each row with `mapInArrow`; the answers come back
/// to the launcher and, on its stdout, to the coordinator. (A launcher started by `spark-submit`
/// itself would get no stdin: Spark does not pass it on to a Python application.)
#[derive(Debug, Clone)]
pub struct Spark {
    /// The Python that runs the launcher (it must import `pyspark`).
    pub python: PathBuf,
    /// `SPARK_HOME` of the cluster's Spark, when PySpark's own is not the one to use.
    pub spark_home: Option<PathBuf>,
    /// The master (`yarn`, `k8s://...`, `spark://...`, `local-cluster[2,1,1024]`).
    pub master: String,
    /// The launcher, `deploy/spark/strongroom_spark.py`.
    pub launcher: PathBuf,
    /// The `strongroom` binary as executors see it (a path, or inside an archive shipped with
    /// `archives`, e.g. `./sr/strongroom` for `strongroom.tar.gz#sr`).
    pub worker: String,
    /// The Python executors run (`PYSPARK_PYTHON`), when not the cluster's default.
    pub executor_python: Option<String>,
    /// `--archives` entries (the release's binary, for a cluster that does not have it).
    pub archives: Vec<String>,
    /// Further Spark settings (memory, queues); the ones a room depends on are set after these.
    pub conf: Vec<(String, String)>,
    /// Where the run's Spark settings (0600, removed after) and its driver log are written.
    pub work_dir: PathBuf,
    /// How long a run may take before its driver (and everything it started) is killed.
    pub timeout: Duration,
}

/// Spark settings a room's runs depend on, set after the bank's own: no speculative copies (a
/// copy would be harmless, but doubles the work), one application attempt, as many task attempts
/// as a token allows, and Spark's own authentication and encryption on.
fn fixed_settings(run: &str, secret: &str) -> Vec<(String, String)> {
    [
        ("spark.app.name", format!("strongroom run {run}")),
        ("spark.submit.deployMode", "client".into()),
        ("spark.speculation", "false".into()),
        ("spark.task.maxFailures", MAX_ATTEMPTS.to_string()),
        ("spark.yarn.maxAppAttempts", "1".into()),
        ("spark.authenticate", "true".into()),
        ("spark.authenticate.secret", secret.to_string()),
        ("spark.network.crypto.enabled", "true".into()),
        ("spark.io.encryption.enabled", "true".into()),
        ("spark.sql.execution.arrow.pyspark.enabled", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Prefix of a result line on the launcher's stdout.
const RESULT_PREFIX: &str = "SRENV ";

impl Engine for Spark {
    fn run(&self, run: &str, tasks: &[Task], module: &Path) -> Result<Vec<Vec<u8>>, String> {
        let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
        let dir = self.work_dir.join("spark");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        // Spark's settings go in a file only this user reads (the cluster secret among them),
        // not on a command line every local user can list.
        // A run's settings file lives while its driver starts; one left by a coordinator that was
        // killed holds a secret of a cluster application that has ended, and goes now.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("run-") && name.ends_with(".properties") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let secret = hex::encode(random32()?);
        let mut settings = self.conf.clone();
        settings.extend(fixed_settings(run, &secret));
        let mut properties = tempfile::Builder::new()
            .prefix("run-")
            .suffix(".properties")
            .tempfile_in(&dir)
            .map_err(|e| io(&dir, e))?;
        let mut text = Zeroizing::new(String::new());
        for (k, v) in &settings {
            text.push_str(&format!("{k}={}\n", v.replace('\\', "\\\\")));
        }
        properties
            .write_all(text.as_bytes())
            .map_err(|e| io(properties.path(), e))?;
        let log_path = dir.join(format!("{run}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| io(&log_path, e))?;
        // Paths only: pyspark splits these on spaces.
        let mut submit = vec![
            "--master".to_string(),
            self.master.clone(),
            "--properties-file".to_string(),
            properties.path().display().to_string(),
            "--files".to_string(),
            module.display().to_string(),
        ];
        if !self.archives.is_empty() {
            submit.extend(["--archives".to_string(), self.archives.join(",")]);
        }
        submit.push("pyspark-shell".to_string());
        if submit.iter().any(|a| a.contains(char::is_whitespace)) {
            return Err(format!(
                "a path for spark-submit holds a space: {}",
                submit.join(" ")
            ));
        }
        let mut command = Command::new(&self.python);
        command
            .env("PYSPARK_SUBMIT_ARGS", submit.join(" "))
            .arg(&self.launcher)
            .arg("--worker")
            .arg(&self.worker)
            .arg("--module-name")
            .arg(module.file_name().unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(python) = &self.executor_python {
            command.env("PYSPARK_PYTHON", python);
        }
        if let Some(home) = &self.spark_home {
            command.env("SPARK_HOME", home);
        }
        // Its own process group: a run past its time is killed whole (the driver's JVM too).
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("{}: {e}", self.python.display()))?;
        let stdin = child.stdin.take();
        let group = child.id();
        let finished = std::sync::atomic::AtomicBool::new(false);
        let timed_out = std::sync::atomic::AtomicBool::new(false);
        let feeding = std::thread::scope(|scope| {
            scope.spawn(|| {
                let deadline = std::time::Instant::now() + self.timeout;
                while !finished.load(Ordering::Relaxed) {
                    if std::time::Instant::now() >= deadline {
                        timed_out.store(true, Ordering::Relaxed);
                        let _ = Command::new("kill")
                            .args(["-KILL", "--", &format!("-{group}")])
                            .status();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            let feeder = scope.spawn(move || -> std::io::Result<()> {
                if let Some(mut stdin) = stdin {
                    for task in tasks {
                        let line = Zeroizing::new(format!(
                            "{}\n",
                            serde_json::json!({
                                "partition": task.partition,
                                "spec": task.spec,
                                "token": &*task.token,
                            })
                        ));
                        stdin.write_all(line.as_bytes())?;
                    }
                }
                Ok(())
            });
            let mut answers = Vec::new();
            if let Some(stdout) = child.stdout.take() {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix(RESULT_PREFIX)
                        && let Some((_, b64)) = rest.split_once(' ')
                        && let Ok(bytes) = B64.decode(b64.trim())
                    {
                        answers.push(bytes);
                    }
                }
            }
            finished.store(true, Ordering::Relaxed);
            (feeder.join(), answers)
        });
        let (fed, answers) = feeding;
        let status = child.wait().map_err(|e| format!("the Spark driver: {e}"))?;
        drop(properties);
        if timed_out.load(Ordering::Relaxed) {
            return Err(format!(
                "the Spark run took over {} s and was stopped (engine timeout_seconds; its log: {})",
                self.timeout.as_secs(),
                log_path.display()
            ));
        }
        if !status.success() {
            let mut logged = Vec::new();
            let _ = std::fs::File::open(&log_path).and_then(|mut f| f.read_to_end(&mut logged));
            let last = String::from_utf8_lossy(&logged)
                .lines()
                .rfind(|l| {
                    l.contains("Error") || l.contains("Exception") || l.contains("strongroom")
                })
                .unwrap_or("")
                .to_string();
            return Err(format!(
                "the Spark driver exited with {status} (its log: {}): {last}",
                log_path.display()
            ));
        }
        if !matches!(fed, Ok(Ok(()))) {
            return Err("the Spark driver did not read every task".into());
        }
        Ok(answers)
    }
}

/// `[engine]` in room.toml: where a room runs the partitions of isolated-mode jobs on sealed
/// datasets. Without it, every run is local.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// `processes` or `spark`.
    pub kind: EngineKind,
    /// Entities per partition.
    #[serde(default = "default_partition_entities")]
    pub partition_entities: u32,
    /// Where the key-release listener binds.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The host workers reach the coordinator at (default: the address bound).
    #[serde(default)]
    pub advertise: Option<String>,
    /// A directory every worker can read (the module is staged there); relative to the room.
    #[serde(default = "default_work_dir")]
    pub work_dir: PathBuf,
    /// The `strongroom` binary workers run (default: this one).
    #[serde(default)]
    pub worker: Option<String>,
    /// Threads per worker.
    #[serde(default = "one")]
    pub worker_threads: u32,
    /// `processes`: workers at once.
    #[serde(default = "one")]
    pub parallel: u32,
    /// A partition without an authentic partial: `fail` the run, or `split` it into one
    /// partition per customer and drop the customers whose own partition is refused.
    #[serde(default)]
    pub on_refused_partition: super::coordinator::OnRefused,
    /// How long a run's partitions may take, in seconds, before the engine is stopped (the job
    /// then fails for the bank, its charge kept).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// `spark`: how to reach the cluster.
    #[serde(default)]
    pub spark: Option<SparkConfig>,
}

/// The engines a room can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Worker processes on the room's machine.
    Processes,
    /// A Spark cluster.
    Spark,
}

/// `[engine.spark]`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkConfig {
    /// The Python that runs the launcher (with PySpark).
    #[serde(default = "default_python")]
    pub python: PathBuf,
    /// `SPARK_HOME`, when not PySpark's own.
    #[serde(default)]
    pub spark_home: Option<PathBuf>,
    /// The master.
    pub master: String,
    /// The launcher (`deploy/spark/strongroom_spark.py` of the release).
    pub launcher: PathBuf,
    /// `PYSPARK_PYTHON` for the executors.
    #[serde(default)]
    pub executor_python: Option<String>,
    /// `--archives` entries.
    #[serde(default)]
    pub archives: Vec<String>,
    /// Further Spark settings.
    #[serde(default)]
    pub conf: std::collections::BTreeMap<String, String>,
}

fn default_partition_entities() -> u32 {
    super::coordinator::DEFAULT_PARTITION_ENTITIES
}
fn default_listen() -> String {
    "127.0.0.1:0".into()
}
fn default_work_dir() -> PathBuf {
    PathBuf::from("engine")
}
fn default_python() -> PathBuf {
    PathBuf::from("python3")
}
fn default_timeout() -> u64 {
    6 * 3600
}
fn one() -> u32 {
    1
}

impl EngineConfig {
    /// Checks the settings, for a one-line error when the room opens.
    pub fn check(&self) -> Result<(), String> {
        if self.partition_entities == 0 {
            return Err("[engine] partition_entities must be at least 1".into());
        }
        if self.timeout_seconds == 0 {
            return Err("[engine] timeout_seconds must be at least 1".into());
        }
        if self.worker_threads == 0 || self.parallel == 0 {
            return Err("[engine] worker_threads and parallel must be at least 1".into());
        }
        if self.kind == EngineKind::Spark && self.spark.is_none() {
            return Err("[engine] kind = \"spark\" needs an [engine.spark] section".into());
        }
        Ok(())
    }

    /// The placement and the engine, for the room in `room_dir`.
    pub fn build(
        &self,
        room_dir: &Path,
    ) -> Result<(super::coordinator::Placement, Box<dyn Engine>), String> {
        self.check()?;
        let work_dir = room_dir.join(&self.work_dir);
        let worker = match &self.worker {
            Some(w) => w.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("[engine] worker: {e}"))?
                .display()
                .to_string(),
        };
        let placement = super::coordinator::Placement {
            partition_entities: self.partition_entities,
            listen: self.listen.clone(),
            advertise: self.advertise.clone(),
            work_dir: work_dir.clone(),
            worker_threads: self.worker_threads,
            on_refused: self.on_refused_partition,
        };
        let engine: Box<dyn Engine> = match (self.kind, &self.spark) {
            (EngineKind::Processes, _) => Box::new(Processes {
                worker: PathBuf::from(worker),
                parallel: self.parallel as usize,
            }),
            (EngineKind::Spark, Some(spark)) => Box::new(Spark {
                python: spark.python.clone(),
                spark_home: spark.spark_home.clone(),
                master: spark.master.clone(),
                launcher: room_dir.join(&spark.launcher),
                worker,
                executor_python: spark.executor_python.clone(),
                archives: spark.archives.clone(),
                conf: spark.conf.clone().into_iter().collect(),
                work_dir,
                timeout: Duration::from_secs(self.timeout_seconds),
            }),
            (EngineKind::Spark, None) => return Err("[engine.spark] is missing".into()),
        };
        Ok((placement, engine))
    }
}
