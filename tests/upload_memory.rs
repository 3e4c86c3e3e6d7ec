//! A partner's audience list is checked and counted as it streams through the upload check, one
//! chunk in memory at a time: the server's memory does not grow with the list. (The first version
//! read a 1 GiB list whole into memory, and decrypted it twice: 76 to 1,083 MiB.) One test in its
//! own process, so the peak it measures is its own.

use axum::body::Body;
use axum::http::StatusCode;
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::{SealOptions, seal_with};
use strongroom::dataset::schema::DatasetSchema;
use strongroom_server::ServiceConfig;
use strongroom_synthetic as synthetic;
use strongroom_tests::http::{call, served};
use strongroom_tests::{peak_resident_mib, resident_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audience_upload_is_checked_in_bounded_memory() {
    let s = served(ServiceConfig::default()).await;
    let dir = &s.dir;
    // About 800,000 people: a sealed list of about 45 MiB.
    let bank = synthetic::generate(2_000, 1.0, 5);
    let users = synthetic::partner_users(&bank, 800_000, 9);
    let list_dir = dir.path().join("list");
    users.write_csv(&list_dir).expect("csv");
    let party = PartyKey::generate("socialco", &dir.path().join("socialco.key")).expect("key");
    let sealed = dir.path().join("list.sealed");
    // Sealed with a small sorting budget: memory the process frees before the upload is memory
    // the allocator could hand back without the peak moving, which would hide a regression.
    seal_with(
        &DatasetSchema::load(&list_dir.join("schema.toml")).expect("schema"),
        &[("users".into(), list_dir.join("users.csv"))],
        &s.state.room.keys().public,
        &party,
        &SealOptions {
            chunk_rows: 16_384,
            memory_budget: 1 << 20,
            progress: false,
        },
        &sealed,
    )
    .expect("seal");
    // Held until the end (the body shares this buffer), so the upload's own buffer is not memory
    // the check could reuse without the peak moving.
    let bytes = axum::body::Bytes::from(std::fs::read(&sealed).expect("read"));
    let size_mib = bytes.len() as f64 / (1 << 20) as f64;
    assert!(size_mib > 20.0, "the list is {size_mib:.1} MiB");

    // Reset the process's peak (VmHWM) to what it holds now, the list's bytes included.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak");
    let before = resident_bytes() as f64 / (1 << 20) as f64;
    let (status, _, answer) = call(
        &s.app,
        "POST",
        "/v1/audience-lists",
        Some(&s.partner),
        Body::from(bytes.clone()),
    )
    .await;
    let growth = peak_resident_mib() - before;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["members"], users.len(), "every user counted");
    println!("audience upload: {size_mib:.1} MiB list, peak growth {growth:.1} MiB");
    assert!(
        growth < size_mib / 2.0,
        "the server's memory grew by {growth:.1} MiB for a {size_mib:.1} MiB list"
    );
}
