//! The room's public keys as a bank, a partner or an auditor receives them (`room.pub`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::note::{NoteError, Verifier};

/// Why a `room.pub` text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomKeysError {
    /// The text is not a room public key file.
    #[error("not a strongroom room public key file")]
    NotKeys,
    /// A line is missing or out of order.
    #[error("missing '{0}:' line")]
    Missing(&'static str),
    /// A key is not 32 bytes of base64.
    #[error("{0} is not a 32-byte base64 key")]
    BadKey(&'static str),
    /// The fingerprint line does not match the keys.
    #[error("fingerprint does not match the keys")]
    Fingerprint,
    /// The room name cannot name a signing key.
    #[error(transparent)]
    Name(#[from] NoteError),
}

/// The room's public keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomPublicKeys {
    /// Room name (also the signing key's name in signed notes).
    pub name: String,
    /// X25519 public key for sealing.
    pub sealing: [u8; 32],
    /// Ed25519 public key for signatures.
    pub signing: [u8; 32],
}

impl RoomPublicKeys {
    /// A short fingerprint over both keys, readable over the phone: 20 hex digits in groups of 4.
    pub fn fingerprint(&self) -> String {
        let mut ctx = Sha256::new();
        ctx.update(b"strongroom room key v1\n");
        ctx.update(self.name.as_bytes());
        ctx.update(b"\n");
        ctx.update(self.sealing);
        ctx.update(self.signing);
        let h = hex::encode(&ctx.finalize()[..10]);
        h.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The shareable text form (the `room.pub` file).
    pub fn encode(&self) -> String {
        format!(
            "strongroom room public keys v1\nroom: {}\nsealing-x25519: {}\nsigning-ed25519: {}\nfingerprint: {}\n",
            self.name,
            B64.encode(self.sealing),
            B64.encode(self.signing),
            self.fingerprint()
        )
    }

    /// Parses the text form, checking the fingerprint line.
    pub fn parse(text: &str) -> Result<RoomPublicKeys, RoomKeysError> {
        let mut lines = text.lines();
        if lines.next() != Some("strongroom room public keys v1") {
            return Err(RoomKeysError::NotKeys);
        }
        let mut field = |name: &'static str| -> Result<String, RoomKeysError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(": "))
                .map(String::from)
                .ok_or(RoomKeysError::Missing(name))
        };
        let name = field("room")?;
        let key = |v: String, what: &'static str| -> Result<[u8; 32], RoomKeysError> {
            B64.decode(v)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(RoomKeysError::BadKey(what))
        };
        let sealing = key(field("sealing-x25519")?, "sealing key")?;
        let signing = key(field("signing-ed25519")?, "signing key")?;
        let keys = RoomPublicKeys {
            name,
            sealing,
            signing,
        };
        if field("fingerprint")? != keys.fingerprint() {
            return Err(RoomKeysError::Fingerprint);
        }
        Ok(keys)
    }

    /// The signed-note verifier for this room's signatures.
    pub fn verifier(&self) -> Result<Verifier, NoteError> {
        Verifier::new(&self.name, self.signing)
    }
}
