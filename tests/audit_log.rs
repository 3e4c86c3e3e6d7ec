//! The audit log against published vectors (transparency-dev's RFC 6962 proofs, Go's signed
//! notes) and against tampering with a stored, exported log.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use strongroom::audit_log::log::{AuditLog, export_line};
use strongroom::audit_log::signer::Signer;
use strongroom_tests::repo_root;
use strongroom_verify::export::verify_export;
use strongroom_verify::merkle::{
    Hash, MerkleTree, ProofError, hash_from_bytes, leaf_hash, verify_consistency, verify_inclusion,
};
use strongroom_verify::note::{Note, Verifier};

fn vectors() -> PathBuf {
    repo_root().join("tests").join("vectors")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// Decodes a vector's hash; a hash of the wrong length is refused here, as the room would.
fn hash(v: &Value) -> Result<Hash, ProofError> {
    hash_from_bytes(
        &B64.decode(v.as_str().unwrap_or_default())
            .unwrap_or_default(),
    )
}

fn raw(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap_or_default())
        .unwrap_or_default()
}

fn hashes(v: &Value) -> Result<Vec<Hash>, ProofError> {
    v.as_array()
        .map(|a| a.iter().map(hash).collect())
        .unwrap_or(Ok(Vec::new()))
}

/// The eight leaves the vectors are built from (tests/vectors/merkle/README.md).
fn reference_tree() -> MerkleTree {
    let leaves = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    MerkleTree::from_leaf_hashes(
        leaves
            .iter()
            .map(|h| leaf_hash(&hex::decode(h).expect("hex")))
            .collect(),
    )
}

#[test]
fn rfc6962_inclusion_vectors_including_every_rejection() {
    let mut files = Vec::new();
    json_files(&vectors().join("merkle/testdata/inclusion"), &mut files);
    assert!(files.len() > 50, "vectors found: {}", files.len());
    let tree = reference_tree();
    let (mut accepted, mut rejected) = (0, 0);
    for file in files {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
        let (index, size) = (
            v["leafIdx"].as_u64().expect("leafIdx"),
            v["treeSize"].as_u64().expect("treeSize"),
        );
        let result = (|| {
            verify_inclusion(
                index,
                size,
                &hash(&v["leafHash"])?,
                &hashes(&v["proof"])?,
                &hash(&v["root"])?,
            )
        })();
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        assert_eq!(
            result.is_err(),
            want_err,
            "{}: {}",
            file.display(),
            v["desc"]
        );
        if want_err {
            rejected += 1;
        } else {
            accepted += 1;
            // Our own proof for the same leaf matches the vector where the tree is the reference one.
            if size <= 8 && tree.root(size).ok() == hash(&v["root"]).ok() {
                assert_eq!(
                    tree.inclusion_proof(index, size).ok(),
                    hashes(&v["proof"]).ok(),
                    "{}",
                    file.display()
                );
            }
        }
    }
    assert!(accepted > 0 && rejected > 0);
}

#[test]
fn rfc6962_consistency_vectors_including_every_rejection() {
    let mut files = Vec::new();
    json_files(&vectors().join("merkle/testdata/consistency"), &mut files);
    assert!(files.len() > 50, "vectors found: {}", files.len());
    let tree = reference_tree();
    for file in files {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
        let (old, new) = (
            v["size1"].as_u64().expect("size1"),
            v["size2"].as_u64().expect("size2"),
        );
        let result = (|| {
            verify_consistency(
                old,
                new,
                &raw(&v["root1"]),
                &raw(&v["root2"]),
                &hashes(&v["proof"])?,
            )
        })();
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        assert_eq!(
            result.is_err(),
            want_err,
            "{}: {}",
            file.display(),
            v["desc"]
        );
        if !want_err && new <= 8 && tree.root(new).ok() == hash(&v["root2"]).ok() {
            assert_eq!(
                tree.consistency_proof(old, new).ok(),
                hashes(&v["proof"]).ok(),
                "{}",
                file.display()
            );
        }
    }
}

#[test]
fn the_reference_tree_has_the_published_root() {
    let tree = reference_tree();
    assert_eq!(
        hex::encode(tree.root(8).expect("root")),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    assert_eq!(
        hex::encode(tree.root(0).expect("root")),
        hex::encode(ring::digest::digest(&ring::digest::SHA256, b"").as_ref())
    );
}

fn note_vectors() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(vectors().join("signed-note/go-sumdb-note.json")).expect("read"),
    )
    .expect("json")
}

#[test]
fn go_signed_note_vectors_verify_and_sign_byte_for_byte() {
    let v = note_vectors();
    let verifier =
        Verifier::parse(v["verifier_key"].as_str().expect("key")).expect("verifier parses");
    let signer = Signer::parse(v["signer_key"].as_str().expect("key")).expect("signer parses");
    assert_eq!(signer.verifier(), verifier);
    assert_eq!(verifier.encode(), v["verifier_key"].as_str().expect("key"));
    let text = v["text"].as_str().expect("text");
    let signed = v["signed_note"].as_str().expect("note");
    // Reproduce Go's signature exactly (Ed25519 is deterministic).
    assert_eq!(signer.sign(text).expect("signs"), signed);
    let note = Note::parse(signed).expect("parses");
    assert_eq!(note.text, text);
    note.verify(&verifier).expect("verifies");
    // A second signature by another key: both verify; the wrong key does not.
    let two = format!(
        "{signed}{}",
        v["second_signature_line"].as_str().expect("line")
    );
    let second =
        Verifier::parse(v["second_verifier_key"].as_str().expect("key")).expect("second key");
    let parsed = Note::parse(&two).expect("parses");
    parsed.verify(&verifier).expect("first signer");
    parsed.verify(&second).expect("second signer");
    assert!(
        Note::parse(signed)
            .expect("parses")
            .verify(&second)
            .is_err()
    );
    // A changed text does not verify.
    let tampered = signed.replacen("cryptography", "cryptografy", 1);
    assert!(
        Note::parse(&tampered)
            .expect("parses")
            .verify(&verifier)
            .is_err()
    );
}

#[test]
fn go_signed_note_malformed_forms_are_rejected() {
    let v = note_vectors();
    let text = v["text"].as_str().expect("text");
    let signed = v["signed_note"].as_str().expect("note");
    let sig_line = signed[text.len() + 1..].to_string();
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        ("text only", text.as_bytes().to_vec()),
        (
            "text + blank line, no signature",
            format!("{text}\n").into_bytes(),
        ),
        (
            "signature line without final newline",
            signed.trim_end_matches('\n').as_bytes().to_vec(),
        ),
        ("leading 0x01", [&[0x01u8][..], signed.as_bytes()].concat()),
        ("leading 0xff", [&[0xffu8][..], signed.as_bytes()].concat()),
        (
            "name with a space",
            format!(
                "{text}\n\u{2014} Bad Name {}",
                sig_line.split(' ').nth(2).expect("sig")
            )
            .into_bytes(),
        ),
        (
            "non-signature line after the signatures",
            format!("{signed}hello\n").into_bytes(),
        ),
        (
            "101 signatures",
            format!("{text}\n{}", sig_line.repeat(101)).into_bytes(),
        ),
    ];
    assert_eq!(
        malformed.len(),
        v["malformed_notes_must_be_rejected"]
            .as_array()
            .expect("list")
            .len()
            + 1
    );
    for (what, bytes) in malformed {
        assert!(
            Note::parse_bytes(&bytes).is_err(),
            "accepted a malformed note: {what}"
        );
    }
    // 100 signatures are still fine.
    assert!(Note::parse(&format!("{text}\n{}", sig_line.repeat(100))).is_ok());
}

struct StoredLog {
    _dir: tempfile::TempDir,
    lines: Vec<String>,
    checkpoint: String,
    verifier: Verifier,
    room_signer_seed: [u8; 32],
}

async fn stored_log(entries: u64) -> StoredLog {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = strongroom::room::db::open(&strongroom::room::db::Location::Sqlite(
        dir.path().join("room.db"),
    ))
    .await
    .expect("db");
    let seed = [7u8; 32];
    let signer = Signer::from_seed("bankroom", &seed).expect("signer");
    let verifier = signer.verifier();
    let log = AuditLog::new(&pool, signer, "bankroom");
    for i in 0..entries {
        log.append(&strongroom_verify::Event::LogExercised {
            actor: "bank".into(),
            n: i,
            note: format!("entry {i} \"quoted\"\n"),
        })
        .await
        .expect("append");
    }
    let lines = log
        .entries(0)
        .await
        .expect("entries")
        .iter()
        .map(|e| export_line(e.index, &e.entry, &e.signature).expect("line"))
        .collect();
    let (_, checkpoint) = log.checkpoint().await.expect("checkpoint");
    StoredLog {
        _dir: dir,
        lines,
        checkpoint,
        verifier,
        room_signer_seed: seed,
    }
}

fn check(log: &StoredLog, lines: &[String]) -> Result<(), strongroom_verify::export::VerifyError> {
    let export: String = lines.iter().map(|l| format!("{l}\n")).collect();
    verify_export(&export, &log.checkpoint, None, &log.verifier).map(|_| ())
}

#[tokio::test]
async fn tampering_with_a_stored_log_is_detected_and_located() {
    let log = stored_log(20).await;
    check(&log, &log.lines).expect("the untouched log verifies");

    // Change one byte of entry 7.
    let mut changed = log.lines.clone();
    changed[7] = changed[7].replacen("entry 7", "entry 8", 1);
    assert_eq!(check(&log, &changed).expect_err("changed").entry, Some(7));

    // Delete entry 5.
    let mut deleted = log.lines.clone();
    deleted.remove(5);
    assert_eq!(check(&log, &deleted).expect_err("deleted").entry, Some(5));

    // Swap entries 11 and 12.
    let mut swapped = log.lines.clone();
    swapped.swap(11, 12);
    assert_eq!(check(&log, &swapped).expect_err("swapped").entry, Some(11));

    // Insert a copy of entry 2 before entry 9.
    let mut inserted = log.lines.clone();
    inserted.insert(9, log.lines[2].clone());
    assert_eq!(check(&log, &inserted).expect_err("inserted").entry, Some(9));

    // Truncate the tail.
    let truncated = &log.lines[..17];
    let err = check(&log, truncated).expect_err("truncated");
    assert_eq!(err.entry, Some(17));
    assert!(err.message.contains("truncated"), "{}", err.message);

    // Re-sign everything with another key: the room's key does not verify it.
    let other = Signer::from_seed("bankroom", &[9u8; 32]).expect("signer");
    let forged_checkpoint = other
        .sign(&Note::parse(&log.checkpoint).expect("parses").text)
        .expect("signs");
    let export: String = log.lines.iter().map(|l| format!("{l}\n")).collect();
    let err =
        verify_export(&export, &forged_checkpoint, None, &log.verifier).expect_err("re-signed");
    assert!(
        err.message.contains("not signed by the room's key"),
        "{}",
        err.message
    );
    assert_ne!(log.room_signer_seed, [9u8; 32]);
}

/// The tamper sweep of docs/reliability.md: every byte of an export changed in turn (each of
/// two ways: one bit flipped, and the byte replaced by a space), each verified against the
/// room's checkpoint. Every one must fail.
#[tokio::test]
async fn a_sweep_changing_every_byte_of_an_export_is_detected_every_time() {
    let log = stored_log(8).await;
    let export: String = log.lines.iter().map(|l| format!("{l}\n")).collect();
    let bytes = export.as_bytes();
    let (mut tried, mut detected) = (0, 0);
    for i in 0..bytes.len() {
        for change in [bytes[i] ^ (1 << (i % 7)), b' '] {
            if change == bytes[i] {
                continue;
            }
            let mut b = bytes.to_vec();
            b[i] = change;
            // A change that breaks UTF-8 cannot even be read as text: detected.
            let Ok(text) = String::from_utf8(b) else {
                tried += 1;
                detected += 1;
                continue;
            };
            tried += 1;
            if verify_export(&text, &log.checkpoint, None, &log.verifier).is_err() {
                detected += 1;
            } else {
                panic!("byte {i} changed to {change:#04x} and the export still verified");
            }
        }
    }
    println!("tamper sweep: {detected} of {tried} modified audit exports detected");
}

#[tokio::test]
async fn only_the_exact_canonical_bytes_verify() {
    let log = stored_log(6).await;
    check(&log, &log.lines).expect("the untouched log verifies");
    let line = &log.lines[3];
    let forged_entry = r#"{"event":"budget.charged","index":3,"partner":"nobody"}"#;
    let variants = [
        // A reader that keeps the first of two keys would see an entry never logged.
        (
            "duplicate entry key",
            format!("{{\"entry\":{forged_entry},{}", &line[1..]),
        ),
        (
            "extra field",
            format!(
                "{},\"zz_extra\":\"never logged\"}}",
                &line[..line.len() - 1]
            ),
        ),
        ("spacing", line.replacen(':', ": ", 1)),
        (
            "escaped letter",
            line.replacen("entry 3", "\\u0065ntry 3", 1),
        ),
        ("carriage return", format!("{line}\r")),
    ];
    for (what, variant) in variants {
        assert_ne!(&variant, line);
        let mut lines = log.lines.clone();
        lines[3] = variant;
        let err = check(&log, &lines).expect_err(what);
        assert_eq!(err.entry, Some(3), "{what}: {}", err.message);
    }
}

#[tokio::test]
async fn rollback_and_forks_are_caught_with_an_earlier_checkpoint() {
    let small = stored_log(5).await;
    let big = stored_log(12).await;
    let export: String = big.lines.iter().map(|l| format!("{l}\n")).collect();
    // Same room key (same seed), same first five entries? No: times differ, so treat the small
    // log's checkpoint as a fork of the big one.
    let as_previous = small.checkpoint.clone();
    let result = verify_export(&export, &big.checkpoint, Some(&as_previous), &big.verifier);
    let first_five_same = small.lines.iter().zip(&big.lines).all(|(a, b)| a == b);
    if first_five_same {
        result.expect("a true prefix is consistent");
    } else {
        assert!(result.expect_err("fork").message.contains("fork"));
    }
    // Rollback: an older export presented with a newer checkpoint as "previous".
    let small_export: String = small.lines.iter().map(|l| format!("{l}\n")).collect();
    let rollback = verify_export(
        &small_export,
        &small.checkpoint,
        Some(&big.checkpoint),
        &big.verifier,
    )
    .expect_err("rollback");
    assert!(
        rollback.message.contains("rollback") || rollback.message.contains("fork"),
        "{}",
        rollback.message
    );
    // The honest case: the same log, earlier and later.
    let prefix_checkpoint = {
        let signer = Signer::from_seed("bankroom", &big.room_signer_seed).expect("signer");
        let tree = {
            let mut t = MerkleTree::new();
            for l in &big.lines[..6] {
                let v: Value = serde_json::from_str(l).expect("json");
                t.push(leaf_hash(
                    strongroom_verify::canonical::canonical(&v["entry"])
                        .expect("canonical")
                        .as_bytes(),
                ));
            }
            t
        };
        signer
            .sign(&format!(
                "strongroom/bankroom\n6\n{}\n",
                B64.encode(tree.root(6).expect("root"))
            ))
            .expect("signs")
    };
    verify_export(
        &export,
        &big.checkpoint,
        Some(&prefix_checkpoint),
        &big.verifier,
    )
    .expect("extends its own past");
}
