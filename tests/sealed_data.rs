//! Sealed datasets under attack: every tampering is rejected with its own clear error, and nothing
//! from a rejected file is ever decoded, let alone shown to a guest.

use std::path::{Path, PathBuf};

use strongroom::data_at_rest::open::{OpenError, SealedFile};
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::seal;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::guest_boundary::{Outcome, RunLimits};
use strongroom::keys::{OperatorSecret, RoomKeys};
use strongroom_synthetic as synthetic;
use strongroom_tests::{example, prepare, run};

struct Fixture {
    dir: tempfile::TempDir,
    room: RoomKeys,
    party: PartyKey,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let room = RoomKeys::generate(
        "room-a",
        &dir.path().join("keys-a"),
        &OperatorSecret::new(b"a"),
    )
    .expect("room keys");
    let party = PartyKey::generate("bigbank", &dir.path().join("bank.key")).expect("party key");
    Fixture { dir, room, party }
}

fn seal_bank(f: &Fixture, room: &RoomKeys, customers: usize, seed: u64, name: &str) -> PathBuf {
    let data = f.dir.path().join(format!("data-{name}"));
    synthetic::generate(customers, 8.0, seed)
        .write_csv(&data)
        .expect("csv");
    let schema = DatasetSchema::load(&data.join("schema.toml")).expect("schema");
    let tables = vec![
        ("customers".to_string(), data.join("customers.csv")),
        ("transactions".to_string(), data.join("transactions.csv")),
    ];
    let out = f.dir.path().join(format!("{name}.sealed"));
    seal(&schema, &tables, &room.public, &f.party, 200, &out, false).expect("sealed");
    out
}

/// Re-assembles a sealed file from its parts.
fn assemble(file: &SealedFile, chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"SRSEALD1".to_vec();
    out.extend_from_slice(&(file.header_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&file.header_bytes);
    out.extend_from_slice(&(file.signature.len() as u16).to_le_bytes());
    out.extend_from_slice(&file.signature);
    for c in chunks {
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

fn open_bytes(bytes: &[u8], room: &RoomKeys) -> Result<(), OpenError> {
    SealedFile::parse(bytes)?.open(room, 2).map(|_| ())
}

fn read(path: &Path) -> (Vec<u8>, SealedFile) {
    let bytes = std::fs::read(path).expect("read");
    let file = SealedFile::parse(&bytes).expect("parses");
    (bytes, file)
}

#[test]
fn a_sealed_dataset_opens_to_the_same_result_as_its_plaintext() {
    let f = fixture();
    let path = seal_bank(&f, &f.room, 300, 5, "bank");
    let (_, file) = read(&path);
    assert!(
        file.chunks.len() > 5,
        "small chunks give many chunks: {}",
        file.chunks.len()
    );
    let opened = std::sync::Arc::new(file.open(&f.room, 2).expect("opens"));
    let plain = std::sync::Arc::new(synthetic::generate(300, 8.0, 5).dataset());
    assert_eq!(opened.entity_keys, plain.entity_keys);
    let module = prepare(&example("spend-by-category"));
    let a = run(&module, &opened, RunLimits::default());
    let b = run(&module, &plain, RunLimits::default());
    assert_eq!(a.outcome, Outcome::Completed);
    assert_eq!(
        a.aggregate, b.aggregate,
        "sealing changes nothing a query sees"
    );
    // Identifiers survive for the host, and never become guest columns.
    let customers = opened.table("customers").expect("customers");
    assert_eq!(customers.identifiers.len(), 2);
    assert!(customers.column("email").is_none());
}

/// The tamper sweep of docs/reliability.md: every byte of a sealed file changed in turn (one bit
/// flipped), each modified file opened. Every one must be refused.
#[test]
fn a_sweep_changing_every_byte_of_a_sealed_file_is_detected_every_time() {
    let f = fixture();
    let path = seal_bank(&f, &f.room, 12, 3, "sweep");
    let (bytes, _) = read(&path);
    let mut detected = 0;
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1 << (i % 8);
        if open_bytes(&b, &f.room).is_err() {
            detected += 1;
        } else {
            panic!(
                "byte {i} of {} changed and the file still opened",
                bytes.len()
            );
        }
    }
    println!(
        "tamper sweep: {detected} of {} modified sealed files detected",
        bytes.len()
    );
}

#[test]
fn every_region_of_the_file_is_authenticated() {
    let f = fixture();
    let path = seal_bank(&f, &f.room, 120, 6, "bank");
    let (bytes, file) = read(&path);
    let n = file.chunks.len() as u64;
    open_bytes(&bytes, &f.room).expect("the untouched file opens");

    // Magic.
    let mut b = bytes.clone();
    b[0] ^= 1;
    assert!(matches!(
        open_bytes(&b, &f.room),
        Err(OpenError::Malformed(_))
    ));

    // Header fields, including the encapsulated and wrapped keys: the sealing party's signature
    // breaks (or the JSON does).
    let header_start = 12;
    let text = String::from_utf8(file.header_bytes.clone()).expect("utf8");
    for field in [
        "\"dataset\":",
        "\"encapsulated_key\":\"",
        "\"wrapped_key\":\"",
        "\"nonce_prefix\":\"",
        "\"chunk_rows\":",
    ] {
        let at = header_start + text.find(field).expect("field") + field.len() + 2;
        let mut b = bytes.clone();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        let err = open_bytes(&b, &f.room).expect_err(field);
        assert!(
            matches!(err, OpenError::BadHeaderSignature | OpenError::Malformed(_)),
            "{field}: {err:?}"
        );
    }
    // The signature itself.
    let mut b = bytes.clone();
    b[header_start + file.header_bytes.len() + 2 + 5] ^= 1;
    assert_eq!(open_bytes(&b, &f.room), Err(OpenError::BadHeaderSignature));

    // Each chunk's body and tag (the last chunk is the index).
    for i in 0..n as usize {
        for (what, pos) in [
            ("body", file.chunks[i].len() / 2),
            ("tag", file.chunks[i].len() - 3),
        ] {
            let mut chunks = file.chunks.clone();
            chunks[i][pos] ^= 0x40;
            assert_eq!(
                open_bytes(&assemble(&file, &chunks), &f.room),
                Err(OpenError::Chunk {
                    index: i as u64,
                    total: n
                }),
                "chunk {i} {what}"
            );
        }
    }
}

#[test]
fn reordering_dropping_splicing_truncating_and_replaying_are_rejected() {
    let f = fixture();
    let path = seal_bank(&f, &f.room, 120, 7, "bank");
    let other = seal_bank(&f, &f.room, 120, 8, "other");
    let (bytes, file) = read(&path);
    let (_, other_file) = read(&other);
    let n = file.chunks.len() as u64;

    let mut chunks = file.chunks.clone();
    chunks.swap(1, 2);
    assert_eq!(
        open_bytes(&assemble(&file, &chunks), &f.room),
        Err(OpenError::Chunk { index: 1, total: n }),
        "reordered"
    );

    let dropped_last = &file.chunks[..file.chunks.len() - 1];
    assert!(
        matches!(
            open_bytes(&assemble(&file, dropped_last), &f.room),
            Err(OpenError::Chunk { .. })
        ),
        "dropped the last chunk"
    );

    let mut dropped_middle = file.chunks.clone();
    dropped_middle.remove(2);
    assert!(
        matches!(
            open_bytes(&assemble(&file, &dropped_middle), &f.room),
            Err(OpenError::Chunk { .. })
        ),
        "dropped a middle chunk"
    );

    let mut spliced = file.chunks.clone();
    spliced[3] = other_file.chunks[3].clone();
    assert_eq!(
        open_bytes(&assemble(&file, &spliced), &f.room),
        Err(OpenError::Chunk { index: 3, total: n }),
        "spliced from another dataset"
    );

    // An old header replayed with another dataset's chunks.
    let replay = assemble(
        &file,
        &other_file.chunks[..file.chunks.len().min(other_file.chunks.len())],
    );
    assert!(
        matches!(
            open_bytes(&replay, &f.room),
            Err(OpenError::Chunk { index: 0, .. })
        ),
        "replayed header"
    );

    // Truncated anywhere.
    for cut in [5, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            open_bytes(&bytes[..cut], &f.room).is_err(),
            "truncated at {cut}"
        );
    }
}

#[test]
fn a_dataset_sealed_to_another_room_does_not_open() {
    let f = fixture();
    let room_b = RoomKeys::generate(
        "room-b",
        &f.dir.path().join("keys-b"),
        &OperatorSecret::new(b"b"),
    )
    .expect("room keys");
    let path = seal_bank(&f, &room_b, 50, 9, "for-b");
    let (bytes, file) = read(&path);
    assert!(matches!(
        open_bytes(&bytes, &f.room),
        Err(OpenError::OtherRoom(_))
    ));
    file.open(&room_b, 1).expect("room b opens it");
}

#[test]
fn sealing_refuses_bad_input_and_leaves_no_file() {
    let f = fixture();
    let data = f.dir.path().join("bad");
    synthetic::generate(20, 3.0, 1)
        .write_csv(&data)
        .expect("csv");
    let path = data.join("transactions.csv");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("C00000001,2025-03-01,Casinos,12.00,false\n");
    std::fs::write(&path, text).expect("write");
    let schema = DatasetSchema::load(&data.join("schema.toml")).expect("schema");
    let tables = vec![
        ("customers".to_string(), data.join("customers.csv")),
        ("transactions".to_string(), path),
    ];
    let out = f.dir.path().join("bad.sealed");
    let err =
        seal(&schema, &tables, &f.room.public, &f.party, 100, &out, false).expect_err("refused");
    assert!(
        err.to_string()
            .contains("'Casinos' is not in the column's dictionary"),
        "{err}"
    );
    assert!(!out.exists(), "no partial output");
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(".tmp") || name.starts_with(".strongroom-seal-")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

#[test]
fn inputs_that_would_seal_wrongly_are_refused_with_a_reason() {
    let f = fixture();
    let data = f.dir.path().join("odd");
    synthetic::generate(20, 3.0, 1)
        .write_csv(&data)
        .expect("csv");
    let schema = DatasetSchema::load(&data.join("schema.toml")).expect("schema");
    let customers = std::fs::read_to_string(data.join("customers.csv")).expect("read");
    let (header, rows) = customers.split_once('\n').expect("header");
    let email_at = header
        .split(',')
        .position(|c| c == "email")
        .expect("an email column");
    let with_email = |email: &str| {
        let mut lines: Vec<String> = rows.lines().map(String::from).collect();
        let mut cells: Vec<String> = lines[0].split(',').map(String::from).collect();
        cells[email_at] = email.to_string();
        lines[0] = cells.join(",");
        format!("{header}\n{}\n", lines.join("\n"))
    };
    let duplicate = format!(
        "{header},email\n{}",
        rows.lines()
            .map(|l| format!("{l},x@example.com\n"))
            .collect::<String>()
    );
    let cases = [
        ("NUL", with_email("ann\0@example.com"), 100, "NUL byte"),
        (
            "long field",
            with_email(&format!("{}@example.com", "a".repeat(70_000))),
            100,
            "over the limit",
        ),
        ("duplicate column", duplicate, 100, "appears twice"),
        ("zero rows per chunk", customers.clone(), 0, "--chunk-rows"),
    ];
    for (what, text, chunk_rows, expected) in cases {
        let path = f.dir.path().join("customers-odd.csv");
        std::fs::write(&path, text).expect("write");
        let tables = vec![
            ("customers".to_string(), path),
            ("transactions".to_string(), data.join("transactions.csv")),
        ];
        let out = f.dir.path().join("odd.sealed");
        let err = seal(
            &schema,
            &tables,
            &f.room.public,
            &f.party,
            chunk_rows,
            &out,
            false,
        )
        .expect_err(what);
        assert!(err.to_string().contains(expected), "{what}: {err}");
        assert!(!out.exists(), "{what}: no output");
    }
}

/// Overwrites the offset of the first buffer of the first record batch in an Arrow IPC stream.
fn corrupt_first_buffer_offset(stream: &mut [u8], offset: i64) {
    let mut pos = 0;
    loop {
        let meta_len = u32::from_le_bytes(stream[pos + 4..pos + 8].try_into().expect("4")) as usize;
        let meta_at = pos + 8;
        let message =
            arrow_ipc::root_as_message(&stream[meta_at..meta_at + meta_len]).expect("message");
        let body = message.bodyLength() as usize;
        if let Some(batch) = message.header_as_record_batch() {
            let buffers = batch.buffers().expect("buffers");
            let at = buffers.bytes().as_ptr() as usize - stream.as_ptr() as usize;
            stream[at..at + 8].copy_from_slice(&offset.to_le_bytes());
            return;
        }
        pos = meta_at + meta_len + body;
    }
}

#[test]
fn an_arrow_buffer_outside_its_body_is_refused_before_the_decoder_slices_by_it() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    let f = fixture();
    let data = f.dir.path().join("arrow");
    synthetic::generate(20, 3.0, 1)
        .write_csv(&data)
        .expect("csv");
    let out = f.dir.path().join("arrow.sealed");
    seal(
        &DatasetSchema::load(&data.join("schema.toml")).expect("schema"),
        &[
            ("customers".into(), data.join("customers.csv")),
            ("transactions".into(), data.join("transactions.csv")),
        ],
        &f.room.public,
        &f.party,
        16,
        &out,
        false,
    )
    .expect("seal");
    let file = SealedFile::read(&out).expect("read");
    let mut chunks: Vec<Vec<u8>> = file
        .plaintext_chunks(&f.room)
        .expect("opens")
        .iter()
        .map(|c| c.to_vec())
        .collect();
    // The offset the fuzzer found (sealed_content), which made arrow-ipc panic on a slice.
    corrupt_first_buffer_offset(&mut chunks[0], -2_810_246_167_479_189_376);
    let hostile = strongroom::data_at_rest::seal::seal_raw(
        &f.room.public,
        &f.party,
        file.header.clone(),
        &chunks,
    )
    .expect("seal");
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {
        PANICS.fetch_add(1, Ordering::SeqCst);
    }));
    let opened = SealedFile::parse(&hostile)
        .expect("parses")
        .open(&f.room, 1);
    std::panic::set_hook(previous);
    match opened {
        Err(OpenError::Content(why)) => {
            assert!(
                why.to_string().contains("outside its message body"),
                "{why}"
            )
        }
        other => panic!("{:?}", other.err()),
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the decoder panicked");
}

fn write_parquet(path: &Path, batch: arrow_array::RecordBatch) {
    let file = std::fs::File::create(path).expect("create");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(500))
        .build();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

fn bank_parquet(
    dir: &Path,
    bank: &synthetic::SyntheticBank,
    bad_mcc_at: Option<usize>,
) -> Vec<(String, PathBuf)> {
    use arrow_array::{
        ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    };
    use std::sync::Arc;
    let label = |d: &[&str], i: &u32| d[*i as usize].to_string();
    let customers = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(StringArray::from(bank.customer_id.clone())) as ArrayRef,
        ),
        (
            "email",
            Arc::new(StringArray::from(bank.email.clone())) as ArrayRef,
        ),
        (
            "phone",
            Arc::new(StringArray::from(bank.phone.clone())) as ArrayRef,
        ),
        (
            "age_band",
            Arc::new(StringArray::from(
                bank.age_band
                    .iter()
                    .map(|i| label(synthetic::AGE_BANDS, i))
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "region",
            Arc::new(StringArray::from(
                bank.region
                    .iter()
                    .map(|i| label(synthetic::REGIONS, i))
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "account_type",
            Arc::new(StringArray::from(
                bank.account_type
                    .iter()
                    .map(|i| label(synthetic::ACCOUNT_TYPES, i))
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "tenure_years",
            Arc::new(Int64Array::from(bank.tenure_years.clone())) as ArrayRef,
        ),
        (
            "avg_monthly_balance",
            Arc::new(Float64Array::from(bank.avg_monthly_balance.clone())) as ArrayRef,
        ),
        (
            "fraud_alerts_last_quarter",
            Arc::new(Int64Array::from(bank.fraud_alerts_last_quarter.clone())) as ArrayRef,
        ),
    ])
    .expect("customers batch");
    let mcc: Vec<&str> = synthetic::MCC_GROUPS.iter().map(|g| g.0).collect();
    let mut mcc_labels: Vec<String> = bank.tx_mcc_group.iter().map(|i| label(&mcc, i)).collect();
    if let Some(at) = bad_mcc_at {
        mcc_labels[at] = "Casinos".into();
    }
    let transactions = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(StringArray::from(
                bank.tx_customer
                    .iter()
                    .map(|&c| bank.customer_id[c as usize].clone())
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "date",
            Arc::new(Date32Array::from(bank.tx_date.clone())) as ArrayRef,
        ),
        (
            "mcc_group",
            Arc::new(StringArray::from(mcc_labels)) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(Float64Array::from(bank.tx_amount.clone())) as ArrayRef,
        ),
        (
            "online",
            Arc::new(BooleanArray::from(bank.tx_online.clone())) as ArrayRef,
        ),
    ])
    .expect("transactions batch");
    write_parquet(&dir.join("customers.parquet"), customers);
    write_parquet(&dir.join("transactions.parquet"), transactions);
    vec![
        ("customers".to_string(), dir.join("customers.parquet")),
        ("transactions".to_string(), dir.join("transactions.parquet")),
    ]
}

#[test]
fn parquet_input_seals_to_the_same_data_and_bad_values_name_the_row_group() {
    let f = fixture();
    let bank = synthetic::generate(150, 8.0, 12);
    let dir = f.dir.path().join("pq");
    bank.write_csv(&dir).expect("csv and schema");
    let schema = DatasetSchema::load(&dir.join("schema.toml")).expect("schema");
    let tables = bank_parquet(&dir, &bank, None);
    let out = f.dir.path().join("pq.sealed");
    seal(&schema, &tables, &f.room.public, &f.party, 300, &out, false)
        .expect("sealed from Parquet");
    let opened = std::sync::Arc::new(
        SealedFile::read(&out)
            .expect("read")
            .open(&f.room, 2)
            .expect("opens"),
    );
    let plain = std::sync::Arc::new(bank.dataset());
    let module = prepare(&example("spend-by-category"));
    assert_eq!(
        run(&module, &opened, RunLimits::default()).aggregate,
        run(&module, &plain, RunLimits::default()).aggregate
    );

    let bad = bank_parquet(&dir, &bank, Some(700));
    let err = seal(
        &schema,
        &bad,
        &f.room.public,
        &f.party,
        300,
        &f.dir.path().join("bad.sealed"),
        false,
    )
    .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("transactions.parquet")
            && msg.contains("row group 1, row 200")
            && msg.contains("'Casinos'"),
        "{msg}"
    );
}

#[test]
fn a_tiny_memory_budget_spills_and_seals_the_same_data() {
    use strongroom::data_at_rest::seal::{SealOptions, seal_with};
    let f = fixture();
    let bank = synthetic::generate(300, 10.0, 13);
    let dir = f.dir.path().join("spill");
    bank.write_csv(&dir).expect("csv");
    let schema = DatasetSchema::load(&dir.join("schema.toml")).expect("schema");
    let tables = vec![
        ("customers".to_string(), dir.join("customers.csv")),
        ("transactions".to_string(), dir.join("transactions.csv")),
    ];
    let out = f.dir.path().join("spilled.sealed");
    // 64 KiB holds a few hundred rows: thousands of rows force many sorted runs on disk.
    seal_with(
        &schema,
        &tables,
        &f.room.public,
        &f.party,
        &SealOptions {
            chunk_rows: 1000,
            memory_budget: 64 << 10,
            progress: false,
        },
        &out,
    )
    .expect("sealed");
    let opened = std::sync::Arc::new(
        SealedFile::read(&out)
            .expect("read")
            .open(&f.room, 2)
            .expect("opens"),
    );
    let plain = std::sync::Arc::new(bank.dataset());
    assert_eq!(opened.entity_keys, plain.entity_keys);
    let module = prepare(&example("spend-by-category"));
    assert_eq!(
        run(&module, &opened, RunLimits::default()).aggregate,
        run(&module, &plain, RunLimits::default()).aggregate
    );
}

/// The rows of entity `e` in every table of `d`, as comparable text.
fn rows_of(d: &strongroom::dataset::Dataset, e: u32) -> Vec<String> {
    d.tables
        .iter()
        .flat_map(|t| {
            t.entity_rows(e).map(move |row| {
                let mut cells: Vec<String> = t
                    .guest_columns
                    .iter()
                    .map(|c| match &c.data {
                        strongroom::dataset::ColumnData::Int(v) => v[row].to_string(),
                        strongroom::dataset::ColumnData::Float(v) => v[row].to_bits().to_string(),
                        strongroom::dataset::ColumnData::Bool(v) => v[row].to_string(),
                        strongroom::dataset::ColumnData::Date(v) => v[row].to_string(),
                        strongroom::dataset::ColumnData::Category(v) => v[row].to_string(),
                    })
                    .collect();
                cells.extend(t.identifiers.iter().map(|c| c.values[row].clone()));
                format!("{}: {}", t.name, cells.join(","))
            })
        })
        .collect()
}

#[test]
fn read_window_by_window_a_dataset_gives_the_same_rows_and_the_same_result() {
    use strongroom::data_at_rest::stream::SealedSource;
    use strongroom::guest_boundary::{RunContext, executor::LocalPool};
    let f = fixture();
    let path = seal_bank(&f, &f.room, 300, 9, "bank");
    let whole = std::sync::Arc::new(read(&path).1.open(&f.room, 2).expect("opens"));
    let source = SealedSource::open(&path, &f.room).expect("the source opens");
    assert_eq!(source.shape().entities(), 300);
    assert!(source.shape().tables.iter().all(|t| t.rows() == 0));
    for window in source.windows(64).expect("windows") {
        let window = window.expect("every window reads");
        assert!(
            window.tables.iter().all(|t| t.identifiers.is_empty()),
            "identifiers are decoded only for a job that needs them"
        );
    }
    for size in [1, 7, 64, 1000] {
        let mut next = 0;
        for window in source.windows(size).expect("windows").with_identifiers() {
            let window = window.expect("every window reads");
            assert_eq!(window.span.start, next, "windows of {size} in order");
            assert!(window.entity_keys.is_empty(), "no entity keys are read");
            for e in window.span.clone() {
                assert_eq!(rows_of(&window, e), rows_of(&whole, e), "entity {e}");
            }
            next = window.span.end;
        }
        assert_eq!(next, 300, "windows of {size} cover every entity");
    }
    // The same module on the same data, whole or window by window: the same report.
    let module = prepare(&example("spend-by-category"));
    let limits = RunLimits::default();
    let manifest = module.module.manifest.clone();
    let ctx = |d| {
        std::sync::Arc::new(
            RunContext::new(d, manifest.clone(), manifest.mode, limits.clone(), [3; 32])
                .expect("admitted"),
        )
    };
    let expected = strongroom_tests::sandbox().run(&module, ctx(whole.clone()), 2);
    assert_eq!(expected.outcome, Outcome::Completed);
    for size in [5, 64, 256] {
        let progress = std::sync::Arc::new(strongroom::progress::Progress::default());
        let windowed = strongroom_tests::sandbox()
            .run_windows(
                &module,
                ctx(source.shape().clone()),
                source
                    .windows(size)
                    .expect("windows")
                    .with_progress(progress.clone()),
                &LocalPool { threads: 2 },
                Some(&progress),
            )
            .expect("every window reads");
        // Every customer ran and every data chunk was read once (the entity keys' never).
        let done = progress.snapshot();
        assert_eq!((done.customers_done, done.customers), (300, 300));
        let (_, file) = read(&path);
        let key_chunks = 300usize.div_ceil(200);
        assert_eq!(done.chunks, (file.chunks.len() - 1 - key_chunks) as u64);
        assert_eq!(done.chunks_read, done.chunks);
        assert_eq!(windowed.outcome, expected.outcome);
        assert_eq!(windowed.aggregate, expected.aggregate, "windows of {size}");
        assert_eq!(windowed.units, 300);
        assert_eq!(windowed.fuel_consumed, expected.fuel_consumed);
    }
}

#[test]
fn a_chunk_changed_after_the_source_opened_ends_the_windowed_read_with_no_result() {
    use strongroom::data_at_rest::stream::SealedSource;
    use strongroom::guest_boundary::executor::LocalPool;
    let f = fixture();
    let path = seal_bank(&f, &f.room, 300, 11, "bank");
    let source = SealedSource::open(&path, &f.room).expect("the source opens");
    // One bit of a data chunk in the middle of the file flipped on disk.
    let (mut bytes, file) = read(&path);
    let middle = file.chunks.len() / 2;
    let at = bytes.len()
        - file.chunks[middle..]
            .iter()
            .map(|c| c.len() + 4)
            .sum::<usize>()
        + 10;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let results: Vec<_> = source.windows(64).expect("windows").collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 1, "the read ends at the bad chunk");
    assert!(
        matches!(results.last(), Some(Err(OpenError::Chunk { index, .. })) if *index == middle as u64),
        "{:?}",
        results.last().map(|r| r.as_ref().err())
    );
    let module = prepare(&example("spend-by-category"));
    let ctx = shape_context(&module, source.shape());
    let run = strongroom_tests::sandbox().run_windows(
        &module,
        ctx,
        source.windows(64).expect("windows"),
        &LocalPool { threads: 2 },
        None,
    );
    assert!(run.is_err(), "a run over a bad chunk has no report");
}

#[test]
fn a_source_refuses_what_opening_the_whole_file_refuses() {
    use strongroom::data_at_rest::stream::SealedSource;
    let f = fixture();
    let path = seal_bank(&f, &f.room, 100, 12, "bank");
    let (bytes, file) = read(&path);
    // Truncated by its last chunk (the index): refused as a missing chunk.
    let cut = f.dir.path().join("cut.sealed");
    std::fs::write(
        &cut,
        &bytes[..bytes.len() - file.chunks.last().map_or(0, |c| c.len() + 4)],
    )
    .expect("write");
    assert!(matches!(
        SealedSource::open(&cut, &f.room),
        Err(OpenError::Chunk { .. })
    ));
    // Sealed to another room.
    let other = RoomKeys::generate(
        "room-b",
        &f.dir.path().join("keys-b"),
        &OperatorSecret::new(b"b"),
    )
    .expect("room keys");
    assert!(matches!(
        SealedSource::open(&path, &other),
        Err(OpenError::OtherRoom(_))
    ));
    // The index tampered with.
    let mut bad = bytes.clone();
    let last = bad.len() - 3;
    bad[last] ^= 1;
    let tampered = f.dir.path().join("tampered.sealed");
    std::fs::write(&tampered, &bad).expect("write");
    assert!(matches!(
        SealedSource::open(&tampered, &f.room),
        Err(OpenError::Chunk { .. })
    ));
}

#[test]
fn a_window_reader_that_fails_midway_leaves_the_run_with_no_aggregate() {
    use strongroom::data_at_rest::stream::SealedSource;
    use strongroom::guest_boundary::executor::LocalPool;
    let f = fixture();
    let path = seal_bank(&f, &f.room, 300, 13, "bank");
    let source = SealedSource::open(&path, &f.room).expect("the source opens");
    let module = prepare(&example("spend-by-category"));
    let ctx = shape_context(&module, source.shape());
    // Two windows read, then the reader fails (a host bug): the windows run so far must not
    // become a result.
    let windows = source
        .windows(64)
        .expect("windows")
        .enumerate()
        .map(|(i, w)| {
            assert!(i < 2, "a bug in the reader");
            w
        });
    let report = strongroom_tests::sandbox()
        .run_windows(&module, ctx, windows, &LocalPool { threads: 2 }, None)
        .expect("no window was refused");
    assert!(report.aggregate.is_none(), "a partial run has no aggregate");
    assert_ne!(report.outcome, Outcome::Completed);
}

#[test]
fn an_audience_list_matched_window_by_window_marks_the_customers_a_whole_match_does() {
    use strongroom::data_at_rest::stream::SealedSource;
    use strongroom::dataset::ColumnData;
    use strongroom::dataset::audience::{AUDIENCE_COLUMN, AudienceList};
    let f = fixture();
    let path = seal_bank(&f, &f.room, 300, 14, "bank");
    let mut whole = read(&path).1.open(&f.room, 2).expect("opens");
    // Every seventh customer's email, in another spelling.
    let emails: Vec<String> = (0..300)
        .step_by(7)
        .map(|c| format!("CUSTOMER{}@example.com", c + 1))
        .collect();
    let list = AudienceList::from_values([("email", emails.iter().map(String::as_str).collect())]);
    list.attach(&mut whole).expect("attach whole");
    let flag = |d: &strongroom::dataset::Dataset, e: u32| {
        let t = d.table("customers").expect("customers");
        let ColumnData::Bool(v) = &t.column(AUDIENCE_COLUMN).expect("column").data else {
            panic!("bool column")
        };
        t.entity_rows(e).map(|r| v[r]).collect::<Vec<_>>()
    };
    let source = SealedSource::open(&path, &f.room).expect("source");
    let mut marked = 0;
    for window in source.windows(16).expect("windows").with_identifiers() {
        let mut window = window.expect("window");
        list.attach(&mut window).expect("attach window");
        for e in window.span.clone() {
            assert_eq!(flag(&window, e), flag(&whole, e), "customer {e}");
            marked += flag(&window, e).iter().filter(|&&m| m).count();
        }
    }
    assert_eq!(marked, emails.len(), "every listed customer is marked once");
}

/// A run of `module` admitted against a sealed source's shape.
fn shape_context(
    module: &strongroom::guest_boundary::PreparedModule,
    shape: &std::sync::Arc<strongroom::dataset::Dataset>,
) -> std::sync::Arc<strongroom::guest_boundary::RunContext> {
    let manifest = module.module.manifest.clone();
    std::sync::Arc::new(
        strongroom::guest_boundary::RunContext::new(
            shape.clone(),
            manifest.clone(),
            manifest.mode,
            RunLimits::default(),
            [3; 32],
        )
        .expect("admitted"),
    )
}

#[test]
fn a_partition_names_the_chunks_that_hold_its_customers_rows() {
    use strongroom::data_at_rest::stream::SealedSource;
    let f = fixture();
    let path = seal_bank(&f, &f.room, 300, 9, "bank");
    let whole = read(&path).1.open(&f.room, 2).expect("opens");
    let source = SealedSource::open(&path, &f.room).expect("the source opens");
    let all = source.chunks_for(0..300);
    for (name, chunks) in &all {
        assert!(!chunks.is_empty(), "{name}");
        assert!(chunks.windows(2).all(|w| w[1] == w[0] + 1), "{name}: a run");
    }
    for first in (0..300).step_by(64) {
        let end = (first + 64).min(300);
        let picked = source.chunks_for(first..end);
        for ((name, chunks), (_, every)) in picked.iter().zip(&all) {
            let table = whole.table(name).expect("table");
            // The table's rows of these customers lie in the listed chunks and no others:
            // chunks hold whole runs of consecutive entities, 200 rows each (the last shorter).
            let rows = table.entity_rows(first).start..table.entity_rows(end - 1).end;
            let position = |chunk: &usize| every.iter().position(|c| c == chunk).expect("its own");
            let covered: Vec<usize> = (rows.start / 200..rows.end.div_ceil(200)).collect();
            let listed: Vec<usize> = chunks.iter().map(position).collect();
            assert_eq!(listed, covered, "{name}, customers {first}..{end}");
        }
    }
}
