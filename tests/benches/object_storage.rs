//! Reading a sealed dataset from the room's directory, through the object storage client on a
//! directory (`file://`), and from a real S3-compatible server (`s3s-fs`, over loopback with
//! signed requests): what opening it (header, the chunks' lengths, the index) and reading it
//! window by window (every chunk fetched by range, authenticated, decoded) cost, side by side.
//!
//! Preparation is timed apart and is in no contender's time: generating and sealing the data,
//! starting the server and uploading the file (reported, with its own time). Every contender runs
//! STRONGROOM_BENCH_RUNS times (default 3), each in a fresh process; the table shows the median
//! and the spread (min-max) of opening and of reading, and the process's peak resident memory.
//! Every run must read exactly the rows the file holds.
//!
//! `cargo bench -p strongroom-tests --bench object_storage`
//! Size: STRONGROOM_BENCH_CUSTOMERS (default 100000, about 2 million card transactions). The
//! server: s3s-fs on PATH or STRONGROOM_TEST_S3S_FS (`cargo install s3s-fs --version 0.14.1
//! --features binary`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strongroom::data_at_rest::blob::Blob;
use strongroom::data_at_rest::storage::StorageConfig;
use strongroom::data_at_rest::stream::{DEFAULT_WINDOW_ENTITIES, SealedSource};
use strongroom::keys::{OperatorSecret, RoomKeys};
use strongroom_tests::peak_resident_mib;

const PHASE_ENV: &str = "STRONGROOM_BENCH_PHASE";
const DIR_ENV: &str = "STRONGROOM_BENCH_DIR";
const PORT_ENV: &str = "STRONGROOM_BENCH_S3_PORT";
const ACCESS_KEY: &str = "strongroom-bench";
const SECRET_KEY: &str = "strongroom-bench-secret";
const BUCKET: &str = "bench";
const SECRET: &[u8] = b"object storage bench";

fn keys(dir: &Path) -> RoomKeys {
    RoomKeys::open("bench", &dir.join("keys"), &OperatorSecret::new(SECRET)).expect("keys")
}

fn storage(dir: &Path, contender: &str) -> Option<StorageConfig> {
    match contender {
        "directory" => Some(StorageConfig {
            url: format!("file://{}", dir.join("store").display()),
            endpoint: None,
            region: None,
            allow_http: false,
        }),
        "s3s-fs" => Some(StorageConfig {
            url: format!("s3://{BUCKET}/rooms/bench"),
            endpoint: Some(format!(
                "http://127.0.0.1:{}",
                std::env::var(PORT_ENV).expect("port")
            )),
            region: None,
            allow_http: true,
        }),
        _ => None,
    }
}

/// A child: uploads the file (`upload:CONTENDER`) or reads it (`read:CONTENDER`), and prints
/// what it measured as one JSON line.
fn child(phase: &str) {
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("dir"));
    let (what, contender) = phase.split_once(':').expect("phase");
    let sealed = dir.join("bank.sealed");
    if what == "upload" {
        let store = storage(&dir, contender)
            .expect("a store")
            .open()
            .expect("opens");
        let started = Instant::now();
        let bytes = store.put_file(&sealed, "bank.sealed").expect("upload");
        println!(
            "{}",
            serde_json::json!({ "seconds": started.elapsed().as_secs_f64(), "bytes": bytes })
        );
        return;
    }
    let keys = keys(&dir);
    let blob = match storage(&dir, contender) {
        Some(config) => config
            .open()
            .expect("opens")
            .blob("bank.sealed")
            .expect("blob"),
        None => Blob::File(sealed),
    };
    let started = Instant::now();
    let source = SealedSource::open_blob(blob, &keys).expect("open");
    let open = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut rows = vec![0usize; source.shape().tables.len()];
    for window in source.windows(DEFAULT_WINDOW_ENTITIES).expect("windows") {
        let window = window.expect("window");
        for (t, table) in window.tables.iter().enumerate() {
            rows[t] += table.rows();
        }
    }
    let read = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "open": open,
            "read": read,
            "rows": rows,
            "chunks": source.header().chunks,
            "peak_mib": peak_resident_mib(),
        })
    );
}

fn run_child(dir: &Path, phase: &str, port: u16) -> serde_json::Value {
    let out = Command::new(std::env::current_exe().expect("exe"))
        .env(PHASE_ENV, phase)
        .env(DIR_ENV, dir)
        .env(PORT_ENV, port.to_string())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{phase}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a report");
    serde_json::from_str(line).expect("json")
}

fn s3s_fs() -> Option<PathBuf> {
    std::env::var_os("STRONGROOM_TEST_S3S_FS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join("s3s-fs"))
                .find(|f| f.is_file())
        })
}

fn median_and_spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn main() {
    if let Ok(phase) = std::env::var(PHASE_ENV) {
        child(&phase);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let customers: usize = std::env::var("STRONGROOM_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runs: usize = std::env::var("STRONGROOM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let Some(server) = s3s_fs() else {
        eprintln!("no s3s-fs: cargo install s3s-fs --version 0.14.1 --features binary");
        std::process::exit(2);
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();

    // Preparation, timed apart.
    let started = Instant::now();
    RoomKeys::generate("bench", &dir.join("keys"), &OperatorSecret::new(SECRET)).expect("keys");
    let sealed =
        strongroom_tests::seal_synthetic(dir, &keys(dir).public, customers, 20.0, 7, 65_536);
    let size = std::fs::metadata(&sealed).expect("sealed").len();
    println!(
        "prepared {customers} customers, {:.1} MiB sealed, in {:.1} s",
        size as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    let root = dir.join("s3");
    std::fs::create_dir_all(root.join(BUCKET)).expect("bucket");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut s3 = Command::new(server)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs");
    let waited = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "s3s-fs did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for contender in ["directory", "s3s-fs"] {
        let up = run_child(dir, &format!("upload:{contender}"), port);
        println!(
            "upload to {contender}: {:.2} s ({:.0} MiB/s, parts of 8 MiB)",
            up["seconds"].as_f64().unwrap_or(0.0),
            size as f64 / (1 << 20) as f64 / up["seconds"].as_f64().unwrap_or(1.0)
        );
    }

    println!();
    println!("| read from | open s (min-max) | read s (min-max) | MiB/s | vs file | peak MiB |");
    println!("|---|---|---|---|---|---|");
    let mut file_read = None;
    let mut expected_rows: Option<serde_json::Value> = None;
    let mut chunks = 0;
    for (contender, label) in [
        ("file", "a file in the room's directory"),
        ("directory", "object_store on a directory (file://)"),
        ("s3s-fs", "an S3-compatible server (s3s-fs, loopback)"),
    ] {
        let mut opens = Vec::new();
        let mut reads = Vec::new();
        let mut peak: f64 = 0.0;
        for _ in 0..runs {
            let r = run_child(dir, &format!("read:{contender}"), port);
            match &expected_rows {
                None => expected_rows = Some(r["rows"].clone()),
                Some(rows) => assert_eq!(&r["rows"], rows, "{contender} read other rows"),
            }
            chunks = r["chunks"].as_u64().unwrap_or(0);
            opens.push(r["open"].as_f64().unwrap_or(0.0));
            reads.push(r["read"].as_f64().unwrap_or(0.0));
            peak = peak.max(r["peak_mib"].as_f64().unwrap_or(0.0));
        }
        let (open, open_min, open_max) = median_and_spread(opens);
        let (read, read_min, read_max) = median_and_spread(reads);
        let base = *file_read.get_or_insert(open + read);
        println!(
            "| {label} | {open:.3} ({open_min:.3}-{open_max:.3}) | {read:.2} ({read_min:.2}-{read_max:.2}) | {:.0} | {:.2}x | {peak:.0} |",
            size as f64 / (1 << 20) as f64 / (open + read),
            (open + read) / base,
        );
    }
    println!(
        "\nrows read (customers, transactions), the same in every run: {}; {chunks} chunks: from \
         a store, opening is 1 HEAD, 1 GET of the header and one small GET per chunk's length \
         prefix, and reading is one ranged GET per chunk",
        expected_rows.unwrap_or_default()
    );
    let _ = s3.kill();
    let _ = s3.wait();
}
