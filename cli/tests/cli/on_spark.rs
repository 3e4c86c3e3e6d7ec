//! A room's jobs with their partitions run elsewhere, as an operator configures it in room.toml
//! (`[engine]`): on worker processes, and on a real multi-process Spark cluster
//! (`local-cluster[2,1,1024]`: a master, two workers and their executor JVMs, started by PySpark
//! from PyPI with the machine's Java). The released aggregates equal the local run's exactly; an
//! executor killed while it runs a task is replaced, the task retried, and the result is the same;
//! a partition whose chunk was damaged after the room checked the file is refused in-band, not
//! retried, and the job fails for the bank with the cause (or, under `split`, runs again one
//! customer per task and releases without the damaged chunk's customers); answers told twice,
//! forged or from another run are dropped, and the result is the same.
//!
//! PySpark is installed from PyPI into this test's target directory on first use. Without Java
//! or the registry the Spark tests say they were skipped, except under CI, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::commands::{example_module, ok, p};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo")
}

fn strongroom_bin() -> &'static str {
    env!("CARGO_BIN_EXE_strongroom")
}

/// A Python with PySpark, installed once; `None` (after saying why) when it cannot be.
fn spark_python() -> Option<&'static Path> {
    static ONCE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let installed = ONCE.get_or_init(|| {
        let java = Command::new("java").arg("-version").output();
        if !java.is_ok_and(|o| o.status.success()) {
            return Err("Java (Debian's openjdk-17-jre-headless)".into());
        }
        strongroom_contract::guest_languages::pyspark(
            &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("spark-python"),
        )
        .map_err(|e| e.to_string())
    });
    match installed {
        Ok(python) => Some(python),
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("{e} (CI installs it: .ci/run)");
            }
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// One Spark cluster at a time: each takes both cores while it starts.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

const CUSTOMERS: &str = "3000";
const PARTITION_ENTITIES: u32 = 700;

/// A room with the demo bank sealed to it in small chunks, and a policy that releases exact
/// results, so released values are the aggregates.
struct Bank {
    tmp: tempfile::TempDir,
    room: PathBuf,
    sealed: PathBuf,
}

fn bank() -> Bank {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let room = dir.join("room");
    ok(&["keygen", "--room", p(&room), "--name", "spark"]);
    let data = dir.join("data");
    ok(&["demo-data", "--customers", CUSTOMERS, "--out", p(&data)]);
    let key = dir.join("bigbank.key");
    ok(&["party-key", "--name", "bigbank", "--out", p(&key)]);
    let sealed = dir.join("bank.sealed");
    ok(&[
        "seal",
        "--schema",
        p(&data.join("schema.toml")),
        "--room-key",
        p(&room.join("keys/room.pub")),
        "--party-key",
        p(&key),
        "--table",
        &format!("customers={}", p(&data.join("customers.csv"))),
        "--table",
        &format!("transactions={}", p(&data.join("transactions.csv"))),
        "--chunk-rows",
        "2000",
        "--out",
        p(&sealed),
    ]);
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"100\"\nmechanism = \"none\"\n\
         allow_unnoised = true\nmin_group_size = 1\nresult_delay_seconds = 0\n",
    )
    .expect("policy");
    ok(&["policy", "set", "--room", p(&room), "--file", p(&policy)]);
    Bank { tmp, room, sealed }
}

impl Bank {
    /// Sets the room's `[engine]` (none: every run local).
    fn engine(&self, section: &str) {
        std::fs::write(
            self.room.join("room.toml"),
            format!("name = \"spark\"\n{section}"),
        )
        .expect("room.toml");
    }

    fn spark_engine(&self, python: &Path) -> String {
        format!(
            "[engine]\nkind = \"spark\"\npartition_entities = {PARTITION_ENTITIES}\nworker = \"{}\"\n\
             [engine.spark]\npython = \"{}\"\nexecutor_python = \"{}\"\n\
             master = \"local-cluster[2,1,1024]\"\nlauncher = \"{}\"\n\
             conf = {{ \"spark.eventLog.enabled\" = \"true\", \"spark.eventLog.dir\" = \"file://{}\" }}\n",
            strongroom_bin(),
            python.display(),
            python.display(),
            repo().join("deploy/spark/strongroom_spark.py").display(),
            self.events().display(),
        )
    }

    /// Spark's event log directory for this room's runs.
    fn events(&self) -> PathBuf {
        let dir = self.tmp.path().join("spark-events");
        std::fs::create_dir_all(&dir).expect("events dir");
        dir
    }

    /// The dataset's key, as the room unwraps it.
    fn data_key(&self) -> Vec<u8> {
        let keys = strongroom::keys::RoomKeys::open(
            "spark",
            &self.room.join("keys"),
            &strongroom::keys::OperatorSecret::new(b"cli command tests"),
        )
        .expect("room keys");
        let source = strongroom::data_at_rest::stream::SealedSource::open(&self.sealed, &keys)
            .expect("opens");
        source.data_key(&keys).expect("key").to_vec()
    }

    fn run_args<'a>(&'a self, dataset: &'a Path, out: &'a Path) -> Vec<String> {
        let module = example_module("spend-by-category");
        [
            "run",
            "--room",
            p(&self.room),
            "--module",
            p(&module),
            "--partner",
            "socialco",
            "--dataset",
            p(dataset),
            "--cost",
            "0.01",
            "--threads",
            "2",
            "--out",
            p(out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Runs the example query and returns the released metrics.
    fn run(&self, name: &str) -> Value {
        let out = self.tmp.path().join(format!("{name}.json"));
        let args = self.run_args(&self.sealed, &out);
        let stdout = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(stdout.contains("outcome completed, released"), "{stdout}");
        metrics(&out)
    }

    /// The driver logs of the room's Spark runs, joined.
    fn driver_logs(&self) -> String {
        let dir = self.room.join("engine/spark");
        let mut text = String::new();
        for entry in std::fs::read_dir(&dir).expect("logs").flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }
}

fn metrics(path: &Path) -> Value {
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("result")).expect("json");
    result["metrics"].clone()
}

#[test]
fn a_job_on_worker_processes_and_on_a_multi_process_spark_cluster_equals_the_local_run() {
    let bank = bank();
    let local = bank.run("local");
    assert!(local.as_array().is_some_and(|m| !m.is_empty()));

    bank.engine(&format!(
        "[engine]\nkind = \"processes\"\npartition_entities = {PARTITION_ENTITIES}\n\
         worker = \"{}\"\nparallel = 2\n",
        strongroom_bin()
    ));
    assert_eq!(bank.run("processes"), local, "worker processes");

    let Some(python) = spark_python() else { return };
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    bank.engine(&bank.spark_engine(python));
    let started = std::time::SystemTime::now();
    assert_eq!(bank.run("spark"), local, "Spark");

    // The dataset key is nowhere in what Spark wrote: its event log, the driver's log, the
    // executors' logs and working directories, the room's staging directory.
    let key = bank.data_key();
    let spark_home = Command::new(python)
        .args([
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ])
        .output()
        .expect("pyspark");
    let spark_work = PathBuf::from(String::from_utf8_lossy(&spark_home.stdout).trim()).join("work");
    let mut files = Vec::new();
    let mut stack = vec![bank.events(), bank.room.join("engine"), spark_work];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            if entry.path().is_dir() {
                if modified.is_some_and(|m| m >= started) || !dir.ends_with("work") {
                    stack.push(entry.path());
                }
            } else {
                files.push(entry.path());
            }
        }
    }
    assert!(
        files.iter().any(|f| f.starts_with(bank.events())),
        "Spark wrote its event log: {files:?}"
    );
    use base64::Engine as _;
    let hex_key = hex::encode(&key);
    let b64_key = base64::engine::general_purpose::STANDARD.encode(&key);
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&hex_key)
                && !text.contains(&b64_key)
                && !bytes.windows(key.len()).any(|w| w == key.as_slice()),
            "the dataset key is in {}",
            file.display()
        );
    }
    let logs = bank.driver_logs();
    let tasks = CUSTOMERS
        .parse::<u32>()
        .expect("n")
        .div_ceil(PARTITION_ENTITIES);
    assert!(
        logs.contains(&format!(
            "master local-cluster[2,1,1024]: {tasks} tasks, {tasks} answers"
        )),
        "the launcher's summary:\n{logs}"
    );
    // No settings file with the cluster's secret is left behind.
    let left: Vec<_> = std::fs::read_dir(bank.room.join("engine/spark"))
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".properties"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Waits until the room has started Spark (its driver log exists), then changes one byte of a
/// middle chunk of `copy`: damage after the room checked the file, before any worker reads it.
fn damage_once_spark_starts(bank: &Bank, copy: &Path) {
    let logs = bank.room.join("engine/spark");
    let started = Instant::now();
    while !std::fs::read_dir(&logs).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "log"))
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "Spark never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut bytes = std::fs::read(copy).expect("sealed");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(copy, &bytes).expect("damage");
}

/// Starts `strongroom ARGS` as the tests' commands do, its output piped.
fn spawn_job(args: &[String]) -> std::process::Child {
    Command::new(strongroom_bin())
        .args(args)
        .env("STRONGROOM_PASSPHRASE", super::commands::PASSPHRASE)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs")
}

/// The parent of process `pid`.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The executor JVM running a `strongroom worker` right now, if any.
fn executor_running_a_worker() -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if !cmdline(pid).contains(" worker --module ") {
            continue;
        }
        let mut up = pid;
        while let Some(next) = parent(up) {
            if next <= 1 {
                break;
            }
            if cmdline(next).contains("CoarseGrainedExecutorBackend") {
                return Some(next);
            }
            up = next;
        }
    }
    None
}

#[test]
fn an_executor_killed_mid_task_is_replaced_the_task_retried_and_the_result_the_same() {
    let Some(python) = spark_python() else { return };
    let bank = bank();
    let local = bank.run("local");
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    bank.engine(&bank.spark_engine(python));
    let out = bank.tmp.path().join("killed.json");
    let args = bank.run_args(&bank.sealed, &out);
    let mut job = spawn_job(&args);
    let started = Instant::now();
    let mut killed = None;
    while killed.is_none() && started.elapsed() < Duration::from_secs(180) {
        if let Ok(Some(_)) = job.try_wait() {
            break;
        }
        if let Some(executor) = executor_running_a_worker() {
            let status = Command::new("kill")
                .args(["-9", &executor.to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
            killed = Some(executor);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let done = job.wait_with_output().expect("job ends");
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        killed.is_some(),
        "no executor was caught running a worker: {stdout}"
    );
    assert!(
        done.status.success() && stdout.contains("outcome completed, released"),
        "{stdout}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(metrics(&out), local, "the same result after the retry");
    assert!(
        stdout.contains("more than one for partition"),
        "a partition's key was released again for its retry: {stdout}"
    );
    let logs = bank.driver_logs();
    assert!(logs.contains("Lost executor"), "Spark saw the executor go");
    assert!(
        !logs.contains("answered on a retry: []"),
        "a partition was answered on a retry:\n{logs}"
    );
}

/// A launcher that runs the real one and then lies about what came back: with
/// `STRONGROOM_TEST_SAVE_ANSWERS` it keeps the answers in that file and passes them on; otherwise
/// it passes every answer on twice, adds a forged copy of the first (one byte of it changed) and
/// every answer of the run saved in `STRONGROOM_TEST_OTHER_RUN`.
const LYING_LAUNCHER: &str = r#"
import base64, contextlib, io, os, runpy, sys
captured = io.StringIO()
with contextlib.redirect_stdout(captured):
    runpy.run_path(os.environ["STRONGROOM_TEST_REAL_LAUNCHER"], run_name="__main__")
answers = [l for l in captured.getvalue().splitlines() if l.startswith("SRENV ")]
save = os.environ.get("STRONGROOM_TEST_SAVE_ANSWERS")
if save:
    with open(save, "w") as f:
        f.write("\n".join(answers))
    for line in answers:
        print(line)
else:
    for line in answers:
        print(line)
        print(line)
    _, partition, encoded = answers[0].split(" ")
    forged = bytearray(base64.b64decode(encoded))
    forged[len(forged) // 2] ^= 1
    print(f"SRENV {partition} {base64.b64encode(bytes(forged)).decode()}")
    with open(os.environ["STRONGROOM_TEST_OTHER_RUN"]) as f:
        for line in f.read().splitlines():
            print(line)
sys.stdout.flush()
"#;

#[test]
fn duplicated_forged_and_another_runs_answers_from_spark_are_dropped_and_the_result_is_the_same() {
    let Some(python) = spark_python() else { return };
    let bank = bank();
    let local = bank.run("local");
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let lying = bank.tmp.path().join("lying_launcher.py");
    std::fs::write(&lying, LYING_LAUNCHER).expect("launcher");
    let real = repo().join("deploy/spark/strongroom_spark.py");
    bank.engine(
        &bank
            .spark_engine(python)
            .replace(&real.display().to_string(), &lying.display().to_string()),
    );
    let saved = bank.tmp.path().join("first-run.answers");
    let run = |name: &str, env: &[(&str, &Path)]| -> (Value, String) {
        let out = bank.tmp.path().join(format!("{name}.json"));
        let args = bank.run_args(&bank.sealed, &out);
        let done = Command::new(strongroom_bin())
            .args(&args)
            .env("STRONGROOM_PASSPHRASE", super::commands::PASSPHRASE)
            .env("STRONGROOM_TEST_REAL_LAUNCHER", &real)
            .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
        assert!(
            done.status.success() && stdout.contains("outcome completed, released"),
            "{stdout}{}",
            String::from_utf8_lossy(&done.stderr)
        );
        (metrics(&out), stdout)
    };
    // A first run, whose answers are kept.
    let (first, _) = run("first", &[("STRONGROOM_TEST_SAVE_ANSWERS", &saved)]);
    assert_eq!(first, local);
    let tasks = CUSTOMERS
        .parse::<u32>()
        .expect("n")
        .div_ceil(PARTITION_ENTITIES);
    let kept = std::fs::read_to_string(&saved).expect("saved");
    assert_eq!(kept.lines().count() as u32, tasks);
    // A second, told every answer twice, a forged one and all of the first run's: one partial
    // per partition is kept, the rest dropped or refused, and the result is the same.
    let (second, stdout) = run("second", &[("STRONGROOM_TEST_OTHER_RUN", &saved)]);
    assert_eq!(second, local, "the same result");
    assert!(
        stdout.contains(&format!(
            "{tasks} planned, {tasks} partials accepted, {tasks} duplicates dropped, {} answers refused",
            tasks + 1
        )),
        "the bank sees what was dropped and refused: {stdout}"
    );
}

#[test]
fn a_partition_whose_chunk_was_damaged_at_rest_is_refused_on_spark_without_a_retry() {
    let Some(python) = spark_python() else { return };
    let bank = bank();
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    bank.engine(&bank.spark_engine(python));
    // The room checks every chunk of the file before it charges; the damage comes after that
    // (storage failing, or someone with write access to it), once the room has started Spark
    // (its driver log exists), before any worker reads: one byte of a middle chunk.
    let copy = bank.tmp.path().join("damaged.sealed");
    std::fs::copy(&bank.sealed, &copy).expect("copy");
    let out = bank.tmp.path().join("damaged.json");
    let args = bank.run_args(&copy, &out);
    let job = spawn_job(&args);
    damage_once_spark_starts(&bank, &copy);
    let done = job.wait_with_output().expect("job ends");
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        stdout.contains("outcome host_error, nothing released")
            && stdout.contains("refused: the dataset")
            && stdout.contains("failed authentication"),
        "the bank sees which chunk: {stdout}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let logs = bank.driver_logs();
    assert!(
        !logs.contains("Lost task") && logs.contains("answered on a retry: []"),
        "a refusal is an answer, not a failure Spark retries:\n{logs}"
    );
}

#[test]
fn a_damaged_chunk_under_the_split_policy_drops_its_customers_and_releases_the_rest_on_spark() {
    let Some(python) = spark_python() else { return };
    let bank = bank();
    let local = bank.run("local");
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    // Smaller partitions, so the refused one's customers are few tasks when run one by one.
    bank.engine(&bank.spark_engine(python).replace(
        &format!("partition_entities = {PARTITION_ENTITIES}\n"),
        "partition_entities = 150\non_refused_partition = \"split\"\n",
    ));
    let copy = bank.tmp.path().join("damaged.sealed");
    std::fs::copy(&bank.sealed, &copy).expect("copy");
    let out = bank.tmp.path().join("split.json");
    let job = spawn_job(&bank.run_args(&copy, &out));
    // The damage lands after the room checked the file, once Spark is starting.
    damage_once_spark_starts(&bank, &copy);
    let done = job.wait_with_output().expect("job ends");
    let stdout = String::from_utf8_lossy(&done.stdout);
    // The job releases: the refused partition ran again one customer per task, and only the
    // customers whose rows lie in the damaged chunk are missing from the result.
    assert!(
        done.status.success()
            && stdout.contains("outcome completed, released")
            && stdout.contains("customers run again one per partition")
            && stdout.contains("failed authentication"),
        "{stdout}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let split = metrics(&out);
    assert!(split.as_array().is_some_and(|m| !m.is_empty()));
    assert_ne!(
        split, local,
        "the damaged chunk's customers are not counted"
    );
    let logs = bank.driver_logs();
    assert!(
        !logs.contains("Lost task"),
        "a refusal is an answer, not a failure Spark retries:\n{logs}"
    );
}

#[test]
fn a_room_with_a_bad_engine_section_does_not_open_and_says_which_setting() {
    let bank = bank();
    let out = bank.tmp.path().join("never.json");
    let args = bank.run_args(&bank.sealed, &out);
    for (section, says) in [
        (
            "[engine]\nkind = \"spark\"\n",
            "needs an [engine.spark] section",
        ),
        (
            "[engine]\nkind = \"processes\"\npartition_entities = 0\n",
            "partition_entities",
        ),
        (
            "[engine]\nkind = \"processes\"\ncores = 4\n",
            "unknown field",
        ),
        ("[engine]\nkind = \"yarn\"\n", "unknown variant"),
    ] {
        bank.engine(section);
        let done =
            super::commands::strongroom(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(2), "{section}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            lines.len() == 1 && lines[0].contains(says) && lines[0].contains("room.toml"),
            "{section}: one line naming the setting, not: {stderr}"
        );
        assert!(!out.exists(), "nothing ran");
    }
}
