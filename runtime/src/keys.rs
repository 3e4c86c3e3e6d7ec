//! Room keys: an X25519 key pair for sealing (HPKE, RFC 9180) and an Ed25519 key pair for signing
//! (receipts, audit checkpoints).
//!
//! Private keys are stored encrypted with AES-256-GCM under a key-encryption key derived with
//! Argon2id from the operator's secret (a passphrase from `STRONGROOM_PASSPHRASE` or a secret
//! file), in files created 0600. They are never printed, and are zeroized when dropped.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::audit_log::signer::Signer;
use crate::private_files::write_private_atomically;

/// Argon2id parameters (OWASP's recommended minimum: 19 MiB, 2 passes, 1 lane).
const ARGON2_M_KIB: u32 = 19_456;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;

/// Why keys could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Filesystem trouble.
    #[error("{path}: {message}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        message: String,
    },
    /// No operator secret was given.
    #[error("no operator secret: set STRONGROOM_PASSPHRASE or pass --secret-file FILE")]
    NoSecret,
    /// The secret does not open the keys (or the file was modified).
    #[error("{path}: cannot decrypt (wrong operator secret, or the file was modified)")]
    WrongSecret {
        /// File.
        path: String,
    },
    /// A key file is malformed.
    #[error("{path}: malformed key file: {message}")]
    Malformed {
        /// File.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Randomness failed.
    #[error("the system random generator failed")]
    NoRandomness,
}

/// The operator's secret, from which key-encryption keys are derived.
pub struct OperatorSecret(Zeroizing<Vec<u8>>);

impl OperatorSecret {
    /// From `STRONGROOM_PASSPHRASE`, or the contents of `file` when given.
    pub fn from_env_or_file(file: Option<&Path>) -> Result<OperatorSecret, KeyError> {
        if let Some(path) = file {
            let bytes = std::fs::read(path).map_err(|e| KeyError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let trimmed = Zeroizing::new(bytes.trim_ascii().to_vec());
            if trimmed.is_empty() {
                return Err(KeyError::NoSecret);
            }
            return Ok(OperatorSecret(trimmed));
        }
        match std::env::var("STRONGROOM_PASSPHRASE") {
            Ok(p) if !p.is_empty() => Ok(OperatorSecret(Zeroizing::new(p.into_bytes()))),
            _ => Err(KeyError::NoSecret),
        }
    }

    /// A secret given directly (tests, embedding).
    pub fn new(secret: &[u8]) -> OperatorSecret {
        OperatorSecret(Zeroizing::new(secret.to_vec()))
    }

    fn derive(&self, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let params = argon2::Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(32))
            .map_err(|_| KeyError::NoRandomness)?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(&self.0, salt, out.as_mut())
            .map_err(|_| KeyError::NoRandomness)?;
        Ok(out)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptedKey {
    kind: String,
    kdf: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| KeyError::NoRandomness)?;
    Ok(out)
}

fn seal_key(kind: &str, secret: &OperatorSecret, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
    let salt: [u8; 16] = random()?;
    let nonce: [u8; 12] = random()?;
    let kek = secret.derive(&salt)?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, kek.as_ref()).map_err(|_| KeyError::NoRandomness)?,
    );
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(kind.as_bytes()),
        &mut buf,
    )
    .map_err(|_| KeyError::NoRandomness)?;
    let file = EncryptedKey {
        kind: kind.to_string(),
        kdf: "argon2id".into(),
        m_kib: ARGON2_M_KIB,
        t: ARGON2_T,
        p: ARGON2_P,
        salt: B64.encode(salt),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(&buf),
    };
    buf.zeroize();
    serde_json::to_vec_pretty(&file).map_err(|e| KeyError::Malformed {
        path: kind.into(),
        message: e.to_string(),
    })
}

fn open_key(
    path: &Path,
    kind: &str,
    secret: &OperatorSecret,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| KeyError::Io {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let malformed = |message: &str| KeyError::Malformed {
        path: shown.clone(),
        message: message.into(),
    };
    let file: EncryptedKey =
        serde_json::from_slice(&bytes).map_err(|e| malformed(&e.to_string()))?;
    if file.kind != kind
        || file.kdf != "argon2id"
        || (file.m_kib, file.t, file.p) != (ARGON2_M_KIB, ARGON2_T, ARGON2_P)
    {
        return Err(malformed("unexpected key kind or KDF parameters"));
    }
    let salt = B64
        .decode(&file.salt)
        .map_err(|_| malformed("salt is not base64"))?;
    let nonce: [u8; 12] = B64
        .decode(&file.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| malformed("nonce is not 12 bytes of base64"))?;
    let mut buf = Zeroizing::new(
        B64.decode(&file.ciphertext)
            .map_err(|_| malformed("ciphertext is not base64"))?,
    );
    let kek = secret.derive(&salt)?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, kek.as_ref()).map_err(|_| KeyError::NoRandomness)?,
    );
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kind.as_bytes()),
            &mut buf,
        )
        .map_err(|_| KeyError::WrongSecret {
            path: shown.clone(),
        })?;
    Ok(Zeroizing::new(plain.to_vec()))
}

pub use strongroom_verify::room_keys::RoomPublicKeys;

/// The room's private keys, decrypted in memory. Zeroized on drop.
pub struct RoomKeys {
    /// Public halves.
    pub public: RoomPublicKeys,
    sealing_secret: Zeroizing<[u8; 32]>,
    signing_pkcs8: Zeroizing<Vec<u8>>,
    /// The signing key, parsed once (checking a key pair costs a scalar multiplication).
    signer: std::sync::Arc<Signer>,
}

impl RoomKeys {
    /// Generates fresh keys and writes them, encrypted, into `keys_dir` (files 0600), plus the
    /// public `room.pub` and `room.vkey` beside them. Refuses to overwrite existing keys.
    pub fn generate(
        name: &str,
        keys_dir: &Path,
        secret: &OperatorSecret,
    ) -> Result<RoomKeys, KeyError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |e: std::io::Error| KeyError::Io {
                path,
                message: e.to_string(),
            }
        };
        let sealing_path = keys_dir.join("sealing.key");
        let signing_path = keys_dir.join("signing.key");
        if sealing_path.exists() || signing_path.exists() {
            return Err(KeyError::Io {
                path: keys_dir.display().to_string(),
                message: "keys already exist here; refusing to overwrite them".into(),
            });
        }
        std::fs::create_dir_all(keys_dir).map_err(io(keys_dir))?;
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::NoRandomness)?;
        let signing_pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        let sealing_secret = Zeroizing::new(random::<32>()?);
        let keys = RoomKeys::from_parts(name, sealing_secret, signing_pkcs8)?;
        write_private_atomically(
            &sealing_path,
            &seal_key("x25519", secret, keys.sealing_secret.as_ref())?,
        )
        .map_err(io(&sealing_path))?;
        write_private_atomically(
            &signing_path,
            &seal_key("ed25519-pkcs8", secret, &keys.signing_pkcs8)?,
        )
        .map_err(io(&signing_path))?;
        let pub_path = keys_dir.join("room.pub");
        std::fs::write(&pub_path, keys.public.encode()).map_err(io(&pub_path))?;
        let vkey_path = keys_dir.join("room.vkey");
        let vkey = keys.public.verifier().map_err(|m| KeyError::Malformed {
            path: name.into(),
            message: m.to_string(),
        })?;
        std::fs::write(&vkey_path, format!("{}\n", vkey.encode())).map_err(io(&vkey_path))?;
        Ok(keys)
    }

    /// Opens the keys in `keys_dir` with the operator's secret.
    pub fn open(
        name: &str,
        keys_dir: &Path,
        secret: &OperatorSecret,
    ) -> Result<RoomKeys, KeyError> {
        let sealing = open_key(&keys_dir.join("sealing.key"), "x25519", secret)?;
        let signing = open_key(&keys_dir.join("signing.key"), "ed25519-pkcs8", secret)?;
        let sealing_secret: [u8; 32] =
            sealing
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::Malformed {
                    path: keys_dir.join("sealing.key").display().to_string(),
                    message: "not a 32-byte X25519 key".into(),
                })?;
        RoomKeys::from_parts(name, Zeroizing::new(sealing_secret), signing)
    }

    fn from_parts(
        name: &str,
        sealing_secret: Zeroizing<[u8; 32]>,
        signing_pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<RoomKeys, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(&signing_pkcs8).map_err(|_| KeyError::Malformed {
            path: "signing.key".into(),
            message: "not an Ed25519 PKCS#8 key".into(),
        })?;
        let mut signing = [0u8; 32];
        signing.copy_from_slice(pair.public_key().as_ref());
        let sealing = x25519_public(&sealing_secret);
        let signer = Signer::from_pair(name, pair).map_err(|e| KeyError::Malformed {
            path: "room.toml".into(),
            message: format!("the room's name cannot name a key: {e}"),
        })?;
        Ok(RoomKeys {
            public: RoomPublicKeys {
                name: name.to_string(),
                sealing,
                signing,
            },
            sealing_secret,
            signing_pkcs8,
            signer: std::sync::Arc::new(signer),
        })
    }

    /// A signed-note signer with the room's signing key, named after the room.
    pub fn signer(&self) -> std::sync::Arc<Signer> {
        self.signer.clone()
    }

    /// The X25519 secret for opening sealed datasets.
    pub fn sealing_secret(&self) -> &[u8; 32] {
        &self.sealing_secret
    }
}

/// The X25519 public key of a secret scalar.
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
}
