//! Fixtures shared by the fuzz targets: a room with real keys, a small sealed dataset and its
//! plaintext chunks, a signer and a stored audit log. Built once per fuzzing process.
//!
//! Each target in `targets/` feeds arbitrary bytes to one decoder of untrusted input. Where the
//! input is authenticated (sealed chunks, signed notes), the target seals or signs the fuzzed
//! bytes with these fixtures' real keys first, so the fuzzer reaches past authentication into
//! the decoders behind it. Run them with `fuzz/run.sh` (docs/reliability.md).

use std::path::PathBuf;
use std::sync::OnceLock;

use strongroom::audit_log::log::{AuditLog, export_line};
use strongroom::audit_log::signer::Signer;
use strongroom::data_at_rest::open::SealedFile;
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::seal;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::keys::{OperatorSecret, RoomKeys};
use strongroom_synthetic as synthetic;
use strongroom_verify::note::Verifier;

/// Everything the targets share.
pub struct Fixture {
    /// Scratch space (kept for the process's life).
    pub dir: tempfile::TempDir,
    /// The room's keys.
    pub room: RoomKeys,
    /// A sealing party (an attacker with the room's public key is one).
    pub party: PartyKey,
    /// A small dataset sealed to the room.
    pub sealed: Vec<u8>,
    /// Its plaintext chunks, the index last.
    pub chunks: Vec<Vec<u8>>,
    /// Its header.
    pub header: strongroom::data_at_rest::format::Header,
    /// A signer and its verifier, for notes, checkpoints and receipts.
    pub signer: Signer,
    /// See `signer`.
    pub verifier: Verifier,
    /// An audit log export (JSON lines) of a few entries, and its signed checkpoint.
    pub export: String,
    /// See `export`.
    pub checkpoint: String,
}

/// The fixture, made on first use.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(make)
}

fn make() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let room = RoomKeys::generate(
        "fuzz-room",
        &dir.path().join("keys"),
        &OperatorSecret::new(b"fuzz"),
    )
    .expect("room keys");
    let party = PartyKey::generate("bigbank", &dir.path().join("party.key")).expect("party");
    let data = dir.path().join("data");
    synthetic::generate(12, 2.0, 7)
        .write_csv(&data)
        .expect("csv");
    let out = dir.path().join("bank.sealed");
    seal(
        &DatasetSchema::load(&data.join("schema.toml")).expect("schema"),
        &[
            ("customers".into(), data.join("customers.csv")),
            ("transactions".into(), data.join("transactions.csv")),
        ],
        &room.public,
        &party,
        8,
        &out,
        false,
    )
    .expect("seal");
    let sealed = std::fs::read(&out).expect("read");
    let file = SealedFile::parse(&sealed).expect("parses");
    let chunks = file
        .plaintext_chunks(&room)
        .expect("opens")
        .iter()
        .map(|c| c.to_vec())
        .collect();
    let signer = Signer::from_seed("fuzz-room", &[3u8; 32]).expect("signer");
    let verifier = signer.verifier();
    let (export, checkpoint) = audit_export(&dir.path().join("log.db"));
    Fixture {
        header: file.header.clone(),
        dir,
        room,
        party,
        sealed,
        chunks,
        signer,
        verifier,
        export,
        checkpoint,
    }
}

fn audit_export(db: &std::path::Path) -> (String, String) {
    let signer = Signer::from_seed("fuzz-room", &[3u8; 32]).expect("signer");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pool =
            strongroom::room::db::open(&strongroom::room::db::Location::Sqlite(db.to_path_buf()))
                .await
                .expect("db");
        let log = AuditLog::new(&pool, signer, "fuzz-room");
        for i in 0..4 {
            log.append(&strongroom_verify::Event::LogExercised {
                actor: "bank".into(),
                n: i,
                note: format!("entry {i} \"q\"\n\u{e9}"),
            })
            .await
            .expect("append");
        }
        let export = log
            .entries(0)
            .await
            .expect("entries")
            .iter()
            .map(|e| export_line(e.index, &e.entry, &e.signature).expect("line") + "\n")
            .collect();
        let (_, checkpoint) = log.checkpoint().await.expect("checkpoint");
        (export, checkpoint)
    })
}

/// A scratch file path for targets that need a file on disk.
pub fn scratch(name: &str) -> PathBuf {
    fixture().dir.path().join(name)
}

/// Writes a target's seed inputs (real, valid inputs from the fixtures) into `$FUZZ_SEEDS/NAME/`
/// when that variable is set, so fuzzing starts from inputs that pass every check. Called from
/// each target's `init`, which libFuzzer runs before it reads its corpus directories.
pub fn seed(target: &str, inputs: &[(&str, Vec<u8>)]) {
    let Some(root) = std::env::var_os("FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::Path::new(&root).join(target);
    if std::fs::create_dir_all(&dir).is_ok() {
        for (name, bytes) in inputs {
            let _ = std::fs::write(dir.join(name), bytes);
        }
    }
}
