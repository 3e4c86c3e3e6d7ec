//! The compiled-module cache: an artifact is loaded only if its HMAC under the room's secret
//! verifies; a modified, truncated or foreign file is rejected and recompiled, never loaded.

use strongroom::guest_boundary::cache::{CacheStatus, ModuleCache};
use strongroom::guest_boundary::{Outcome, RunLimits, vet};
use strongroom_tests::{example, run, sandbox, small_bank};

#[test]
fn artifacts_are_authenticated_before_they_are_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = ModuleCache::open(dir.path()).expect("cache opens");
    let bytes = example("spend-by-category");
    let module = vet(&bytes, 16 << 20).expect("vetted");
    let engine = sandbox().engine();

    let (_, first) = cache
        .load_or_compile(engine, &module.hash, &bytes)
        .expect("compiles");
    assert_eq!(first, CacheStatus::Miss);
    let (_, second) = cache
        .load_or_compile(engine, &module.hash, &bytes)
        .expect("loads");
    assert_eq!(second, CacheStatus::Hit);

    // Flip one byte in the middle of the artifact: rejected, recompiled, then a hit again.
    let path = cache.path_for(engine, &module.hash);
    let mut file = std::fs::read(&path).expect("artifact exists");
    let middle = file.len() / 2;
    file[middle] ^= 0x01;
    std::fs::write(&path, &file).expect("tamper");
    let (_, third) = cache
        .load_or_compile(engine, &module.hash, &bytes)
        .expect("recompiles");
    assert_eq!(third, CacheStatus::Rejected);
    assert_eq!(
        cache
            .load_or_compile(engine, &module.hash, &bytes)
            .expect("loads")
            .1,
        CacheStatus::Hit
    );

    // Truncated.
    std::fs::write(&path, &file[..10]).expect("truncate");
    assert_eq!(
        cache
            .load_or_compile(engine, &module.hash, &bytes)
            .expect("recompiles")
            .1,
        CacheStatus::Rejected
    );

    // A file made under another room's secret is not authentic here.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = ModuleCache::open(other_dir.path()).expect("cache opens");
    other
        .load_or_compile(engine, &module.hash, &bytes)
        .expect("compiles");
    std::fs::copy(other.path_for(engine, &module.hash), &path).expect("copy foreign artifact");
    assert_eq!(
        cache
            .load_or_compile(engine, &module.hash, &bytes)
            .expect("recompiles")
            .1,
        CacheStatus::Rejected
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("cache.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the cache secret is private");
    }
}

#[test]
fn a_module_loaded_from_the_cache_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = ModuleCache::open(dir.path()).expect("cache opens");
    let bytes = example("spend-by-category");
    let data = small_bank(20);
    for expected in [CacheStatus::Miss, CacheStatus::Hit] {
        let module = sandbox()
            .prepare(vet(&bytes, 16 << 20).expect("vetted"), Some(&cache))
            .expect("prepared");
        assert_eq!(module.cache, expected);
        assert_eq!(
            run(&module, &data, RunLimits::default()).outcome,
            Outcome::Completed
        );
    }
}

#[test]
fn a_sandbox_prepares_a_module_once_and_finds_it_by_its_hash() {
    let sandbox = strongroom::guest_boundary::Sandbox::new(
        &strongroom::guest_boundary::sandbox::EngineSettings::default(),
    )
    .expect("engine");
    let spend = vet(&example("spend-by-category"), 16 << 20).expect("vetted");
    let fraud = vet(&example("fraud-alerts-by-region"), 16 << 20).expect("vetted");
    assert!(
        sandbox.prepared(&spend.hash).is_none(),
        "nothing prepared yet"
    );
    let first = sandbox
        .prepare_shared(spend.clone(), None)
        .expect("prepares");
    let again = sandbox.prepare_shared(spend.clone(), None).expect("found");
    assert!(std::sync::Arc::ptr_eq(&first, &again), "prepared once");
    let found = sandbox.prepared(&spend.hash).expect("kept");
    assert!(std::sync::Arc::ptr_eq(&first, &found));
    // Another module is another entry, found by its own hash only.
    let other = sandbox
        .prepare_shared(fraud.clone(), None)
        .expect("prepares");
    assert!(!std::sync::Arc::ptr_eq(&first, &other));
    assert_eq!(other.module.hash, fraud.hash);
    // A prepared module runs like a freshly prepared one.
    let ctx = strongroom::guest_boundary::RunContext::new(
        small_bank(50),
        found.module.manifest.clone(),
        found.module.manifest.mode,
        RunLimits::default(),
        [7; 32],
    )
    .expect("context");
    let report = sandbox.run(&found, std::sync::Arc::new(ctx), 1);
    assert_eq!(report.outcome, Outcome::Completed);
}
