//! Checkpoints: the C2SP tlog-checkpoint body (origin, size, base64 root) that the room signs
//! after every append.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::merkle::Hash;
use crate::note::{Note, NoteError, Verifier};

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The body is not origin, size and root lines.
    #[error("{0}")]
    Malformed(&'static str),
    /// The note does not parse or is not signed by the expected key.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A checkpoint: the tree's size and root, for the log named by its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, naming the room.
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// Merkle root.
    pub root: Hash,
}

impl Checkpoint {
    /// The body text.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a body text (extension lines after the root are allowed and ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(CheckpointError::Malformed("checkpoint has no origin line"))?;
        let size =
            lines
                .next()
                .and_then(|l| l.parse::<u64>().ok())
                .ok_or(CheckpointError::Malformed(
                    "checkpoint size is not a number",
                ))?;
        let root: Hash = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::Malformed(
                "checkpoint root is not a base64 SHA-256 hash",
            ))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// Opens a signed checkpoint note with the room's verifier.
    pub fn open(note: &str, verifier: &Verifier) -> Result<Checkpoint, CheckpointError> {
        let parsed = Note::parse(note)?;
        parsed.verify(verifier)?;
        Checkpoint::parse(&parsed.text)
    }
}

/// The origin line for a room's log.
pub fn origin_for(room: &str) -> String {
    format!("strongroom/{room}")
}
