//! Sealed datasets through the object storage client (`object_store`) on a directory
//! (`file:///...`): an upload goes in parts and lands byte for byte; a sealed file read from the
//! store by ranges, window by window, holds exactly what reading the file holds; an object cut
//! short or changed is refused, as a file would be; settings that cannot work are refused in one
//! line. The same code against a real S3-compatible server: cli/tests/cli/object_storage.rs.

use std::path::Path;

use strongroom::data_at_rest::blob::Blob;
use strongroom::data_at_rest::open::OpenError;
use strongroom::data_at_rest::storage::{PART_BYTES, StorageConfig};
use strongroom::data_at_rest::stream::SealedSource;
use strongroom::keys::{OperatorSecret, RoomKeys};

fn file_storage(dir: &Path) -> StorageConfig {
    StorageConfig {
        url: format!("file://{}", dir.display()),
        endpoint: None,
        region: None,
        allow_http: false,
    }
}

/// A room's keys and a dataset sealed to it in small chunks.
fn sealed(dir: &Path) -> (RoomKeys, std::path::PathBuf) {
    let keys = RoomKeys::generate("stored", &dir.join("keys"), &OperatorSecret::new(b"stored"))
        .expect("keys");
    let sealed = strongroom_tests::seal_synthetic(dir, &keys.public, 400, 6.0, 5, 300);
    (keys, sealed)
}

#[test]
fn an_upload_goes_in_parts_and_lands_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = file_storage(&dir.path().join("store"))
        .open()
        .expect("storage");
    // Two and a half parts.
    let bytes: Vec<u8> = (0..PART_BYTES * 5 / 2)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let local = dir.path().join("upload.part");
    std::fs::write(&local, &bytes).expect("write");
    let sent = storage
        .put_file(&local, "datasets/big.sealed")
        .expect("put");
    assert_eq!(sent, bytes.len() as u64);
    let stored = std::fs::read(dir.path().join("store/datasets/big.sealed")).expect("object");
    assert!(stored == bytes, "the object differs from the upload");
    let blob = storage.blob("datasets/big.sealed").expect("blob");
    assert_eq!(blob.len().expect("len"), bytes.len() as u64);
    let mut ranges = blob.ranges().expect("ranges");
    let mut middle = vec![0u8; 1000];
    ranges
        .read_at(PART_BYTES as u64 - 500, &mut middle)
        .expect("a range across two parts");
    assert_eq!(middle, bytes[PART_BYTES - 500..PART_BYTES + 500]);
    let mut past = vec![0u8; 10];
    assert!(ranges.read_at(bytes.len() as u64 - 5, &mut past).is_err());
    storage.delete("datasets/big.sealed").expect("delete");
    assert!(storage.blob("datasets/big.sealed").is_err());
}

#[test]
fn a_sealed_file_read_from_the_store_by_ranges_holds_what_the_file_holds() {
    let dir = tempfile::tempdir().expect("tmp");
    let (keys, sealed) = sealed(dir.path());
    let storage = file_storage(&dir.path().join("store"))
        .open()
        .expect("storage");
    storage
        .put_file(&sealed, "datasets/bank.sealed")
        .expect("put");
    let from_file = SealedSource::open(&sealed, &keys).expect("file");
    let blob = storage.blob("datasets/bank.sealed").expect("blob");
    assert!(
        blob.as_path().is_none(),
        "read through the object store client"
    );
    let (config, key) = blob.location().expect("where a worker finds it");
    assert_eq!((config, key), (storage.config(), "datasets/bank.sealed"));
    let from_store = SealedSource::open_blob(blob, &keys).expect("object");
    assert_eq!(from_store.header_sha256(), from_file.header_sha256());
    let windows = |source: &SealedSource| -> Vec<String> {
        source
            .windows(64)
            .expect("windows")
            .map(|w| format!("{:?}", w.expect("window")))
            .collect()
    };
    let (a, b) = (windows(&from_file), windows(&from_store));
    assert_eq!(a.len(), 7);
    assert!(
        a == b,
        "a window read from the store differs from the file's"
    );
    let range =
        |source: &SealedSource| format!("{:?}", source.range(37..251, false).expect("range"));
    assert!(range(&from_file) == range(&from_store));
    from_store
        .authenticate()
        .expect("every chunk authenticates");
    // Table mode loads it whole.
    let whole = |source: &SealedSource| format!("{:?}", source.load(1).expect("load"));
    assert!(whole(&from_file) == whole(&from_store));
}

#[test]
fn an_object_cut_short_or_changed_is_refused_as_a_file_would_be() {
    let dir = tempfile::tempdir().expect("tmp");
    let (keys, sealed) = sealed(dir.path());
    let storage = file_storage(&dir.path().join("store"))
        .open()
        .expect("storage");
    let bytes = std::fs::read(&sealed).expect("sealed");
    // Cut short: refused at open, with the object's URL in the message.
    let short = dir.path().join("short");
    std::fs::write(&short, &bytes[..bytes.len() - 100]).expect("write");
    storage.put_file(&short, "short.sealed").expect("put");
    let refused = SealedSource::open_blob(storage.blob("short.sealed").expect("blob"), &keys)
        .err()
        .expect("refused");
    assert!(
        matches!(refused, OpenError::Malformed(_) | OpenError::Chunk { .. }),
        "{refused}"
    );
    // One byte of a data chunk changed: it opens (the index authenticates), and the window
    // holding that chunk fails to authenticate; no row of it is used.
    let source = SealedSource::open(&sealed, &keys).expect("opens");
    let mut changed = bytes.clone();
    let header_end = bytes.len() / 3;
    changed[header_end] ^= 0x40;
    let path = dir.path().join("changed");
    std::fs::write(&path, &changed).expect("write");
    storage.put_file(&path, "changed.sealed").expect("put");
    let opened = SealedSource::open_blob(storage.blob("changed.sealed").expect("blob"), &keys);
    let failed = match opened {
        Err(e) => e,
        Ok(stored) => {
            assert_eq!(stored.header_sha256(), source.header_sha256());
            stored
                .windows(64)
                .expect("windows")
                .find_map(Result::err)
                .expect("a window fails")
        }
    };
    assert!(
        matches!(failed, OpenError::Chunk { .. } | OpenError::Malformed(_)),
        "{failed}"
    );
    // A file that is not there.
    assert!(matches!(
        Blob::File(dir.path().join("missing")).len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    ));
    assert!(storage.blob("missing.sealed").is_err());
}

#[test]
fn storage_settings_that_cannot_work_are_refused_in_one_line() {
    let refused = |config: StorageConfig, says: &str| {
        let e = config.open().err().expect("refused").to_string();
        assert!(e.contains(says) && !e.contains('\n'), "{e}");
    };
    let s3 = |url: &str| StorageConfig {
        url: url.into(),
        endpoint: None,
        region: None,
        allow_http: false,
    };
    refused(
        s3("ftp://bucket/x"),
        "use s3://bucket/prefix or file:///path",
    );
    refused(s3("s3:///prefix"), "names no bucket");
    refused(s3("file://relative/path"), "absolute path");
    refused(
        StorageConfig {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..s3("s3://bucket/rooms")
        },
        "allow_http",
    );
    refused(
        StorageConfig {
            region: Some("eu-west-1".into()),
            ..s3("file:///tmp/x")
        },
        "are for s3:// storage",
    );
}
