//! Partitions run elsewhere (`strongroom::remote`): a run's partitions handed to workers merge
//! into exactly the local run's partial; the coordinator accepts one authentic partial per
//! partition and refuses duplicates, another run's answers and forged ones; the key is released
//! only to a worker with a valid token, wrapped to its own key, and never travels with the task;
//! a partition whose chunk does not authenticate is refused in-band (no retry), its cause kept.
//!
//! The workers here are the real worker code (`strongroom::remote::worker::run`) called in this
//! process, one call per task, talking to the coordinator's key server over TCP. The CLI tests
//! (`cli/tests/cli/on_spark.rs`) run the same through worker processes and a Spark cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strongroom::data_at_rest::stream::SealedSource;
use strongroom::guest_boundary::executor::Partial;
use strongroom::guest_boundary::partial_wire::encode;
use strongroom::guest_boundary::vetting::DEFAULT_MAX_MODULE_BYTES;
use strongroom::guest_boundary::{RunContext, RunLimits, VettedModule, vet};
use strongroom::keys::{OperatorSecret, RoomKeys};
use strongroom::remote::coordinator::{
    self, Collector, OnRefused, PARTITION_REFUSED, Placement, RemoteRun, Tally,
};
use strongroom::remote::engine::{Engine, Task};
use strongroom::remote::envelope::{Envelope, Status};
use strongroom::remote::key_release::{self, KeyServer, MAX_ATTEMPTS, ReleaseError};
use strongroom::remote::worker::{self, Answer, EXIT_REFUSED};
use strongroom_contract::manifest::Mode;
use strongroom_tests::{example, sandbox};

/// Runs each task with the worker's code, in this process.
struct InProcess;

impl Engine for InProcess {
    fn run(&self, _run: &str, tasks: &[Task], module: &Path) -> Result<Vec<Vec<u8>>, String> {
        tasks
            .iter()
            .map(|t| match worker::run(&t.spec, &t.token, Some(module)) {
                Answer::Partial(bytes) | Answer::Refused(bytes, _) => Ok(bytes),
                Answer::Transient(why) => Err(why),
            })
            .collect()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    keys: RoomKeys,
    sealed: PathBuf,
    module: VettedModule,
}

const CUSTOMERS: usize = 300;

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = RoomKeys::generate(
        "partitions",
        &dir.path().join("keys"),
        &OperatorSecret::new(b"partitions"),
    )
    .expect("keys");
    // Small chunks, so partitions start and end inside them.
    let sealed =
        strongroom_tests::seal_synthetic(dir.path(), &keys.public, CUSTOMERS, 6.0, 11, 250);
    let module = vet(&example("spend-by-category"), DEFAULT_MAX_MODULE_BYTES).expect("vetted");
    Fixture {
        dir,
        keys,
        sealed,
        module,
    }
}

impl Fixture {
    fn source(&self) -> SealedSource {
        SealedSource::open(&self.sealed, &self.keys).expect("opens")
    }

    fn ctx(&self, source: &SealedSource, seed: u8) -> RunContext {
        RunContext::new(
            Arc::clone(source.shape()),
            self.module.manifest.clone(),
            Mode::Isolated,
            RunLimits::default(),
            [seed; 32],
        )
        .expect("admitted")
    }

    fn placement(&self, partition_entities: u32) -> Placement {
        Placement {
            partition_entities,
            listen: "127.0.0.1:0".into(),
            advertise: None,
            work_dir: self.dir.path().join("engine"),
            worker_threads: 2,
            on_refused: OnRefused::Fail,
        }
    }

    /// A copy of the dataset with one byte of a middle chunk changed: its header and index are
    /// intact, so the coordinator opens it; only the partition holding that chunk finds it.
    fn damaged_copy(&self) -> PathBuf {
        let mut bytes = std::fs::read(&self.sealed).expect("sealed");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x20;
        let damaged = self.dir.path().join("damaged.sealed");
        std::fs::write(&damaged, &bytes).expect("write");
        damaged
    }

    /// The local run's partial over every customer, as the room computes it in process.
    fn local(&self, source: &SealedSource, ctx: &RunContext) -> Partial {
        let prepared = sandbox()
            .prepare(self.module.clone(), None)
            .expect("compiles");
        let whole = source.range(0..CUSTOMERS as u32, false).expect("reads");
        let ctx = Arc::new(RunContext {
            dataset: Arc::new(whole),
            ..ctx.clone()
        });
        sandbox().run_range(&prepared, &ctx, 2).expect("runs")
    }
}

#[test]
fn partitions_run_by_workers_merge_into_the_local_partial_bit_for_bit() {
    let f = fixture();
    let source = f.source();
    let ctx = f.ctx(&source, 3);
    let local = encode(&f.local(&source, &ctx), &ctx.manifest);
    for size in [70, 128, 1000] {
        let run = RemoteRun {
            run: "job-merge",
            source: &source,
            dataset_location: source.blob(),
            module: &f.module,
            ctx: &ctx,
            room: &f.keys,
        };
        let (merged, tally) = coordinator::run(&run, &f.placement(size), &InProcess);
        let merged = merged.expect("every partition answered");
        assert_eq!(
            encode(&merged, &ctx.manifest),
            local,
            "partitions of {size}"
        );
        let planned = (CUSTOMERS as u32).div_ceil(size);
        assert_eq!(
            (
                tally.planned,
                tally.accepted,
                tally.duplicates,
                tally.rejected
            ),
            (planned, planned, 0, 0)
        );
        assert!(tally.releases.iter().all(|&(_, n)| n == 1), "{tally:?}");
        assert!(merged.units == CUSTOMERS as u64);
    }
}

/// A run planned by hand: its partitions, key server and secrets, as `coordinator::run` makes
/// them, so that a test can hand the collector what it likes.
struct HandRun {
    planned: Vec<coordinator::Planned>,
    secrets: key_release::RunSecrets,
    server: KeyServer,
    module_location: PathBuf,
}

fn hand_run(f: &Fixture, source: &SealedSource, ctx: &RunContext, run: &str) -> HandRun {
    let remote = RemoteRun {
        run,
        source,
        dataset_location: source.blob(),
        module: &f.module,
        ctx,
        room: &f.keys,
    };
    let placement = f.placement(100);
    let module_location =
        coordinator::stage_module(&f.module, &placement.work_dir).expect("staged");
    let secrets = coordinator::secrets(&remote).expect("secrets");
    let copy = key_release::RunSecrets {
        data_key: secrets.data_key.clone(),
        guest_random: secrets.guest_random.clone(),
        guest_insecure_seed: secrets.guest_insecure_seed,
        mac_secret: secrets.mac_secret.clone(),
    };
    let server = KeyServer::start("127.0.0.1:0", &f.keys, copy).expect("listens");
    let planned = coordinator::plan(
        &remote,
        &placement,
        &server.addr().to_string(),
        &module_location,
    )
    .expect("planned");
    server.grant(
        planned
            .iter()
            .map(|p| (*p.token, p.spec.partition, p.digest))
            .collect(),
    );
    HandRun {
        planned,
        secrets,
        server,
        module_location,
    }
}

impl HandRun {
    fn answer(&self, at: usize) -> Vec<u8> {
        let p = &self.planned[at];
        match worker::run(
            &p.spec.to_json(),
            &hex::encode(*p.token),
            Some(&self.module_location),
        ) {
            Answer::Partial(bytes) => bytes,
            other => panic!("partition {at}: {other:?}"),
        }
    }
}

#[test]
fn the_coordinator_keeps_one_authentic_partial_per_partition_and_refuses_the_rest() {
    let f = fixture();
    let source = f.source();
    let ctx = f.ctx(&source, 4);
    let local = encode(&f.local(&source, &ctx), &ctx.manifest);
    let run = hand_run(&f, &source, &ctx, "job-one");
    let answers: Vec<Vec<u8>> = (0..run.planned.len()).map(|i| run.answer(i)).collect();

    // Another run of the same job on the same data: its answers are not this run's.
    let other_ctx = f.ctx(&source, 4);
    let other = hand_run(&f, &source, &other_ctx, "job-two");
    let foreign = other.answer(0);

    // A forged partial: partition 0's answer with its aggregate changed, the MAC kept; and the
    // same partial MACed under a key of the forger's choosing.
    let mut forged = Envelope::decode(&answers[0]).expect("envelope");
    let last = forged.payload.len() - 1;
    forged.payload[last - 40] ^= 1;
    let forged_kept_mac = forged.encode();
    let forged_own_key = Envelope::new(
        Status::Partial,
        forged.spec,
        1,
        forged.payload.clone(),
        Some(&[7; 32]),
    )
    .encode();
    let unauthenticated_claim = Envelope::new(
        Status::Refused,
        run.planned[1].digest,
        0,
        b"a claim anyone can make".to_vec(),
        None,
    )
    .encode();

    let mut collector = Collector::new(&run.planned, &run.secrets, &ctx);
    // The forgeries and the other run's answer come first, so nothing but the MAC stops them.
    for bad in [
        &forged_kept_mac,
        &forged_own_key,
        &foreign,
        &b"garbage".to_vec(),
    ] {
        collector.take(bad);
    }
    collector.take(&unauthenticated_claim);
    for answer in answers.iter().chain(answers.iter()) {
        collector.take(answer);
    }
    let (merged, tally) = collector.finish();
    assert_eq!(encode(&merged.expect("merged"), &ctx.manifest), local);
    let n = run.planned.len() as u32;
    assert_eq!(
        (tally.accepted, tally.duplicates, tally.rejected),
        (n, n, 4),
        "{tally:?}"
    );
    assert_eq!(tally.refusals.len(), 1);
    assert!(tally.refusals[0].1.starts_with("(unauthenticated)"));

    // Without partition 2's answer, there is no result, and the tally says which is missing.
    let mut collector = Collector::new(&run.planned, &run.secrets, &ctx);
    for (i, answer) in answers.iter().enumerate() {
        if i != 2 {
            collector.take(answer);
        }
    }
    let (merged, _) = collector.finish();
    let err = merged.expect_err("a partition is missing").to_string();
    assert!(
        err.contains("1 of 3 partitions") && err.contains("partition 2"),
        "{err}"
    );
    drop(other);
}

#[test]
fn keys_go_only_to_valid_tokens_wrapped_to_the_worker_and_never_with_the_task() {
    let f = fixture();
    let source = f.source();
    let ctx = f.ctx(&source, 5);
    let run = hand_run(&f, &source, &ctx, "job-keys");
    let addr = run.server.addr().to_string();
    let room = f.keys.public.sealing;
    let data_key = source.data_key(&f.keys).expect("key");
    let (p0, p1) = (&run.planned[0], &run.planned[1]);

    // The task an engine carries holds no key, in hex or base64.
    for planned in &run.planned {
        let task = Task {
            partition: planned.spec.partition,
            spec: planned.spec.to_json(),
            token: zeroize::Zeroizing::new(hex::encode(*planned.token)),
        };
        let carried = task.stdin();
        use base64::Engine as _;
        for secret in [&data_key[..], &ctx.keys.guest_random[..]] {
            assert!(!carried.contains(&hex::encode(secret)));
            assert!(!carried.contains(&base64::engine::general_purpose::STANDARD.encode(secret)));
        }
    }

    // A valid token: the key, for as many attempts as an engine makes, and no more.
    for attempt in 1..=MAX_ATTEMPTS {
        let released = key_release::request(&addr, &room, &p0.digest, &p0.token).expect("released");
        assert_eq!(released.attempt, attempt);
        assert_eq!(*released.data_key, *data_key);
        assert_eq!(
            *released.partition_key,
            *run.secrets.partition_key(&p0.digest)
        );
    }
    let spent = key_release::request(&addr, &room, &p0.digest, &p0.token);
    assert!(
        matches!(&spent, Err(ReleaseError::Refused(m)) if m.contains("no more attempts")),
        "{:?}",
        spent.err()
    );
    // Partition 1's token does not release partition 0's spec, nor does a made-up token.
    let crossed = key_release::request(&addr, &room, &p0.digest, &p1.token);
    assert!(matches!(&crossed, Err(ReleaseError::Refused(m)) if m.contains("another partition")));
    let made_up = key_release::request(&addr, &room, &p1.digest, &[9; 32]);
    assert!(matches!(&made_up, Err(ReleaseError::Refused(m)) if m.contains("did not issue")));
    // A worker that pins another room's key: the coordinator cannot read its request.
    let other = RoomKeys::generate(
        "other",
        &f.dir.path().join("other"),
        &OperatorSecret::new(b"o"),
    )
    .expect("keys");
    let pinned_wrong = key_release::request(&addr, &other.public.sealing, &p1.digest, &p1.token);
    assert!(
        matches!(&pinned_wrong, Err(ReleaseError::Refused(m)) if m.contains("not sealed to this room"))
    );
    // Connections beyond the server's bound are closed unanswered (worth a retry), and served
    // again once the idle ones go.
    let idle: Vec<std::net::TcpStream> = (0..64)
        .map(|_| std::net::TcpStream::connect(run.server.addr()).expect("connects"))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let crowded = key_release::request(&addr, &room, &p1.digest, &p1.token);
    assert!(
        matches!(crowded, Err(ReleaseError::Unreachable(_))),
        "{:?}",
        crowded.err()
    );
    drop(idle);
    std::thread::sleep(std::time::Duration::from_millis(300));
    key_release::request(&addr, &room, &p1.digest, &p1.token).expect("served again");
    // Nobody listening: worth a retry.
    let dead = run.server.addr();
    drop(run.server);
    let gone = key_release::request(&dead.to_string(), &room, &p1.digest, &p1.token);
    assert!(
        matches!(gone, Err(ReleaseError::Unreachable(_))),
        "{:?}",
        gone.err()
    );
}

#[test]
fn a_chunk_that_does_not_authenticate_is_refused_in_band_and_the_run_has_no_result() {
    let f = fixture();
    let poisoned = f.damaged_copy();
    let source = SealedSource::open(&poisoned, &f.keys).expect("header and index intact");
    let ctx = f.ctx(&source, 6);
    let run = RemoteRun {
        run: "job-poisoned",
        source: &source,
        dataset_location: source.blob(),
        module: &f.module,
        ctx: &ctx,
        room: &f.keys,
    };
    let (merged, tally) = coordinator::run(&run, &f.placement(60), &InProcess);
    let err = merged.expect_err("no result").to_string();
    assert!(err.contains("failed authentication"), "{err}");
    let Tally {
        accepted, refusals, ..
    } = &tally;
    // The partitions whose rows lie in that chunk (a chunk may hold rows of two) are refused,
    // each by its worker under its MAC; the others answered.
    assert!(!refusals.is_empty() && refusals.len() <= 2, "{tally:?}");
    assert_eq!(*accepted as usize, tally.planned as usize - refusals.len());
    for (_, why) in refusals {
        assert!(why.contains("failed authentication"), "{why}");
        assert!(!why.starts_with("(unauthenticated)"), "MACed by the worker");
    }
    // Refused, not failed: an engine does not retry it (the key was released once).
    assert!(tally.releases.iter().all(|&(_, n)| n == 1), "{tally:?}");
}

#[test]
fn split_runs_a_refused_partition_again_per_customer_and_drops_only_those_in_the_bad_chunk() {
    let f = fixture();
    let poisoned = f.damaged_copy();
    let source = SealedSource::open(&poisoned, &f.keys).expect("header and index intact");
    let ctx = f.ctx(&source, 7);
    let run = RemoteRun {
        run: "job-split",
        source: &source,
        dataset_location: source.blob(),
        module: &f.module,
        ctx: &ctx,
        room: &f.keys,
    };
    let placement = Placement {
        on_refused: OnRefused::Split,
        ..f.placement(60)
    };
    let (merged, tally) = coordinator::run(&run, &placement, &InProcess);
    let merged = merged.expect("a result without the damaged chunk's customers");
    // Which chunk: the worker named it.
    let why = &tally.refusals[0].1;
    let bad: usize = why
        .split("chunk ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no chunk named in: {why}"));
    let in_bad_chunk: Vec<u32> = (0..CUSTOMERS as u32)
        .filter(|&e| {
            source
                .chunks_for(e..e + 1)
                .iter()
                .any(|(_, chunks)| chunks.contains(&bad))
        })
        .collect();
    assert!(!in_bad_chunk.is_empty());
    assert_eq!(
        merged.units, CUSTOMERS as u64,
        "every customer ran or was dropped"
    );
    assert_eq!(
        merged.failed_units.get("trap").copied(),
        Some(in_bad_chunk.len() as u64),
        "exactly the customers with rows in the damaged chunk are dropped"
    );
    for (entity, outcome, _) in &merged.first_failures {
        assert!(in_bad_chunk.contains(entity), "customer {entity}");
        assert_eq!(
            outcome,
            &strongroom::guest_boundary::Outcome::Trap(PARTITION_REFUSED.into())
        );
    }
    assert!(
        tally.split >= in_bad_chunk.len() as u32 && tally.split <= 120,
        "{}",
        tally.split
    );
}

#[test]
fn a_worker_of_another_contract_version_refuses_with_its_own_status() {
    let f = fixture();
    let source = f.source();
    let ctx = f.ctx(&source, 8);
    let run = hand_run(&f, &source, &ctx, "job-version");
    let spec = run.planned[0]
        .spec
        .to_json()
        .replacen("\"contract\":1", "\"contract\":2", 1);
    let answer = worker::run(&spec, &hex::encode(*run.planned[0].token), None);
    assert_eq!(answer.exit_status(), EXIT_REFUSED);
    let Answer::Refused(bytes, why) = answer else {
        panic!("refused")
    };
    assert!(why.contains("contract version 2"), "{why}");
    assert!(Envelope::decode(&bytes).expect("an envelope").mac.is_none());
    assert!(
        run.server.releases().iter().all(|&(_, n)| n == 0),
        "no key asked for"
    );
}

#[test]
fn a_spark_run_past_its_time_is_stopped_with_everything_it_started() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    // A "driver" that never answers, and starts a process of its own (as PySpark starts its JVM).
    let driver = dir.path().join("driver.sh");
    let child_pid = dir.path().join("child.pid");
    std::fs::write(
        &driver,
        format!(
            "#!/bin/sh\nsleep 600 &\necho $! > {}\nwait\n",
            child_pid.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&driver, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spark = strongroom::remote::engine::Spark {
        python: driver,
        spark_home: None,
        master: "local-cluster[2,1,1024]".into(),
        launcher: dir.path().join("launcher.py"),
        worker: "strongroom".into(),
        executor_python: None,
        archives: Vec::new(),
        conf: Vec::new(),
        work_dir: dir.path().join("work"),
        timeout: std::time::Duration::from_secs(2),
    };
    let module = dir.path().join("m.wasm");
    std::fs::write(&module, b"").expect("module");
    let started = std::time::Instant::now();
    let err = spark.run("job-slow", &[], &module).expect_err("stopped");
    assert!(err.contains("took over 2 s"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let pid = std::fs::read_to_string(&child_pid).expect("the child started");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let alive = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .is_ok_and(|s| !s.contains(") Z "));
    assert!(!alive, "the driver's own process was killed with it");
}

#[test]
fn a_range_read_in_windows_holds_exactly_the_rows_of_the_range_read_whole() {
    let f = fixture();
    let source = f.source();
    let whole = source.range(37..251, false).expect("reads");
    let mut spans = Vec::new();
    let mut rows = vec![0usize; whole.tables.len()];
    for window in source.range_windows(37..251, 16).expect("opens") {
        let window = window.expect("reads");
        spans.push(window.span.clone());
        for (t, table) in window.tables.iter().enumerate() {
            rows[t] += table.rows();
        }
    }
    assert_eq!(spans.first().map(|s| s.start), Some(37));
    assert_eq!(spans.last().map(|s| s.end), Some(251));
    assert!(
        spans
            .windows(2)
            .all(|w| w[0].end == w[1].start && w[0].len() == 16)
    );
    let expected: Vec<usize> = whole.tables.iter().map(|t| t.rows()).collect();
    assert_eq!(rows, expected);
    assert!(expected.iter().all(|&r| r > 0));
}
