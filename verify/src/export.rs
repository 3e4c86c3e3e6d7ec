//! The offline verifier: from an export and a checkpoint alone (no access to the room), check
//! that the log is exactly what the room signed, and name the first bad entry when it is not.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::canonical::canonical;
use crate::checkpoint::Checkpoint;
use crate::merkle::{MerkleTree, leaf_hash, verify_consistency};
use crate::note::{Note, Verifier};

/// What the verifier concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries in the export.
    pub entries: u64,
    /// The checkpoint's size and root.
    pub checkpoint: Checkpoint,
    /// The previous checkpoint checked for consistency, if any.
    pub previous: Option<Checkpoint>,
}

/// Why the log does not verify. `entry` is the index of the first bad entry when one is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VerifyError {
    /// The first bad entry, when it can be located.
    pub entry: Option<u64>,
    /// What is wrong, in words.
    pub message: String,
}

fn fail<T>(entry: Option<u64>, message: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError {
        entry,
        message: message.into(),
    })
}

/// One line of an export: the entry (its canonical JSON text), its index, and the room's
/// signature over the tree head that ends with it. The room writes exports with it, and the web
/// console builds the export it verifies from the served entries with it.
pub fn export_line(index: u64, entry: &str, signature: &str) -> Result<String, VerifyError> {
    let bad = |what: String| VerifyError {
        entry: Some(index),
        message: format!("entry {index} {what}"),
    };
    let entry: Value = serde_json::from_str(entry).map_err(|e| bad(format!("is not JSON: {e}")))?;
    canonical(
        &serde_json::json!({ "index": index, "entry": entry, "tree_head_signature": signature }),
    )
    .map_err(|e| bad(format!("is not canonical: {e}")))
}

/// Verifies `export` (JSON lines) against the signed `checkpoint` (and, if given, that the log
/// extends the signed `previous` checkpoint), all under `verifier`.
pub fn verify_export(
    export: &str,
    checkpoint: &str,
    previous: Option<&str>,
    verifier: &Verifier,
) -> Result<Verified, VerifyError> {
    let cp = match Checkpoint::open(checkpoint, verifier) {
        Ok(cp) => cp,
        Err(e) => {
            return fail(
                None,
                format!(
                    "the checkpoint is not signed by the room's key {}: {e}",
                    verifier.name
                ),
            );
        }
    };
    let prev = match previous {
        Some(p) => match Checkpoint::open(p, verifier) {
            Ok(cp) => Some(cp),
            Err(e) => {
                return fail(
                    None,
                    format!("the previous checkpoint is not signed by the room's key: {e}"),
                );
            }
        },
        None => None,
    };
    let mut tree = MerkleTree::new();
    let mut count = 0u64;
    for (line_no, line) in export.split_terminator('\n').enumerate() {
        let i = line_no as u64;
        let bad = |what: &str| VerifyError {
            entry: Some(i),
            message: format!(
                "entry {i} (line {}) {what}: the log was changed, or entries were dropped, reordered or inserted here",
                line_no + 1
            ),
        };
        let value: Value = serde_json::from_str(line).map_err(|_| bad("is not JSON"))?;
        // The canonical form is the only accepted form: what a log reader parses must be what
        // was hashed and signed, so duplicate keys (a reader may take the first), extra fields,
        // other spacing or escapes are refused, not re-canonicalized away.
        let exact = canonical(&value).map_err(|_| bad("is not canonical"))?;
        if exact != line || value.as_object().map_or(0, serde_json::Map::len) != 3 {
            return Err(bad(
                "is not, byte for byte, the room's canonical export line (duplicate or extra keys, spacing or escapes differ)",
            ));
        }
        let entry = value.get("entry").ok_or_else(|| bad("has no entry"))?;
        let text = canonical(entry).map_err(|_| bad("is not canonical"))?;
        let signature = value
            .get("tree_head_signature")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("has no tree-head signature"))?;
        tree.push(leaf_hash(text.as_bytes()));
        let head = Checkpoint {
            origin: cp.origin.clone(),
            size: i + 1,
            root: tree.root(i + 1).map_err(|_| bad("cannot be hashed"))?,
        };
        let note = format!("{}\n\u{2014} {} {signature}\n", head.text(), verifier.name);
        let signed = Note::parse(&note).and_then(|n| n.verify(verifier)).is_ok();
        if !signed {
            return Err(bad(
                "does not match the room's signed tree head for this position",
            ));
        }
        if value.get("index").and_then(Value::as_u64) != Some(i)
            || entry.get("index").and_then(Value::as_u64) != Some(i)
        {
            return Err(bad("carries the wrong index"));
        }
        count += 1;
    }
    if count < cp.size {
        return fail(
            Some(count),
            format!(
                "the log is truncated: the checkpoint covers {} entries, the export has {count}; entries from {count} on are missing",
                cp.size
            ),
        );
    }
    let root = tree.root(cp.size).map_err(|e| VerifyError {
        entry: None,
        message: e.to_string(),
    })?;
    if root != cp.root {
        return fail(
            None,
            format!(
                "the first {} entries do not hash to the checkpoint's root",
                cp.size
            ),
        );
    }
    if let Some(p) = &prev {
        if p.origin != cp.origin {
            return fail(
                None,
                format!("the previous checkpoint is for another log ({})", p.origin),
            );
        }
        if p.size > cp.size {
            return fail(
                None,
                format!(
                    "rollback: the previous checkpoint covers {} entries, the new one only {}",
                    p.size, cp.size
                ),
            );
        }
        let proof = tree
            .consistency_proof(p.size, cp.size)
            .map_err(|e| VerifyError {
                entry: None,
                message: e.to_string(),
            })?;
        // Every log extends the empty one; otherwise the proof must hold.
        if p.size > 0 && verify_consistency(p.size, cp.size, &p.root, &cp.root, &proof).is_err() {
            return fail(
                None,
                format!(
                    "fork: the log of {} entries does not extend the previous checkpoint of {} (root {})",
                    cp.size,
                    p.size,
                    B64.encode(p.root)
                ),
            );
        }
    }
    Ok(Verified {
        entries: count,
        checkpoint: cp,
        previous: prev,
    })
}
