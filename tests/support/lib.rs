//! Shared helpers for Strongroom's end-to-end and adversarial tests: the guest modules built from
//! source by the build script (examples/ and tests/guests/), small synthetic datasets, and a
//! sandbox to run them in.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use strongroom::dataset::Dataset;
use strongroom::guest_boundary::sandbox::EngineSettings;
use strongroom::guest_boundary::{PreparedModule, RunContext, RunLimits, RunReport, Sandbox, vet};
use strongroom_contract::manifest::Mode;
use strongroom_synthetic as synthetic;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_module(dir: PathBuf, crate_name: &str) -> Vec<u8> {
    let path = dir.join(format!("{}.wasm", crate_name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A hostile guest from tests/guests/, built from source by the build script.
pub fn hostile(crate_name: &str) -> Vec<u8> {
    read_module(PathBuf::from(env!("STRONGROOM_GUESTS_WASM")), crate_name)
}

/// An example module from examples/, built from source by the build script.
pub fn example(crate_name: &str) -> Vec<u8> {
    read_module(PathBuf::from(env!("STRONGROOM_EXAMPLES_WASM")), crate_name)
}

/// An example module from examples/ built against version 0.1 of the contract.
pub fn example_v0_1(crate_name: &str) -> Vec<u8> {
    read_module(
        PathBuf::from(env!("STRONGROOM_EXAMPLES_V0_1_WASM")),
        crate_name,
    )
}

/// A hostile module from tests/guests-cells/ (version 0.2 of the contract, forged cells).
pub fn cell_guest(crate_name: &str) -> Vec<u8> {
    read_module(
        PathBuf::from(env!("STRONGROOM_CELL_GUESTS_WASM")),
        crate_name,
    )
}

/// The member crates of a guest workspace, read from its Cargo.toml.
pub fn workspace_members(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("guest workspace manifest");
    let start = text.find("members = [").expect("members list");
    let end = start + text[start..].find(']').expect("end of members list");
    text[start..end]
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// A small synthetic bank.
pub fn small_bank(customers: usize) -> Arc<Dataset> {
    Arc::new(synthetic::generate(customers, 20.0, 42).dataset())
}

/// One engine shared by a test binary, as in a real room.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(&EngineSettings::default()).expect("engine builds"))
}

/// Vets and prepares module bytes, panicking with the vetting error if refused.
pub fn prepare(bytes: &[u8]) -> PreparedModule {
    let module = vet(
        bytes,
        strongroom::guest_boundary::vetting::DEFAULT_MAX_MODULE_BYTES,
    )
    .unwrap_or_else(|e| panic!("module refused: {e}"));
    sandbox().prepare(module, None).expect("module compiles")
}

/// Runs a prepared module in its declared mode.
pub fn run(module: &PreparedModule, dataset: &Arc<Dataset>, limits: RunLimits) -> RunReport {
    run_in(module, dataset, limits, module.module.manifest.mode, 2)
}

/// Runs a prepared module in `mode` on `threads` threads.
pub fn run_in(
    module: &PreparedModule,
    dataset: &Arc<Dataset>,
    limits: RunLimits,
    mode: Mode,
    threads: usize,
) -> RunReport {
    let ctx = RunContext::new(
        Arc::clone(dataset),
        module.module.manifest.clone(),
        mode,
        limits,
        [7; 32],
    )
    .unwrap_or_else(|e| panic!("run refused: {e}"));
    sandbox().run(module, Arc::new(ctx), threads)
}

/// Resident set size of this process in bytes (Linux), for "host memory stays bounded" checks.
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB; 0 where unknown.
pub fn peak_resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A new room in a temporary directory, with `policy` set.
pub async fn room_with(
    policy: &strongroom::room::policy::Policy,
) -> (tempfile::TempDir, strongroom::room::Room) {
    let dir = tempfile::tempdir().expect("tempdir");
    let room = strongroom::room::Room::create(
        &dir.path().join("room"),
        "test-room",
        &strongroom::keys::OperatorSecret::new(b"test secret"),
    )
    .await
    .expect("room");
    room.set_policy(policy).await.expect("policy set");
    (dir, room)
}

/// A seeded ChaCha20 byte stream for the noise samplers, so statistical tests reproduce.
pub struct SeededBytes(pub rand_chacha::ChaCha20Rng);

impl SeededBytes {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        use rand_chacha::rand_core::SeedableRng;
        SeededBytes(rand_chacha::ChaCha20Rng::seed_from_u64(seed))
    }
}

impl strongroom::output_gate::sampling::RandomBytes for SeededBytes {
    fn fill(
        &mut self,
        dest: &mut [u8],
    ) -> Result<(), strongroom::output_gate::sampling::SamplingError> {
        rand_chacha::rand_core::Rng::fill_bytes(&mut self.0, dest);
        Ok(())
    }
}

/// The values of a float column.
pub fn floats(d: &Dataset, table: &str, column: &str) -> Vec<f64> {
    match d
        .table(table)
        .and_then(|t| t.column(column))
        .map(|c| &c.data)
    {
        Some(strongroom::dataset::ColumnData::Float(v)) => v.clone(),
        other => panic!("{table}.{column} is not a float column: {other:?}"),
    }
}

/// The values of an int column.
pub fn ints(d: &Dataset, table: &str, column: &str) -> Vec<i64> {
    match d
        .table(table)
        .and_then(|t| t.column(column))
        .map(|c| &c.data)
    {
        Some(strongroom::dataset::ColumnData::Int(v)) => v.clone(),
        other => panic!("{table}.{column} is not an int column: {other:?}"),
    }
}

/// The values of a bool column.
pub fn bools(d: &Dataset, table: &str, column: &str) -> Vec<bool> {
    match d
        .table(table)
        .and_then(|t| t.column(column))
        .map(|c| &c.data)
    {
        Some(strongroom::dataset::ColumnData::Bool(v)) => v.clone(),
        other => panic!("{table}.{column} is not a bool column: {other:?}"),
    }
}

/// The dictionary codes of a category column.
pub fn categories(d: &Dataset, table: &str, column: &str) -> Vec<u32> {
    match d
        .table(table)
        .and_then(|t| t.column(column))
        .map(|c| &c.data)
    {
        Some(strongroom::dataset::ColumnData::Category(v)) => v.clone(),
        other => panic!("{table}.{column} is not a category column: {other:?}"),
    }
}

pub mod http;

/// A job of `socialco`'s on the synthetic test bank `data` (sealed by `bigbank`), costing 0.5 rho,
/// on two threads, with no audience or parameters.
pub fn job_request<'a>(
    module: &'a [u8],
    data: &Arc<Dataset>,
) -> strongroom::room::jobs::JobRequest<'a> {
    strongroom::room::jobs::JobRequest {
        partner: "socialco",
        module,
        sql: None,
        dataset: Arc::clone(data).into(),
        dataset_sha256: "00".repeat(32),
        dataset_origin: "synthetic test bank".into(),
        sealed_by: "bigbank".into(),
        cost_nano: 500_000_000,
        threads: 2,
        audience: None,
        job_id: None,
        parameters: Vec::new(),
        progress: None,
    }
}

/// A sqlx pool on a SQLite room's database file, for tests that look inside it (or damage it)
/// with their own statements.
pub async fn sqlite_pool(room: &strongroom::room::Room) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", room.dir().join("room.db").display());
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("the room's SQLite database")
}

/// The PostgreSQL server the tests put their rooms on, if any: `STRONGROOM_TEST_POSTGRES`, a
/// URL whose user may create databases (CI sets it for a second run of the service suite; a
/// plain `cargo test` uses SQLite).
pub fn test_postgres() -> Option<String> {
    std::env::var("STRONGROOM_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A fresh, empty database with the `C` collation on the test PostgreSQL server at `admin_url`,
/// as a URL for a room.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let admin =
        sqlx::postgres::PgConnectOptions::from_str(admin_url).expect("STRONGROOM_TEST_POSTGRES");
    let mut conn = admin.connect().await.expect("the test PostgreSQL server");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "strongroom_test_{}_{}_{}",
        std::process::id(),
        stamp % 1_000_000_000_000,
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    sqlx::query(&format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
    ))
    .execute(&mut conn)
    .await
    .expect("create a test database");
    admin.database(&name).to_url_lossy().to_string()
}

/// A new room in `dir`: on a fresh database of the test PostgreSQL server when there is one
/// (see [`test_postgres`]), else on SQLite.
pub async fn new_room(
    dir: &Path,
    name: &str,
    secret: &strongroom::keys::OperatorSecret,
) -> strongroom::room::Room {
    let url = match test_postgres() {
        Some(admin) => Some(fresh_postgres_database(&admin).await),
        None => None,
    };
    strongroom::room::Room::create_on(dir, name, secret, url.as_deref())
        .await
        .expect("room")
}

/// One integer a query returns, read on `room`'s database (SQLite or PostgreSQL).
pub fn query_i64(
    room: &strongroom::room::Room,
    sql: &str,
    params: &[&dyn strongroom::room::db::ToValue],
) -> i64 {
    room.db()
        .read(|conn| {
            conn.query_row(sql, params, |r| r.get(0))
                .map_err(strongroom::group_commit::WriteError::from)
        })
        .expect("query")
}

/// Runs one statement on `room`'s database, outside the room's own changes (to stage a crash).
pub fn execute(
    room: &strongroom::room::Room,
    sql: &str,
    params: &[&dyn strongroom::room::db::ToValue],
) -> usize {
    room.db()
        .write(|conn| {
            conn.execute(sql, params)
                .map_err(strongroom::group_commit::WriteError::from)
        })
        .expect("statement")
}

/// A synthetic bank (`customers`, about `transactions_each` card transactions each, from
/// `seed`) written under `dir` and sealed by "bigbank" to `room` in chunks of `chunk_rows` rows:
/// the sealed file's path.
pub fn seal_synthetic(
    dir: &Path,
    room: &strongroom::keys::RoomPublicKeys,
    customers: usize,
    transactions_each: f64,
    seed: u64,
    chunk_rows: usize,
) -> PathBuf {
    let data = dir.join("bank-data");
    synthetic::generate(customers, transactions_each, seed)
        .write_csv(&data)
        .expect("csv");
    let party =
        strongroom::data_at_rest::party::PartyKey::generate("bigbank", &dir.join("bank.key"))
            .expect("key");
    let out = dir.join("bank.sealed");
    strongroom::data_at_rest::seal::seal(
        &strongroom::dataset::schema::DatasetSchema::load(&data.join("schema.toml"))
            .expect("schema"),
        &[
            ("customers".into(), data.join("customers.csv")),
            ("transactions".into(), data.join("transactions.csv")),
        ],
        room,
        &party,
        chunk_rows,
        &out,
        false,
    )
    .expect("seal");
    out
}
