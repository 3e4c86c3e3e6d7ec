//! The sealing party's key: an Ed25519 key a bank signs its sealed headers with, kept in a file
//! created 0600. The public half travels in every sealed header, and its fingerprint tells the
//! room who sealed what.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::private_files::write_private_atomically;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartyKeyFile {
    name: String,
    ed25519_pkcs8: String,
}

/// A sealing party's signing key.
pub struct PartyKey {
    /// The party's name (e.g. the bank's).
    pub name: String,
    pair: Ed25519KeyPair,
    _pkcs8: Zeroizing<Vec<u8>>,
}

/// Why a party's signing key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PartyKeyError(pub String);

impl From<String> for PartyKeyError {
    fn from(message: String) -> Self {
        PartyKeyError(message)
    }
}

impl From<&str> for PartyKeyError {
    fn from(message: &str) -> Self {
        PartyKeyError(message.to_string())
    }
}

impl PartyKey {
    /// Generates a key and writes it to `path` (0600). Refuses to overwrite.
    pub fn generate(name: &str, path: &Path) -> Result<PartyKey, PartyKeyError> {
        if path.exists() {
            return Err(format!("{} exists; refusing to overwrite a key", path.display()).into());
        }
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err("a party name must be non-empty and without spaces".into());
        }
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| "no system randomness".to_string())?;
        let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        let file = Zeroizing::new(
            serde_json::to_vec_pretty(&PartyKeyFile {
                name: name.into(),
                ed25519_pkcs8: B64.encode(&*pkcs8),
            })
            .map_err(|e| e.to_string())?,
        );
        write_private_atomically(path, &file).map_err(|e| format!("{}: {e}", path.display()))?;
        PartyKey::from_pkcs8(name, pkcs8).map_err(PartyKeyError)
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<PartyKey, PartyKeyError> {
        let bytes =
            Zeroizing::new(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
        let file: PartyKeyFile = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a party key file: {e}", path.display()))?;
        let pkcs8 = Zeroizing::new(
            B64.decode(&file.ed25519_pkcs8)
                .map_err(|_| format!("{}: key is not base64", path.display()))?,
        );
        PartyKey::from_pkcs8(&file.name, pkcs8).map_err(PartyKeyError)
    }

    fn from_pkcs8(name: &str, pkcs8: Zeroizing<Vec<u8>>) -> Result<PartyKey, String> {
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| "not an Ed25519 PKCS#8 key".to_string())?;
        Ok(PartyKey {
            name: name.to_string(),
            pair,
            _pkcs8: pkcs8,
        })
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}
