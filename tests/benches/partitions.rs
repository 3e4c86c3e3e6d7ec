//! One job (query 1, spend by merchant category and age band, isolated mode) on the same sealed
//! bank, run by the room locally and with its partitions on Spark: a real multi-process cluster
//! on this machine (`local-cluster[E,1,2048]`: a master, E workers, one single-core executor JVM
//! each), with one and two executors, and with four times as many tasks to price a task.
//!
//! Preparation is timed apart and in no contender's time: generating and sealing the bank,
//! building the module, installing PySpark. Every contender is a fresh `strongroom run` process,
//! STRONGROOM_BENCH_RUNS times (default 3); the table shows the median wall time, the spread
//! (min-max), time per customer, speedup over one local thread, the Spark driver's start and its
//! tasks' time (from the launcher's summary), and peak resident memory sampled every 100 ms: the
//! room's process with everything it started, and the largest executor (its JVM, its Python
//! daemon and workers). Every run's released aggregate (exact: `mechanism = "none"`) must equal
//! the first local run's.
//!
//! `cargo build --release -p strongroom-cli && cargo bench -p strongroom-tests --bench partitions`
//! Size: STRONGROOM_BENCH_CUSTOMERS (default 1000000, about 20,000,000 card transactions); the
//! binary: STRONGROOM (default target/release/strongroom); PySpark: STRONGROOM_SPARK_PYTHON (a
//! Python that imports pyspark; default: `strongroom_contract::guest_languages::pyspark` installs it into target/tmp/spark-python).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strongroom_tests::example;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo")
}

fn binary() -> PathBuf {
    std::env::var_os("STRONGROOM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/strongroom"))
}

fn sr(args: &[&str]) -> String {
    let out = Command::new(binary())
        .args(args)
        .env("STRONGROOM_PASSPHRASE", "bench")
        .output()
        .expect("strongroom runs");
    assert!(
        out.status.success(),
        "strongroom {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn spark_python() -> PathBuf {
    if let Some(p) = std::env::var_os("STRONGROOM_SPARK_PYTHON") {
        return PathBuf::from(p);
    }
    strongroom_contract::guest_languages::pyspark(
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("spark-python"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The children of every thread of `pid` (a JVM starts processes from threads of its own).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse().ok())
        .unwrap_or(0)
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Resident memory of `pid` and its descendants, KiB, and the largest executor's tree.
fn sample(pid: u32) -> (u64, u64) {
    fn tree(pid: u32, total: &mut u64, executor: &mut u64, inside: Option<&mut u64>) {
        let mine = rss_kib(pid);
        *total += mine;
        let mut own = 0;
        let is_executor = inside.is_none() && cmdline(pid).contains("CoarseGrainedExecutorBackend");
        match inside {
            Some(acc) => {
                *acc += mine;
                for c in children(pid) {
                    tree(c, total, executor, Some(acc));
                }
            }
            None if is_executor => {
                own += mine;
                for c in children(pid) {
                    tree(c, total, executor, Some(&mut own));
                }
                *executor = (*executor).max(own);
            }
            None => {
                for c in children(pid) {
                    tree(c, total, executor, None);
                }
            }
        }
    }
    let (mut total, mut executor) = (0, 0);
    tree(pid, &mut total, &mut executor, None);
    (total, executor)
}

struct Run {
    seconds: f64,
    peak_mib: f64,
    executor_mib: f64,
    driver: Option<Driver>,
}

/// The launcher's summary of a Spark run.
#[derive(Clone, Copy)]
struct Driver {
    /// The driver's start, s.
    start: f64,
    /// From the driver's start to the last answer, s.
    tasks: f64,
    /// From the driver's start to the first task's start (executors launched and registered), s.
    first_task: f64,
    /// Every worker's wall time, summed, s.
    workers: f64,
}

fn run_once(room: &Path, module: &Path, sealed: &Path, threads: &str, out: &Path) -> Run {
    let started = Instant::now();
    let child = Command::new(binary())
        .args(["run", "--room"])
        .arg(room)
        .arg("--module")
        .arg(module)
        .args(["--partner", "socialco", "--dataset"])
        .arg(sealed)
        .args(["--cost", "0.01", "--threads", threads, "--out"])
        .arg(out)
        .env("STRONGROOM_PASSPHRASE", "bench")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let (mut peak, mut exec) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let (t, e) = sample(pid);
                peak = peak.max(t);
                exec = exec.max(e);
                std::thread::sleep(Duration::from_millis(100));
            }
            (peak, exec)
        })
    };
    let output = child.wait_with_output().expect("ends");
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (peak, exec) = sampler.join().expect("sampler");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The launcher's summary, from the newest driver log.
    let logs = room.join("engine/spark");
    let driver = std::fs::read_dir(&logs).ok().and_then(|d| {
        let newest = d
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?;
        let text = std::fs::read_to_string(newest.path()).ok()?;
        std::fs::remove_file(newest.path()).ok()?;
        let line = text.lines().rfind(|l| l.contains("driver started in"))?;
        let num = |after: &str| -> Option<f64> {
            line.split(after)
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(Driver {
            start: num("driver started in ")?,
            tasks: num("tasks ran in ")?,
            first_task: num("first task began ")?,
            workers: num("workers ")?,
        })
    });
    Run {
        seconds,
        peak_mib: peak as f64 / 1024.0,
        executor_mib: exec as f64 / 1024.0,
        driver,
    }
}

fn metrics(path: &Path) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("result")).expect("json");
    v["metrics"].clone()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let customers = env_usize("STRONGROOM_BENCH_CUSTOMERS", 1_000_000);
    let runs = env_usize("STRONGROOM_BENCH_RUNS", 3);
    assert!(
        binary().exists(),
        "{} is missing: cargo build --release -p strongroom-cli",
        binary().display()
    );

    let prep = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let room = dir.join("room");
    sr(&[
        "keygen",
        "--room",
        room.to_str().expect("utf-8"),
        "--name",
        "bench",
    ]);
    let data = dir.join("data");
    let p = |path: &Path| path.to_str().expect("utf-8").to_string();
    sr(&[
        "demo-data",
        "--customers",
        &customers.to_string(),
        "--out",
        &p(&data),
    ]);
    sr(&[
        "party-key",
        "--name",
        "bigbank",
        "--out",
        &p(&dir.join("bank.key")),
    ]);
    let sealed = dir.join("bank.sealed");
    sr(&[
        "seal",
        "--schema",
        &p(&data.join("schema.toml")),
        "--room-key",
        &p(&room.join("keys/room.pub")),
        "--party-key",
        &p(&dir.join("bank.key")),
        "--table",
        &format!("customers={}", p(&data.join("customers.csv"))),
        "--table",
        &format!("transactions={}", p(&data.join("transactions.csv"))),
        "--out",
        &p(&sealed),
    ]);
    std::fs::write(
        dir.join("policy.toml"),
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1000000\"\nmechanism = \"none\"\n\
         allow_unnoised = true\nmin_group_size = 1\nresult_delay_seconds = 0\n",
    )
    .expect("policy");
    sr(&[
        "policy",
        "set",
        "--room",
        &p(&room),
        "--file",
        &p(&dir.join("policy.toml")),
    ]);
    let module = dir.join("spend-by-category.wasm");
    std::fs::write(&module, example("spend-by-category")).expect("module");
    let python = spark_python();
    println!(
        "preparation (data, sealing, module, PySpark): {:.1} s; {customers} customers, {} bytes sealed; {runs} runs each\n",
        prep.elapsed().as_secs_f64(),
        std::fs::metadata(&sealed).map(|m| m.len()).unwrap_or(0)
    );

    let spark = |executors: u32, partition: usize| {
        format!(
            "name = \"bench\"\n[engine]\nkind = \"spark\"\npartition_entities = {partition}\nworker = \"{}\"\n\
             [engine.spark]\npython = \"{}\"\nexecutor_python = \"{}\"\nmaster = \"local-cluster[{executors},1,2048]\"\n\
             launcher = \"{}\"\n",
            binary().display(),
            python.display(),
            python.display(),
            repo().join("deploy/spark/strongroom_spark.py").display()
        )
    };
    let few = customers.div_ceil(8);
    let many = customers.div_ceil(32);
    let contenders: Vec<(String, String, &str, usize)> = vec![
        (
            "local, 1 thread".into(),
            "name = \"bench\"\n".into(),
            "1",
            1,
        ),
        (
            "local, 2 threads".into(),
            "name = \"bench\"\n".into(),
            "2",
            1,
        ),
        (
            "Spark, 1 executor, 8 tasks".into(),
            spark(1, few),
            "1",
            customers.div_ceil(few),
        ),
        (
            "Spark, 2 executors, 8 tasks".into(),
            spark(2, few),
            "1",
            customers.div_ceil(few),
        ),
        (
            "Spark, 2 executors, 32 tasks".into(),
            spark(2, many),
            "1",
            customers.div_ceil(many),
        ),
    ];
    let mut reference = None;
    let mut base = None;
    let mut spark_two: Vec<(usize, f64, f64)> = Vec::new();
    println!(
        "{:<30} {:>5} {:>9} {:>13} {:>11} {:>7} {:>7} {:>11} {:>8} {:>9} {:>14}",
        "contender",
        "tasks",
        "median s",
        "spread s",
        "µs/customer",
        "speedup",
        "driver",
        "1st task at",
        "tasks s",
        "workers s",
        "peak MiB (ex.)"
    );
    for (name, toml, threads, tasks) in &contenders {
        std::fs::write(room.join("room.toml"), toml).expect("room.toml");
        let mut results = Vec::new();
        for r in 0..runs {
            let out = dir.join(format!("out-{r}.json"));
            let run = run_once(&room, &module, &sealed, threads, &out);
            let m = metrics(&out);
            match &reference {
                None => reference = Some(m),
                Some(expected) => assert_eq!(&m, expected, "{name}: a different aggregate"),
            }
            results.push(run);
        }
        let secs: Vec<f64> = results.iter().map(|r| r.seconds).collect();
        let med = median(secs.clone());
        let min = secs.iter().copied().fold(f64::MAX, f64::min);
        let max = secs.iter().copied().fold(0.0, f64::max);
        let base = *base.get_or_insert(med);
        let driver = |field: fn(&Driver) -> f64| {
            let v: Vec<f64> = results
                .iter()
                .filter_map(|r| r.driver.as_ref().map(field))
                .collect();
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2}", median(v))
            }
        };
        let peak = median(results.iter().map(|r| r.peak_mib).collect());
        let exec = median(results.iter().map(|r| r.executor_mib).collect());
        if name.starts_with("Spark, 2") {
            let workers: Vec<f64> = results
                .iter()
                .filter_map(|r| r.driver.map(|d| d.workers))
                .collect();
            let busy: Vec<f64> = results
                .iter()
                .filter_map(|r| r.driver.map(|d| d.tasks - d.first_task))
                .collect();
            if !workers.is_empty() {
                spark_two.push((*tasks, median(workers), median(busy)));
            }
        }
        println!(
            "{:<30} {:>5} {:>9.2} {:>13} {:>11.1} {:>7.2} {:>7} {:>11} {:>8} {:>9} {:>14}",
            name,
            tasks,
            med,
            format!("{min:.2}-{max:.2}"),
            med * 1e6 / customers as f64,
            base / med,
            driver(|d| d.start),
            driver(|d| d.first_task),
            driver(|d| d.tasks),
            driver(|d| d.workers),
            if exec > 0.0 {
                format!("{peak:.0} ({exec:.0})")
            } else {
                format!("{peak:.0}")
            },
        );
    }
    if let [
        (few_tasks, few_w, few_busy),
        (many_tasks, many_w, many_busy),
    ] = spark_two[..]
    {
        let extra = many_tasks as f64 - few_tasks as f64;
        // Inside the workers: process start, key release, opening the file, the cached module.
        let in_worker = (many_w - few_w) / extra;
        // On the executors, from the first task to the last answer, two at a time: the worker's
        // share plus Spark's scheduling and the Python daemon's fork.
        let per_task = 2.0 * (many_busy - few_busy) / extra;
        println!(
            "\nper extra task (2 executors, {few_tasks} vs {many_tasks} tasks): {:.0} ms of executor time, \
             {:.0} ms of it inside the worker",
            per_task * 1000.0,
            in_worker * 1000.0
        );
        println!(
            "executors busy from first task to last answer: {few_busy:.2} s for {few_tasks} tasks, \
             {many_busy:.2} s for {many_tasks}; workers' own time {few_w:.2} s and {many_w:.2} s"
        );
    }
}
