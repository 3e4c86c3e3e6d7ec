//! Signed notes (C2SP signed-note, as used by Go's sumdb and transparency logs): a text, a blank
//! line, then signature lines `— NAME BASE64(keyhash[4] || ed25519 signature)`.
//!
//! Used for the audit log's checkpoints and for receipts. The verification rules are ours to own,
//! so they are written out here and tested against Go's reference vectors
//! (tests/vectors/signed-note). Signing lives with the room's keys, in the host.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::Verifier as _;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature algorithm byte for Ed25519 in key hashes and key strings.
pub const ALG_ED25519: u8 = 0x01;
const MAX_SIGNATURES: usize = 100;
/// What starts every signature line: an em dash and a space.
pub const DASH: &str = "\u{2014} ";

/// Why a key or note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// A key string is malformed.
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    /// The note text or signature block is malformed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature by the expected key verifies.
    #[error("no valid signature by {0}")]
    NotSigned(String),
}

/// The 4-byte key hash: SHA-256(name || "\n" || alg || public key), first 4 bytes.
pub fn key_hash(name: &str, public: &[u8]) -> [u8; 4] {
    let mut ctx = Sha256::new();
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update([ALG_ED25519]);
    ctx.update(public);
    let d = ctx.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Whether `name` may name a key: non-empty, without '+', spaces or control characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('+')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A key that checks signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    /// Key name.
    pub name: String,
    /// Key hash.
    pub hash: [u8; 4],
    /// Ed25519 public key.
    pub public: [u8; 32],
}

impl Verifier {
    /// A verifier for `public` under `name`.
    pub fn new(name: &str, public: [u8; 32]) -> Result<Verifier, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey(
                "key names must be non-empty, without '+' or spaces",
            ));
        }
        Ok(Verifier {
            name: name.to_string(),
            hash: key_hash(name, &public),
            public,
        })
    }

    /// Parses `NAME+HASH+BASE64(0x01 || pubkey)`.
    pub fn parse(text: &str) -> Result<Verifier, NoteError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("expected NAME+HASH+KEY"));
        };
        let key = B64
            .decode(key)
            .map_err(|_| NoteError::BadKey("key is not base64"))?;
        if key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(NoteError::BadKey("key is not an Ed25519 key"));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&key[1..]);
        let verifier = Verifier::new(name, public)?;
        if hash.len() != 8 || hex::encode(verifier.hash) != hash {
            return Err(NoteError::BadKey("key hash does not match name and key"));
        }
        Ok(verifier)
    }

    /// The `NAME+HASH+KEY` form.
    pub fn encode(&self) -> String {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(&self.public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.hash),
            B64.encode(key)
        )
    }
}

/// Checks that `text` may be signed: it ends in a newline, has no blank line and no control
/// characters but newlines.
pub fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("text must end in a newline"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(NoteError::Malformed("text must not contain a blank line"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed(
            "text must not contain control characters",
        ));
    }
    Ok(())
}

/// A parsed note: its text and its signature lines (name, key hash, signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in a newline.
    pub text: String,
    /// (name, key hash, signature bytes).
    pub signatures: Vec<(String, [u8; 4], Vec<u8>)>,
}

impl Note {
    /// Splits a signed note into text and signatures, checking the format.
    pub fn parse(note: &str) -> Result<Note, NoteError> {
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let text = &note[..split + 1];
        let block = &note[split + 2..];
        check_text(text)?;
        if block.is_empty() {
            return Err(NoteError::Malformed("no signatures"));
        }
        if !block.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end in a newline",
            ));
        }
        let mut signatures = Vec::new();
        for line in block[..block.len() - 1].split('\n') {
            let rest = line.strip_prefix(DASH).ok_or(NoteError::Malformed(
                "a line after the text is not a signature",
            ))?;
            let (name, sig) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("signature line without name"))?;
            if !valid_name(name) || sig.contains(' ') {
                return Err(NoteError::Malformed("signature name is not valid"));
            }
            let raw = B64
                .decode(sig)
                .map_err(|_| NoteError::Malformed("signature is not base64"))?;
            if raw.len() < 5 {
                return Err(NoteError::Malformed("signature too short"));
            }
            signatures.push((
                name.to_string(),
                [raw[0], raw[1], raw[2], raw[3]],
                raw[4..].to_vec(),
            ));
            if signatures.len() > MAX_SIGNATURES {
                return Err(NoteError::Malformed("too many signatures"));
            }
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// Verifies that `verifier` signed this note.
    pub fn verify(&self, verifier: &Verifier) -> Result<(), NoteError> {
        // A public key that is not a curve point verifies nothing.
        let key = VerifyingKey::from_bytes(&verifier.public).ok();
        let signed = self.signatures.iter().any(|(name, hash, sig)| {
            name == &verifier.name
                && hash == &verifier.hash
                && key
                    .as_ref()
                    .is_some_and(|key| verify_signature(key, &self.text, sig))
        });
        if signed {
            Ok(())
        } else {
            Err(NoteError::NotSigned(verifier.name.clone()))
        }
    }
}

/// Ed25519 as Go's crypto/ed25519 checks it (the reference for signed notes): a signature is 64
/// bytes, S is below the group order, and the cofactorless equation holds with R compared as
/// bytes.
fn verify_signature(key: &VerifyingKey, text: &str, sig: &[u8]) -> bool {
    let Ok(bytes) = <[u8; 64]>::try_from(sig) else {
        return false;
    };
    key.verify(text.as_bytes(), &Signature::from_bytes(&bytes))
        .is_ok()
}

/// Parses `note` and verifies it against `verifier`, returning the text.
pub fn open(note: &str, verifier: &Verifier) -> Result<String, NoteError> {
    let parsed = Note::parse(note)?;
    parsed.verify(verifier)?;
    Ok(parsed.text)
}

impl Note {
    /// Like [`Note::parse`], from bytes that may not be UTF-8 (which is refused).
    pub fn parse_bytes(note: &[u8]) -> Result<Note, NoteError> {
        let text =
            std::str::from_utf8(note).map_err(|_| NoteError::Malformed("note is not UTF-8"))?;
        Note::parse(text)
    }
}
