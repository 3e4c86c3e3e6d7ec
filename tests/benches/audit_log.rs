//! Audit-log benchmark: durable appends per second, and proof generation and verification at
//! 1M entries.
//!
//! `cargo bench -p strongroom-tests --bench audit_log`
//! Sizes: STRONGROOM_BENCH_APPENDS (default 5000), STRONGROOM_BENCH_LOG_ENTRIES (1000000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use strongroom::audit_log::log::AuditLog;
use strongroom::audit_log::signer::Signer;
use strongroom_verify::merkle::{MerkleTree, leaf_hash, verify_consistency, verify_inclusion};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn micros(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

fn main() {
    println!("Strongroom audit-log benchmark");
    let appends = env_or("STRONGROOM_BENCH_APPENDS", 5000);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (elapsed, size) = rt.block_on(async {
        let pool = strongroom::room::db::open(&strongroom::room::db::Location::Sqlite(
            dir.path().join("room.db"),
        ))
        .await
        .expect("db");
        let log = AuditLog::new(
            &pool,
            Signer::from_seed("bench", &[1; 32]).expect("signer"),
            "bench",
        );
        let started = Instant::now();
        for i in 0..appends {
            log.append(&strongroom_verify::Event::LogExercised {
                actor: "operator".into(),
                n: i,
                note: format!("job-{i}"),
            })
            .await
            .expect("append");
        }
        (started.elapsed(), log.size().await.expect("size"))
    });
    assert_eq!(size, appends);
    println!(
        "1. durable appends (SQLite WAL, synchronous FULL, one transaction and signature each)"
    );
    println!(
        "   {appends} appends in {:.2} s = {:.0} appends/s ({} each)",
        elapsed.as_secs_f64(),
        appends as f64 / elapsed.as_secs_f64(),
        micros(elapsed / appends as u32)
    );

    let n = env_or("STRONGROOM_BENCH_LOG_ENTRIES", 1_000_000);
    let leaves: Vec<[u8; 32]> = (0..n)
        .map(|i| leaf_hash(format!("{{\"index\":{i}}}").as_bytes()))
        .collect();
    let started = Instant::now();
    let tree = MerkleTree::from_leaf_hashes(leaves.clone());
    let build = started.elapsed();
    let root = tree.root(n).expect("root");
    println!("2. proofs at {n} entries");
    println!(
        "   build the tree from stored leaf hashes: {:.1} ms (done once per process)",
        build.as_secs_f64() * 1e3
    );
    let samples = 2000u64;
    let mut gen_times = Vec::new();
    let mut ver_times = Vec::new();
    for k in 0..samples {
        let i = (k * 7_919_993) % n;
        let t = Instant::now();
        let proof = tree.inclusion_proof(i, n).expect("proof");
        gen_times.push(t.elapsed());
        let t = Instant::now();
        verify_inclusion(i, n, &leaves[i as usize], &proof, &root).expect("verifies");
        ver_times.push(t.elapsed());
        black_box(proof);
    }
    println!(
        "   inclusion proof: generate p50 {}, verify p50 {}",
        micros(p50(gen_times)),
        micros(p50(ver_times))
    );
    let mut gen_times = Vec::new();
    let mut ver_times = Vec::new();
    for k in 1..=samples {
        let old = (k * 4_999_963) % n + 1;
        let t = Instant::now();
        let proof = tree.consistency_proof(old, n).expect("proof");
        gen_times.push(t.elapsed());
        let old_root = tree.root(old).expect("root");
        let t = Instant::now();
        verify_consistency(old, n, &old_root, &root, &proof).expect("consistent");
        ver_times.push(t.elapsed());
    }
    println!(
        "   consistency proof: generate p50 {}, verify p50 {}",
        micros(p50(gen_times)),
        micros(p50(ver_times))
    );
    println!(
        "   (baseline in the same run: one SHA-256 of 64 bytes = {})",
        {
            let t = Instant::now();
            for i in 0..100_000u32 {
                black_box(leaf_hash(&i.to_le_bytes()));
            }
            micros(t.elapsed() / 100_000)
        }
    );
}
