//! Data-at-rest benchmark: seal throughput; unsealing per core beside raw ring AES-256-GCM on the
//! same bytes (the whole-file opener, and the window reader's path alone and with decoding); and
//! the example query on sealed data beside the same query on plaintext CSV.
//!
//! `cargo bench -p strongroom-tests --bench data_at_rest`
//! Size: STRONGROOM_BENCH_SEAL_CUSTOMERS (default 200000, about 4M transactions).

use std::sync::Arc;
use std::time::Instant;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use strongroom::data_at_rest::open::SealedFile;
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::seal;
use strongroom::data_at_rest::stream::{DEFAULT_WINDOW_ENTITIES, SealedSource};
use strongroom::dataset::csv_input::load_csv_tables;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::guest_boundary::{Outcome, RunLimits};
use strongroom::keys::{OperatorSecret, RoomKeys};
use strongroom_synthetic as synthetic;
use strongroom_tests::{example, prepare, run_in};

/// The customers the sealed file declares (every window together must hold them all).
fn customers_total(summary: &strongroom::data_at_rest::seal::SealSummary) -> usize {
    summary.header.entities as usize
}

fn main() {
    let customers: usize = std::env::var("STRONGROOM_BENCH_SEAL_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!("Strongroom data-at-rest benchmark ({customers} customers)");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    synthetic::generate(customers, 20.0, 11)
        .write_csv(&data)
        .expect("csv");
    let schema = DatasetSchema::load(&data.join("schema.toml")).expect("schema");
    let tables = vec![
        ("customers".to_string(), data.join("customers.csv")),
        ("transactions".to_string(), data.join("transactions.csv")),
    ];
    let room = RoomKeys::generate(
        "bench",
        &dir.path().join("keys"),
        &OperatorSecret::new(b"bench"),
    )
    .expect("keys");
    let party = PartyKey::generate("bank", &dir.path().join("bank.key")).expect("party");
    let out = dir.path().join("bank.sealed");

    let summary =
        seal(&schema, &tables, &room.public, &party, 65_536, &out, false).expect("sealed");
    println!("1. seal (CSV parse, group by entity, Arrow IPC, AES-256-GCM, write)");
    println!(
        "   {:.1} MB of CSV in {:.2} s = {:.1} MB/s; {} chunks, {:.1} MB sealed",
        summary.input_bytes as f64 / 1e6,
        summary.seconds,
        summary.input_bytes as f64 / 1e6 / summary.seconds,
        summary.header.chunks,
        summary.bytes as f64 / 1e6
    );
    // STRONGROOM_BENCH_SEAL_ONLY=1 stops here (to profile sealing alone).
    if std::env::var_os("STRONGROOM_BENCH_SEAL_ONLY").is_some() {
        return;
    }

    let file = SealedFile::read(&out).expect("read");
    let bytes: usize = file.chunks.iter().map(Vec::len).sum();
    let started = Instant::now();
    drop(file.plaintext_chunks(&room).expect("authenticates"));
    let unseal = started.elapsed();
    // The whole check an upload gets: authenticate, decrypt, and check every batch against the
    // header, the index and the schema (decoding the Arrow it holds).
    let started = Instant::now();
    file.verify(&room, 1).expect("verifies");
    let verify = started.elapsed();
    // Raw baseline: the same chunk sizes, sealed and opened with ring directly.
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("key"));
    let raw_chunks: Vec<Vec<u8>> = file
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut buf = vec![0u8; c.len() - 16];
            let mut n = [0u8; 12];
            n[..8].copy_from_slice(&(i as u64).to_be_bytes());
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(n),
                Aad::from(&[0u8; 41]),
                &mut buf,
            )
            .expect("seal");
            buf
        })
        .collect();
    let started = Instant::now();
    for (i, c) in raw_chunks.iter().enumerate() {
        let mut buf = c.clone();
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&(i as u64).to_be_bytes());
        key.open_in_place(
            Nonce::assume_unique_for_key(n),
            Aad::from(&[0u8; 41]),
            &mut buf,
        )
        .expect("open");
    }
    let raw = started.elapsed();
    // The windowed reader's path: each chunk read into the locked plaintext buffer, decrypted in
    // place and cleared; then the same with every chunk checked and decoded into windows.
    let source = SealedSource::open(&out, &room).expect("source");
    let started = Instant::now();
    source.authenticate().expect("authenticates");
    let streamed = started.elapsed();
    let started = Instant::now();
    let mut customers = 0;
    for window in source.windows(DEFAULT_WINDOW_ENTITIES).expect("windows") {
        customers += window.expect("window").entities();
    }
    let windows = started.elapsed();
    assert_eq!(customers, customers_total(&summary));
    let mbs = |d: std::time::Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "2. unseal, one core ({:.1} MB of ciphertext)",
        bytes as f64 / 1e6
    );
    println!("   raw ring AES-256-GCM          {:>8.1} MB/s", mbs(raw));
    println!(
        "   strongroom, whole file        {:>8.1} MB/s = {:.0}% of raw (each chunk copied, cleared byte by byte)",
        mbs(unseal),
        100.0 * raw.as_secs_f64() / unseal.as_secs_f64()
    );
    println!(
        "   strongroom, window reader     {:>8.1} MB/s = {:.0}% of raw (target >= 90%: in place, cleared in words)",
        mbs(streamed),
        100.0 * raw.as_secs_f64() / streamed.as_secs_f64()
    );
    println!(
        "   strongroom, windows decoded   {:>8.1} MB/s (+ every batch checked and decoded, {} customers)",
        mbs(windows),
        customers
    );
    println!(
        "   strongroom verify (+ every batch checked) {:>8.1} MB/s",
        mbs(verify)
    );

    let module = prepare(&example("spend-by-category"));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let (plain, _) = load_csv_tables(&tables, Some(&schema), "").expect("csv loads");
    let plain = Arc::new(plain);
    let report = run_in(
        &module,
        &plain,
        RunLimits::default(),
        module.module.manifest.mode,
        threads,
    );
    let plaintext = started.elapsed();
    assert_eq!(report.outcome, Outcome::Completed);
    drop(plain);
    let started = Instant::now();
    let opened = Arc::new(file.open(&room, threads).expect("opens"));
    let sealed_report = run_in(
        &module,
        &opened,
        RunLimits::default(),
        module.module.manifest.mode,
        threads,
    );
    let sealed = started.elapsed();
    assert_eq!(sealed_report.aggregate, report.aggregate, "same result");
    println!("3. example query (spend-by-category), load + run, {threads} threads");
    println!(
        "   plaintext CSV                 {:>8.2} s",
        plaintext.as_secs_f64()
    );
    println!(
        "   sealed                        {:>8.2} s = {:.2}x plaintext (target <= 1.2x)",
        sealed.as_secs_f64(),
        sealed.as_secs_f64() / plaintext.as_secs_f64()
    );
}
