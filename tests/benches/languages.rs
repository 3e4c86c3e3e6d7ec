//! Query 1 (spend by merchant category and age band) written in Rust, Python and JavaScript, in
//! one run on the same generated data: time per customer in isolated mode (a fresh instance per
//! customer) and batched mode (the bank approved the module: many customers per instance).
//!
//! Preparation is timed apart and is in no contender's time: installing the SDKs with their
//! toolchains (PyPI, npm), building the three modules (`cargo build`, `strongroom-guest build`,
//! `strongroom-guest-js build`), and, in each run, compiling the module (reported as "compile").
//! Every contender runs STRONGROOM_BENCH_RUNS times (default 3), each in a fresh process pinned to
//! the first core, with one worker thread; the table shows the median, the spread (min-max), time
//! per customer, the ratio to the Rust module in the same mode, and the process's peak resident
//! memory (VmHWM). Every run's exact aggregate must equal the Rust module's in isolated mode.
//!
//! `cargo bench -p strongroom-tests --bench languages`
//! Size: STRONGROOM_BENCH_CUSTOMERS (default 20000, about 400,000 card transactions); some rows
//! only: STRONGROOM_BENCH_ONLY="Python,Python (empty query)"; the engine's resident part of a
//! memory slot: STRONGROOM_BENCH_KEEP_RESIDENT_MIB (default 1). The Python
//! and JavaScript builds embed their manifest with the `strongroom` binary: STRONGROOM=PATH, or
//! target/release/strongroom, or target/debug/strongroom (`cargo build -p strongroom-cli`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use strongroom::guest_boundary::sandbox::EngineSettings;
use strongroom::guest_boundary::vetting::DEFAULT_MAX_MODULE_BYTES;
use strongroom::guest_boundary::{RunContext, Sandbox, vet};
use strongroom_contract::guest_languages::GuestLanguages;
use strongroom_contract::manifest::Mode;
use strongroom_synthetic as synthetic;
use strongroom_tests::{example, peak_resident_mib};

const PHASE_ENV: &str = "STRONGROOM_BENCH_PHASE";
const DIR_ENV: &str = "STRONGROOM_BENCH_DIR";
const LANGUAGES: &[(&str, &str)] = &[
    ("Rust", "rust.wasm"),
    ("Python", "python.wasm"),
    ("JavaScript", "javascript.wasm"),
];
/// Modules that read one table and contribute nothing: what a fresh instance costs per customer
/// before the query's own work.
const EMPTY: &[(&str, &str)] = &[
    ("Rust (empty query)", "rust-empty.wasm"),
    ("Python (empty query)", "python-empty.wasm"),
    ("JavaScript (empty query)", "javascript-empty.wasm"),
];
const EMPTY_PY: &str = "from strongroom_guest import CATEGORY, Metric, Query, Table\n\
customers = Table(\"customers\", age_band=CATEGORY)\n\
N = Metric.count(\"n\", [customers.age_band])\n\
query = Query(name=\"empty\", version=\"0.1.0\", reads=[customers], metrics=[N], max_groups_per_entity=1)\n\
query.run(lambda: None)\n";
const EMPTY_JS: &str = "import { CATEGORY, Metric, Query, Table } from \"strongroom-guest\";\n\
const customers = new Table(\"customers\", { age_band: CATEGORY });\n\
const N = Metric.count(\"n\", [customers.column(\"age_band\")]);\n\
export const query = new Query({ name: \"empty\", version: \"0.1.0\", reads: [customers], metrics: [N], maxGroupsPerEntity: 1, run() {} });\n";
const MODES: &[&str] = &["isolated", "batched"];

fn customers() -> usize {
    std::env::var("STRONGROOM_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo")
}

/// In a child: runs one module in one mode over the whole bank, one worker thread; prints its
/// numbers and a digest of the exact aggregate as JSON.
fn phase(dir: &Path, module: &str, mode: &str) {
    let data = Arc::new(synthetic::generate(customers(), 20.0, 42).dataset());
    let mut settings = EngineSettings::default();
    if let Some(mib) = std::env::var("STRONGROOM_BENCH_KEEP_RESIDENT_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        settings.keep_resident_bytes = mib << 20;
    }
    let sandbox = Sandbox::new(&settings).expect("engine");
    let bytes = std::fs::read(dir.join(module)).expect("module");
    let compiling = Instant::now();
    let vetted = vet(&bytes, DEFAULT_MAX_MODULE_BYTES).expect("vetted");
    let limits = vetted.toolchain.limits();
    let prepared = sandbox.prepare(vetted, None).expect("compiles");
    if mode == "batched" {
        assert!(prepared.prepare_batched(&sandbox), "links for batched runs");
    }
    let compile = compiling.elapsed().as_secs_f64();
    let ctx = RunContext::new(
        Arc::clone(&data),
        prepared.module.manifest.clone(),
        Mode::Isolated,
        limits,
        [3; 32],
    )
    .expect("admitted")
    .with_batched(mode == "batched");
    let started = Instant::now();
    let report = sandbox.run(&prepared, Arc::new(ctx), 1);
    let seconds = started.elapsed().as_secs_f64();
    let aggregate = report.aggregate.expect("aggregate");
    let digest = if module.contains("empty") {
        // Nothing to check: an empty query releases nothing.
        ring::digest::digest(&ring::digest::SHA256, b"empty")
    } else {
        ring::digest::digest(
            &ring::digest::SHA256,
            format!("{:?}", aggregate.metrics).as_bytes(),
        )
    };
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "compile": compile,
            "failed": report.failed_units.values().sum::<u64>(),
            "peak_mib": peak_resident_mib(),
            "digest": hex::encode(digest.as_ref()),
        })
    );
}

struct Run {
    seconds: f64,
    compile: f64,
    peak_mib: f64,
    digest: String,
}

fn run_once(dir: &Path, module: &str, mode: &str) -> Result<Run, String> {
    let out = Command::new("taskset")
        .args(["-c", "0"])
        .arg(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(PHASE_ENV, format!("{module}:{mode}"))
        .env(DIR_ENV, dir)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed")
            .to_string());
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("no report")?;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if v["failed"].as_u64() != Some(0) {
        return Err(format!("{} customers failed", v["failed"]));
    }
    Ok(Run {
        seconds: v["seconds"].as_f64().ok_or("seconds")?,
        compile: v["compile"].as_f64().ok_or("compile")?,
        peak_mib: v["peak_mib"].as_f64().unwrap_or(0.0),
        digest: v["digest"].as_str().ok_or("digest")?.to_string(),
    })
}

fn strongroom_bin() -> Option<PathBuf> {
    if let Some(given) = std::env::var_os("STRONGROOM") {
        return Some(PathBuf::from(given));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("strongroom"))
        .find(|p| p.exists())
}

fn main() {
    if let Ok(phase_spec) = std::env::var(PHASE_ENV) {
        let dir = PathBuf::from(std::env::var(DIR_ENV).expect("STRONGROOM_BENCH_DIR"));
        let (module, mode) = phase_spec.split_once(':').expect("module:mode");
        phase(&dir, module, mode);
        return;
    }
    let runs: usize = std::env::var("STRONGROOM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("tmp");
    let root = repo();
    let Some(strongroom) = strongroom_bin() else {
        eprintln!(
            "no strongroom binary to embed manifests with: cargo build -p strongroom-cli, or STRONGROOM=PATH"
        );
        std::process::exit(2);
    };

    // Preparation, timed apart.
    let started = Instant::now();
    let languages = GuestLanguages::install(
        &root,
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guest-toolchains"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "preparation: SDKs and toolchains installed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    std::fs::write(dir.path().join("rust.wasm"), example("spend-by-category")).expect("write");
    println!(
        "preparation: Rust module (cargo, release) {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (what, build) in [
        (
            "Python",
            languages.build_python(
                &root.join("examples/python/spend_by_category.py"),
                &dir.path().join("python.wasm"),
                &strongroom,
            ),
        ),
        (
            "JavaScript",
            languages.build_js(
                &root.join("examples/javascript/spend-by-category.js"),
                &dir.path().join("javascript.wasm"),
                &strongroom,
            ),
        ),
    ] {
        let build = build.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            build.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&build.stderr)
        );
    }
    println!(
        "preparation: Python and JavaScript modules built in {:.1} s (both)",
        started.elapsed().as_secs_f64()
    );
    // The empty queries (the Rust one, bench-noop, reads no table; the others read one column).
    std::fs::write(dir.path().join("rust-empty.wasm"), example("bench-noop")).expect("write");
    std::fs::write(dir.path().join("empty.py"), EMPTY_PY).expect("write");
    std::fs::write(dir.path().join("empty.js"), EMPTY_JS).expect("write");
    std::fs::create_dir_all(dir.path().join("node_modules")).expect("mkdir");
    std::os::unix::fs::symlink(
        root.join("guest-sdk-js"),
        dir.path().join("node_modules/strongroom-guest"),
    )
    .expect("link");
    for (what, build) in [
        (
            "empty.py",
            languages.build_python(
                &dir.path().join("empty.py"),
                &dir.path().join("python-empty.wasm"),
                &strongroom,
            ),
        ),
        (
            "empty.js",
            languages.build_js(
                &dir.path().join("empty.js"),
                &dir.path().join("javascript-empty.wasm"),
                &strongroom,
            ),
        ),
    ] {
        let build = build.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            build.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&build.stderr)
        );
    }
    for (language, module) in LANGUAGES {
        let size = std::fs::metadata(dir.path().join(module))
            .expect("module")
            .len();
        println!("module: {language} {size} bytes");
    }

    let n = customers();
    println!(
        "\nquery 1 on {n} customers, 1 core, 1 worker thread, {runs} runs per contender (median, min-max)\n"
    );
    println!(
        "| language | mode | run s | min-max s | per customer | vs Rust | compile s | peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut reference: Option<String> = None;
    let mut rust_median = std::collections::HashMap::new();
    let rows = MODES
        .iter()
        .flat_map(|mode| LANGUAGES.iter().map(move |l| (*mode, *l)))
        .chain(EMPTY.iter().map(|l| ("isolated (empty)", *l)));
    {
        let only = std::env::var("STRONGROOM_BENCH_ONLY").unwrap_or_default();
        for (mode, (language, module)) in rows {
            if !only.is_empty() && !only.split(',').any(|o| o == language) {
                continue;
            }
            let run_mode = if mode == "batched" {
                "batched"
            } else {
                "isolated"
            };
            let mut results = Vec::new();
            for _ in 0..runs {
                match run_once(dir.path(), module, run_mode) {
                    Ok(r) => results.push(r),
                    Err(e) => {
                        println!("| {language} | {mode} | failed: {e} | | | | | |");
                        break;
                    }
                }
            }
            if results.len() < runs {
                continue;
            }
            for r in results.iter().filter(|_| !module.contains("empty")) {
                match &reference {
                    None => reference = Some(r.digest.clone()),
                    Some(d) => assert_eq!(
                        &r.digest, d,
                        "{language} {mode}: another exact aggregate than the Rust module's"
                    ),
                }
            }
            let mut seconds: Vec<f64> = results.iter().map(|r| r.seconds).collect();
            seconds.sort_by(f64::total_cmp);
            let median = seconds[seconds.len() / 2];
            if language.starts_with("Rust") {
                rust_median.insert(mode, median);
            }
            let ratio = rust_median
                .get(mode)
                .map_or("-".to_string(), |r| format!("{:.1}x", median / r));
            let mut compile: Vec<f64> = results.iter().map(|r| r.compile).collect();
            compile.sort_by(f64::total_cmp);
            let peak = results.iter().map(|r| r.peak_mib).fold(0.0, f64::max);
            println!(
                "| {language} | {mode} | {median:.2} | {:.2}-{:.2} | {:.1} us | {ratio} | {:.2} | {peak:.0} |",
                seconds[0],
                seconds[seconds.len() - 1],
                median / n as f64 * 1e6,
                compile[compile.len() / 2],
            );
        }
    }
    println!("\nevery run's exact aggregate equals the Rust module's (checked by digest)");
}
