//! The room's signing key: signs audit checkpoints and receipts as C2SP signed notes, which
//! `strongroom_verify::note` parses and verifies (offline, without this crate).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{Ed25519KeyPair, KeyPair};
use strongroom_verify::note::{
    ALG_ED25519, DASH, NoteError, Verifier, check_text, key_hash, valid_name,
};

/// A key that signs notes.
pub struct Signer {
    name: String,
    hash: [u8; 4],
    pair: Ed25519KeyPair,
}

impl Signer {
    /// A signer from an Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Signer, NoteError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| NoteError::BadKey("bad Ed25519 seed"))?;
        Self::from_pair(name, pair)
    }

    /// A signer from a ring key pair.
    pub fn from_pair(name: &str, pair: Ed25519KeyPair) -> Result<Signer, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey(
                "key names must be non-empty, without '+' or spaces",
            ));
        }
        Ok(Signer {
            name: name.to_string(),
            hash: key_hash(name, pair.public_key().as_ref()),
            pair,
        })
    }

    /// Parses `PRIVATE+KEY+NAME+HASH+BASE64(0x01 || seed)`.
    pub fn parse(text: &str) -> Result<Signer, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::BadKey("expected PRIVATE+KEY+..."))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("expected PRIVATE+KEY+NAME+HASH+KEY"));
        };
        let key = B64
            .decode(key)
            .map_err(|_| NoteError::BadKey("key is not base64"))?;
        if key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(NoteError::BadKey("key is not an Ed25519 key"));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&key[1..]);
        let signer = Signer::from_seed(name, &seed)?;
        if hex::encode(signer.hash) != hash {
            return Err(NoteError::BadKey("key hash does not match name and key"));
        }
        Ok(signer)
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.pair.public_key().as_ref());
        Verifier {
            name: self.name.clone(),
            hash: self.hash,
            public,
        }
    }

    /// The signature line for `text` (without the leading dash or trailing newline).
    pub fn signature(&self, text: &str) -> String {
        let sig = self.pair.sign(text.as_bytes());
        let mut raw = self.hash.to_vec();
        raw.extend_from_slice(sig.as_ref());
        format!("{} {}", self.name, B64.encode(raw))
    }

    /// Signs `text` (which must end in a newline) into a signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        Ok(format!("{text}\n{DASH}{}\n", self.signature(text)))
    }
}
