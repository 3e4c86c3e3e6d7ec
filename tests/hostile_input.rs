//! Authentic but hostile input: files sealed with the room's public key, which authenticate but
//! lie in their counts or contents, and failures inside a worker. Each test here failed before
//! its defence existed (the process aborted on an allocation, a worker died with its job, a
//! check passed that the decoder then trusted, a cap was overshot).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;
use strongroom::data_at_rest::format::Header;
use strongroom::data_at_rest::open::{OpenError, SealedFile, verify_file};
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::seal_raw;
use strongroom::keys::OperatorSecret;
use strongroom::room::Room;
use strongroom_server::auth::{self, Role};
use strongroom_server::{ServiceConfig, router, start};
use strongroom_tests::http::{Served, call, get, json_body, sealed_bank, served};
use strongroom_tests::{example, query_i64};

/// Jobs run by the tests that switch on a failure point must not overlap other jobs.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Re-seals the content of `sealed` (opened with the room's key) after `lie` changed its header or
/// its chunk plaintexts, signed by a party of the attacker's own: it authenticates.
fn reseal(
    sealed: &[u8],
    room: &Room,
    party: &PartyKey,
    lie: impl FnOnce(&mut Header, &mut Vec<Vec<u8>>),
) -> Vec<u8> {
    let file = SealedFile::parse(sealed).expect("parses");
    let mut chunks: Vec<Vec<u8>> = file
        .plaintext_chunks(room.keys())
        .expect("opens")
        .iter()
        .map(|c| c.to_vec())
        .collect();
    let mut header = file.header.clone();
    lie(&mut header, &mut chunks);
    seal_raw(&room.keys().public, party, header, &chunks).expect("seals")
}

/// A served room (see `strongroom_tests::http::served`), the bank's data sealed to it, and an
/// attacker's party key named like the partner.
struct Setup {
    served: Served,
    sealed: Vec<u8>,
    attacker: PartyKey,
}

impl std::ops::Deref for Setup {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.served
    }
}

async fn setup(config: ServiceConfig) -> Setup {
    let served = served(config).await;
    let dir = served.dir.path();
    let sealed = sealed_bank(dir, &served.state.room);
    let attacker = PartyKey::generate("socialco", &dir.join("socialco.key")).expect("key");
    Setup {
        served,
        sealed,
        attacker,
    }
}

/// Sends `bytes` to an upload route and expects a refusal (422).
async fn refused_upload(
    s: &Setup,
    method: &str,
    path: &str,
    token: &str,
    bytes: Vec<u8>,
    what: &str,
) {
    let (status, _, problem) = call(&s.app, method, path, Some(token), Body::from(bytes)).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what}: {problem}"
    );
}

/// A named change to a header.
type HeaderLie = (&'static str, Box<dyn Fn(&mut Header)>);

/// A named change to a header and the chunk plaintexts.
type ContentLie = (&'static str, Box<dyn Fn(&mut Header, &mut Vec<Vec<u8>>)>);

/// Headers claiming more than the file can hold, checked before anything is sized by them.
fn lying_headers() -> Vec<HeaderLie> {
    vec![
        ("2^56 entities", Box::new(|h| h.entities = 1 << 56)),
        ("2^62 entities", Box::new(|h| h.entities = 1 << 62)),
        ("u64::MAX entities", Box::new(|h| h.entities = u64::MAX)),
        (
            "2^40 rows",
            Box::new(|h| {
                h.tables[0].rows = 1 << 40;
            }),
        ),
        ("zero rows per chunk", Box::new(|h| h.chunk_rows = 0)),
        ("2^40 chunks", Box::new(|h| h.chunks = 1 << 40)),
        ("format 7", Box::new(|h| h.format = 7)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_lie_about_counts_are_refused_before_anything_is_allocated() {
    let s = setup(ServiceConfig::default()).await;
    for (what, lie) in lying_headers() {
        let bytes = reseal(&s.sealed, &s.state.room, &s.attacker, |h, _| lie(h));
        let refused = SealedFile::parse(&bytes).err();
        assert!(
            matches!(refused, Some(OpenError::Malformed(_))),
            "{what}: {refused:?}"
        );
        // The bank's upload and a partner's audience list: refused with a reason, and the
        // service keeps serving.
        refused_upload(&s, "PUT", "/v1/datasets", &s.bank, bytes.clone(), what).await;
        refused_upload(&s, "POST", "/v1/audience-lists", &s.partner, bytes, what).await;
    }
    let (status, _, _) = get(&s.app, "/v1/datasets", &s.bank).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        std::fs::read_dir(s.state.room.dir().join("uploads"))
            .expect("uploads")
            .count(),
        0,
        "refused uploads leave nothing behind"
    );
}

/// Contents that authenticate but do not match the header, the index or the schema.
fn lying_contents() -> Vec<ContentLie> {
    vec![
        (
            "index claims other row counts",
            Box::new(|_, c| {
                let last = c.len() - 1;
                let mut index: Vec<Value> = serde_json::from_slice(&c[last]).expect("index");
                index[0]["rows"] = json!(index[0]["rows"].as_u64().expect("rows") - 1);
                c[last] = serde_json::to_vec(&index).expect("json");
            }),
        ),
        (
            "two chunks of a table swapped",
            Box::new(|_, c| {
                // Chunks 0 and 1 are the customers table's first two (4096 rows each is more
                // than 300 customers, so take transactions: chunks 1 and 2).
                c.swap(1, 2);
            }),
        ),
        (
            "a chunk of one table holds another's batch",
            Box::new(|_, c| {
                c[1] = c[0].clone();
            }),
        ),
        (
            "an entity ordinal beyond the header's count",
            Box::new(|h, _| {
                h.entities -= 1;
            }),
        ),
        (
            "a chunk that is not Arrow",
            Box::new(|_, c| {
                c[1] = vec![0xff; 64];
            }),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contents_that_lie_are_refused_by_verify_as_by_open() {
    let s = setup(ServiceConfig::default()).await;
    let room = &s.state.room;
    let dir = tempfile::tempdir().expect("tmp");
    // The honest file passes all three ways of reading it.
    let honest = SealedFile::parse(&s.sealed).expect("parses");
    honest.verify(room.keys(), 2).expect("verifies");
    honest.open(room.keys(), 2).expect("opens");
    for (what, lie) in lying_contents() {
        let bytes = reseal(&s.sealed, room, &s.attacker, |h, c| lie(h, c));
        let file = SealedFile::parse(&bytes).expect("the header is consistent");
        let opened = file.open(room.keys(), 2).err();
        assert!(
            matches!(opened, Some(OpenError::Content(_))),
            "{what}: open: {opened:?}"
        );
        // `dataset inspect --verify` checks what open trusts: never "verified" for these.
        let verified = file.verify(room.keys(), 2).err();
        assert_eq!(verified, opened, "{what}: verify agrees with open");
        let path = dir.path().join("lie.sealed");
        std::fs::write(&path, &bytes).expect("write");
        let streamed = verify_file(&path, room.keys()).err();
        assert!(
            matches!(streamed, Some(OpenError::Content(_))),
            "{what}: streaming check: {streamed:?}"
        );
        refused_upload(&s, "PUT", "/v1/datasets", &s.bank, bytes, what).await;
    }
}

async fn wait_for(s: &Setup, id: &str) -> Value {
    for _ in 0..600 {
        let (_, _, job) = get(&s.app, &format!("/v1/jobs/{id}"), &s.bank).await;
        if job["state"] != "queued" && job["state"] != "running" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} is stuck");
}

/// Uploads the honest bank, a policy and a module; returns the module's hash.
async fn ready(s: &Setup) -> String {
    let (status, _, up) = call(
        &s.app,
        "PUT",
        "/v1/datasets",
        Some(&s.bank),
        Body::from(s.sealed.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let policy = "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\n";
    let (status, _, _) = call(
        &s.app,
        "PUT",
        "/v1/policies",
        Some(&s.bank),
        Body::from(policy),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, module) = call(
        &s.app,
        "POST",
        "/v1/modules",
        Some(&s.partner),
        Body::from(example("fraud-alerts-by-region")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{module}");
    module["module_sha256"].as_str().expect("sha").to_string()
}

async fn submit(s: &Setup, module: &str) -> (StatusCode, Value) {
    let (status, _, body) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(json!({ "module_sha256": module, "dataset": "bank", "cost": "0.05" })),
    )
    .await;
    (status, body)
}

/// The log's entries whose event matches `kind` (exactly, or a prefix ending in `.`).
async fn events(room: &Room, kind: &str) -> i64 {
    room.audit()
        .entries(0)
        .await
        .expect("entries")
        .iter()
        .filter(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.entry).expect("entry");
            let event = v["event"].as_str().unwrap_or_default();
            event == kind || (kind.ends_with('.') && event.starts_with(kind))
        })
        .count() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_that_fails_to_open_is_quarantined_and_the_worker_goes_on() {
    let _serial = SERIAL.lock().await;
    let s = setup(ServiceConfig {
        workers: 1,
        ..ServiceConfig::default()
    })
    .await;
    let module = ready(&s).await;
    // A file the upload checks would refuse, put in place of the accepted one (as a file
    // accepted by an older version, or changed on disk, would be).
    let hostile = reseal(&s.sealed, &s.state.room, &s.attacker, |_, c| c.swap(1, 2));
    let file: String = s
        .state
        .room
        .db()
        .read(|conn| {
            conn.query_row(
                "SELECT file FROM datasets WHERE name = 'bank'",
                strongroom::params![],
                |r| r.get(0),
            )
            .map_err(strongroom::group_commit::WriteError::from)
        })
        .expect("row");
    std::fs::write(s.state.room.dir().join(&file), &hostile).expect("plant");

    let (status, queued) = submit(&s, &module).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let job = wait_for(&s, queued["job_id"].as_str().expect("id")).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("quarantined"),
        "{job}"
    );
    assert_eq!(events(&s.state.room, "dataset.quarantined").await, 1);
    // No job is queued on it until the bank uploads it again.
    let (status, refused) = submit(&s, &module).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "dataset_quarantined");
    // The same worker runs the next job once the bank uploads a good file.
    std::fs::remove_file(s.state.room.dir().join(&file)).expect("remove");
    let (status, _, up) = call(
        &s.app,
        "PUT",
        "/v1/datasets",
        Some(&s.bank),
        Body::from(s.sealed.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let (status, queued) = submit(&s, &module).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let job = wait_for(&s, queued["job_id"].as_str().expect("id")).await;
    assert_eq!(job["state"], "finished", "{job}");
}

/// The charges the ledger holds, and the `budget.charged` entries the log holds.
async fn charges_as_logged(room: &Room) -> (u64, u64) {
    let charges = query_i64(room, "SELECT COUNT(*) FROM charges", strongroom::params![]);
    (charges as u64, events(room, "budget.charged").await as u64)
}

/// Every point of a job where a worker can fail, in order.
const JOB_STEPS: [&str; 8] = [
    "job.inside_charge",
    "job.after_charge",
    "job.after_started",
    "job.after_run",
    "job.after_result_entry",
    "job.before_release_commit",
    "job.before_settle",
    "job.after_release",
];

/// Jobs whose end is stored, and `result.*` entries in the log.
async fn results_as_logged(room: &Room) -> (i64, i64) {
    let stored = query_i64(room, "SELECT COUNT(*) FROM jobs", strongroom::params![]);
    (stored, events(room, "result.").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_failing_at_every_step_of_a_job_leaves_charges_as_logged_and_a_valid_log() {
    let _serial = SERIAL.lock().await;
    for step in JOB_STEPS {
        let s = setup(ServiceConfig {
            workers: 1,
            ..ServiceConfig::default()
        })
        .await;
        let module = ready(&s).await;
        fail::cfg(step, "1*panic(injected)").expect("failpoint");
        let (_, queued) = submit(&s, &module).await;
        let job = wait_for(&s, queued["job_id"].as_str().expect("id")).await;
        fail::remove(step);
        // A failure after the job's end committed leaves a finished job; before, a failed one.
        // The settler failing before the release's group committed still commits it.
        let ended = matches!(step, "job.before_settle" | "job.after_release");
        let expected = if ended { "finished" } else { "failed" };
        assert_eq!(job["state"], expected, "{step}: {job}");
        assert_eq!(
            events(&s.state.room, "job.crashed").await,
            i64::from(!ended),
            "{step}"
        );
        assert_eq!(
            results_as_logged(&s.state.room).await,
            (i64::from(ended), i64::from(ended)),
            "{step}: stored results and result entries"
        );
        // A failure inside the charge's transaction leaves neither the charge nor its entries;
        // after it, both stand.
        let charged_once = u64::from(step != "job.inside_charge");
        assert_eq!(
            charges_as_logged(&s.state.room).await,
            (charged_once, charged_once),
            "{step}: charges and budget.charged entries"
        );
        // The worker goes on; the next job is charged once more and released.
        let (_, queued) = submit(&s, &module).await;
        let job = wait_for(&s, queued["job_id"].as_str().expect("id")).await;
        assert_eq!(job["state"], "finished", "{step}: {job}");
        let n = charged_once + 1;
        assert_eq!(charges_as_logged(&s.state.room).await, (n, n), "{step}");
        // The log still verifies offline, end to end.
        let log = s.state.room.audit();
        let export: String = log
            .entries(0)
            .await
            .expect("entries")
            .iter()
            .map(|e| {
                strongroom::audit_log::log::export_line(e.index, &e.entry, &e.signature)
                    .expect("line")
                    + "\n"
            })
            .collect();
        let (_, checkpoint) = log.checkpoint().await.expect("checkpoint");
        let verifier = s.state.room.keys().public.verifier().expect("verifier");
        strongroom_verify::export::verify_export(&export, &checkpoint, None, &verifier)
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_charge_is_logged_as_a_failure_not_a_refusal() {
    let _serial = SERIAL.lock().await;
    let s = setup(ServiceConfig {
        workers: 1,
        ..ServiceConfig::default()
    })
    .await;
    let module = ready(&s).await;
    fail::cfg("job.release_error", "1*return").expect("failpoint");
    let (_, queued) = submit(&s, &module).await;
    let job = wait_for(&s, queued["job_id"].as_str().expect("id")).await;
    fail::remove("job.release_error");
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("after its charge"),
        "{job}"
    );
    assert_eq!(events(&s.state.room, "job.failed").await, 1);
    assert_eq!(
        events(&s.state.room, "job.refused").await,
        0,
        "job.refused means refused before any charge"
    );
    let (_, _, budgets) = get(&s.app, "/v1/budgets", &s.partner).await;
    assert_eq!(
        budgets[0]["spent_rho"], "0.05",
        "the charge stands: {budgets}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_job_cap_holds_under_concurrent_submissions() {
    let s = setup(ServiceConfig {
        workers: 1,
        max_queued_per_partner: 10,
        ..ServiceConfig::default()
    })
    .await;
    s.state.queue.shutdown(); // nothing leaves the queue while the partner floods it
    tokio::time::sleep(Duration::from_millis(700)).await;
    let module = ready(&s).await;
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let s = Arc::clone(&s);
            let module = module.clone();
            tokio::spawn(async move { submit(&s, &module).await.0 })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        match t.await.expect("task") {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    let waiting = query_i64(
        &s.state.room,
        "SELECT COUNT(*) FROM job_queue WHERE partner = 'socialco'",
        strongroom::params![],
    );
    assert_eq!((accepted, waiting), (10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_empty_or_restored_database_is_refused_with_how_to_recover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let room_dir = dir.path().join("room");
    let secret = OperatorSecret::new(b"rollback");
    let room = Room::create(&room_dir, "rollback-room", &secret)
        .await
        .expect("room");
    let backup = dir.path().join("room.db.backup");
    // A backup as an operator takes one of a live SQLite database.
    sqlx::query(&format!("VACUUM INTO '{}'", backup.display()))
        .execute(&strongroom_tests::sqlite_pool(&room).await)
        .await
        .expect("backup");

    // The partner spends budget after the backup was taken.
    let room = Room::open(&room_dir, &secret).await.expect("reopens");
    let partner = auth::add_party(&room, "socialco", Role::Partner)
        .await
        .expect("partner");
    assert!(!partner.is_empty());
    let reopened = Room::open(&room_dir, &secret).await.expect("reopens");
    drop(reopened);

    // Each case on a copy of the room's directory (keys and witness) that no process has open,
    // with the database as the case puts it.
    let case = |name: &str, database: Option<&[u8]>| {
        let copy = dir.path().join(name);
        std::fs::create_dir_all(copy.join("keys")).expect("copy");
        std::fs::copy(room_dir.join("room.toml"), copy.join("room.toml")).expect("copy");
        for key in std::fs::read_dir(room_dir.join("keys"))
            .expect("keys")
            .flatten()
        {
            std::fs::copy(key.path(), copy.join("keys").join(key.file_name())).expect("copy");
        }
        if let Some(bytes) = database {
            std::fs::write(copy.join("room.db"), bytes).expect("database");
        }
        copy
    };
    let refused = |e: Result<Room, strongroom::room::RoomError>| match e {
        Ok(_) => panic!("opened"),
        Err(e) => e.to_string(),
    };
    let old = std::fs::read(&backup).expect("backup");
    // Restored from the older backup: the ledger and log would roll back.
    let restored = case("restored", Some(&old));
    let why = refused(Room::open(&restored, &secret).await);
    assert!(why.to_string().contains("older copy"), "{why}");
    assert!(
        why.to_string().contains("log.witness"),
        "says how to recover: {why}"
    );
    // Empty.
    let why = refused(Room::open(&case("empty", Some(b"")), &secret).await);
    assert!(why.to_string().contains("is empty"), "{why}");
    // Missing: not silently recreated.
    let missing = case("missing", None);
    let why = refused(Room::open(&missing, &secret).await);
    assert!(why.to_string().contains("is missing"), "{why}");
    assert!(
        !missing.join("room.db").exists(),
        "no fresh database was created"
    );
    // Accepting the backup knowingly: move the witness aside.
    std::fs::rename(
        restored.join("keys/log.witness"),
        dir.path().join("log.witness.old"),
    )
    .expect("move aside");
    assert!(Room::open(&restored, &secret).await.is_ok());
}

/// A request from `source` with `token`, through the router as the server would see it.
async fn from_source(s: &Setup, source: &str, token: &str) -> StatusCode {
    use tower::ServiceExt;
    let addr: std::net::SocketAddr = format!("{source}:40000").parse().expect("addr");
    let mut request = axum::http::Request::builder()
        .uri("/v1/datasets")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    s.app
        .clone()
        .oneshot(request)
        .await
        .expect("response")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_is_limited_per_source_and_logged_as_counted_summaries() {
    let s = setup(ServiceConfig {
        failures_per_source: 20.0,
        denied_summary_every: Duration::from_millis(500),
        ..ServiceConfig::default()
    })
    .await;
    let before = s.state.room.audit().size().await.expect("size");
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..3000 {
        *statuses
            .entry(from_source(&s, "203.0.113.9", "sr_wrong_token").await)
            .or_insert(0) += 1;
    }
    assert_eq!(
        statuses.get(&StatusCode::UNAUTHORIZED),
        Some(&20),
        "{statuses:?}"
    );
    assert_eq!(statuses.get(&StatusCode::TOO_MANY_REQUESTS), Some(&2980));
    // A good token is served meanwhile, from another address and from the same one (behind a
    // proxy every client shares one address: a flood must not lock the others out).
    for source in ["198.51.100.4", "203.0.113.9"] {
        assert_eq!(
            from_source(&s, source, &s.bank).await,
            StatusCode::OK,
            "{source}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let entries = s.state.room.audit().entries(before).await.expect("entries");
    assert_eq!(entries.len(), 1, "one summary, not one entry per request");
    let summary: Value = serde_json::from_str(&entries[0].entry).expect("json");
    assert_eq!(summary["event"], "access.denied_summary");
    assert_eq!(summary["source"], "203.0.113.9");
    assert_eq!(summary["refusals"]["invalid_token"], 20);
    assert_eq!(summary["refusals"]["rate_limited"], 2980);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_partial_uploads_go_at_start_and_a_bad_path_is_a_problem_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let room_dir = dir.path().join("room");
    let secret = OperatorSecret::new(b"stale");
    let room = Room::create(&room_dir, "stale-room", &secret)
        .await
        .expect("room");
    let bank = auth::add_party(&room, "bigbank", Role::Bank)
        .await
        .expect("bank");
    std::fs::create_dir_all(room_dir.join("uploads")).expect("uploads");
    let stale = room_dir.join("uploads/0123456789abcdef.part");
    std::fs::write(&stale, b"half of a sealed file").expect("stale");
    let state = start(room, ServiceConfig::default()).await.expect("start");
    assert!(!stale.exists(), "a partial upload survived the restart");
    let app = router(Arc::clone(&state));
    let (status, ctype, problem) = get(&app, "/v1/datasets/%ff", &bank).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(problem["status"], 400);
    state.queue.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_times_out_gets_a_problem_document() {
    let s = setup(ServiceConfig {
        request_timeout: Duration::from_millis(100),
        ..ServiceConfig::default()
    })
    .await;
    // An upload whose body arrives too slowly.
    let slow = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"late"))
    });
    let (status, ctype, problem) = call(
        &s.app,
        "PUT",
        "/v1/datasets",
        Some(&s.bank),
        Body::from_stream(slow),
    )
    .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{problem}");
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(problem["code"], "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_or_a_decision_and_its_entry_commit_together_or_not_at_all() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let room = Room::create(
        &dir.path().join("room"),
        "atomic-room",
        &OperatorSecret::new(b"atomic"),
    )
    .await
    .expect("room");
    let pool = strongroom_tests::sqlite_pool(&room).await;
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
                .fetch_one(&pool)
                .await
                .expect("count")
                .get("n");
            n
        }
    };
    let policy = strongroom::room::policy::Policy::parse(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\n",
    )
    .expect("policy");
    fail::cfg("policy.before_entry", "1*return").expect("failpoint");
    assert!(room.set_policy(&policy).await.is_err());
    fail::remove("policy.before_entry");
    assert_eq!(
        (
            count("policies").await,
            count("budgets").await,
            events(&room, "policy.set").await
        ),
        (0, 0, 0),
        "a failed policy change leaves no policy, no budget and no entry"
    );
    room.set_policy(&policy).await.expect("set");
    assert_eq!(
        (
            count("policies").await,
            count("budgets").await,
            events(&room, "policy.set").await
        ),
        (1, 1, 1)
    );
    let rules = strongroom::room::approval::ParameterRules::default();
    let module = "ab".repeat(32);
    fail::cfg("decision.before_entry", "1*return").expect("failpoint");
    assert!(
        room.decide_module(&module, "socialco", true, "reviewer", "ok", &rules)
            .await
            .is_err()
    );
    fail::remove("decision.before_entry");
    assert_eq!(
        (
            count("approvals").await,
            events(&room, "module.approved").await
        ),
        (0, 0)
    );
    room.decide_module(&module, "socialco", true, "reviewer", "ok", &rules)
        .await
        .expect("decide");
    assert_eq!(
        (
            count("approvals").await,
            events(&room, "module.approved").await
        ),
        (1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_sees_a_running_jobs_progress_and_its_partner_does_not() {
    let _serial = SERIAL.lock().await;
    let s = setup(ServiceConfig {
        workers: 1,
        ..ServiceConfig::default()
    })
    .await;
    let module = ready(&s).await;
    // The run stops after its first chunk until the failpoint goes.
    fail::cfg("stream.after_chunk", "pause").expect("failpoint");
    let (_, queued) = submit(&s, &module).await;
    let id = queued["job_id"].as_str().expect("id").to_string();
    let mut seen = None;
    for _ in 0..600 {
        let (_, _, job) = get(&s.app, &format!("/v1/jobs/{id}"), &s.bank).await;
        if job["progress"]["chunks_read"].as_u64().unwrap_or(0) > 0 {
            seen = Some(job);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, partner_view) = get(&s.app, &format!("/v1/jobs/{id}"), &s.partner).await;
    let (_, _, bank_list) = get(&s.app, "/v1/jobs?status=running", &s.bank).await;
    fail::remove("stream.after_chunk");
    let job = seen.expect("the bank's view shows the running job's progress");
    assert_eq!(job["state"], "running");
    assert_eq!(job["progress"]["customers"], 300, "{job}");
    assert_eq!(job["progress"]["chunks_read"], 1, "{job}");
    assert!(
        job["progress"]["chunks"].as_u64().unwrap_or(0) >= 1,
        "{job}"
    );
    assert_eq!(bank_list[0]["progress"], job["progress"], "{bank_list}");
    assert!(
        partner_view.get("progress").is_none(),
        "a partner never sees progress: {partner_view}"
    );
    let done = wait_for(&s, &id).await;
    assert_eq!(done["state"], "finished", "{done}");
    assert!(
        done.get("progress").is_none(),
        "progress ends with the run: {done}"
    );
}
