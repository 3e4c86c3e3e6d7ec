//! The sealed-dataset layout. Specified in docs/formats/sealed-dataset.md; summary:
//!
//! ```text
//! magic "SRSEALD1" | u32 header length | header (canonical JSON) | u16 signature length |
//! Ed25519 signature by the sealing party over "strongroom sealed header v1\0" || header |
//! chunks: u32 length | AES-256-GCM ciphertext (Arrow IPC stream of one record batch) ... |
//! final chunk: the index (JSON), with the last-chunk flag
//! ```
//!
//! Chunk i is encrypted under the dataset's data key with nonce `prefix[7] || i (u32 BE) ||
//! last (u8)` (the STREAM construction) and associated data `SHA-256(header) || i (u64 BE) ||
//! last (u8)`, so reordering, truncation, splicing between datasets and any flipped bit fail.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest;
use serde::{Deserialize, Serialize};

/// The HPKE suite (RFC 9180, base mode) that wraps data keys: KEM, KDF and AEAD.
pub type HpkeKem = hpke::kem::X25519HkdfSha256;
/// See [`HpkeKem`].
pub type HpkeKdf = hpke::kdf::HkdfSha256;
/// See [`HpkeKem`].
pub type HpkeAead = hpke::aead::AesGcm256;
/// The suite, as headers name it.
pub const HPKE_SUITE: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM";

/// File magic.
pub const MAGIC: &[u8; 8] = b"SRSEALD1";
/// Domain separation for the sealing party's header signature.
pub const HEADER_SIGNATURE_CONTEXT: &[u8] = b"strongroom sealed header v1\0";
/// HPKE `info` for wrapping the data key (followed by the dataset id).
pub const HPKE_INFO: &[u8] = b"strongroom dataset key v1\0";
/// Pseudo-table holding the entity keys (host-only).
pub const ENTITIES_TABLE: &str = "__entities";
/// Largest header accepted, so a hostile file cannot make the reader allocate without bound.
pub const MAX_HEADER_BYTES: usize = 64 << 20;
/// Largest chunk accepted (ciphertext). Readers hold one chunk at a time, so this bounds the
/// memory a hostile file can make a streaming check use.
pub const MAX_CHUNK_BYTES: usize = 64 << 20;
/// Most entities a dataset may hold: ordinals are 32-bit.
pub const MAX_ENTITIES: u64 = u32::MAX as u64;
/// Most rows a table may hold: row offsets are 32-bit.
pub const MAX_TABLE_ROWS: u64 = u32::MAX as u64;
/// Most rows a chunk may hold.
pub const MAX_CHUNK_ROWS: u64 = 1 << 24;
/// Most tables a dataset may hold.
pub const MAX_TABLES: usize = 64;
/// The fewest bytes a chunk takes in the file: its length and the AES-GCM tag.
pub const MIN_CHUNK_BYTES: u64 = 4 + 16;

/// Row and entity counts of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSummary {
    /// Table name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Chunks holding it.
    pub chunks: u64,
}

/// The sealing party, as the header names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedBy {
    /// Party name.
    pub name: String,
    /// Ed25519 public key, base64.
    pub ed25519: String,
}

/// The header: everything needed to inspect a dataset without its key, and to open it with the
/// room's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Format version (1).
    pub format: u32,
    /// Random dataset id, hex.
    pub dataset_id: String,
    /// Dataset name (from the schema).
    pub dataset: String,
    /// The schema (TOML) as the bank wrote it, dictionaries inlined.
    pub schema_toml: String,
    /// SHA-256 of `schema_toml`, hex.
    pub schema_sha256: String,
    /// Fingerprint of the room this is sealed to.
    pub room_fingerprint: String,
    /// HPKE suite.
    pub hpke_suite: String,
    /// HPKE encapsulated key, base64.
    pub encapsulated_key: String,
    /// The data key, HPKE-sealed to the room, base64.
    pub wrapped_key: String,
    /// STREAM nonce prefix (7 bytes), base64.
    pub nonce_prefix: String,
    /// Rows per chunk.
    pub chunk_rows: u64,
    /// Number of chunks, the index included.
    pub chunks: u64,
    /// Entities (distinct entity keys across tables).
    pub entities: u64,
    /// Per table.
    pub tables: Vec<TableSummary>,
    /// Who sealed it.
    pub sealed_by: SealedBy,
    /// When, RFC 3339 UTC.
    pub sealed_at: String,
}

impl Header {
    /// Checks every count the header declares against the format's limits, against each other
    /// and against the bytes present, before anything is sized by them. A header that
    /// authenticates can still lie (anyone with the room's public key can seal a file), so
    /// nothing reads a count from a header that has not passed this.
    pub(crate) fn check(&self, file_bytes: u64) -> Result<(), String> {
        if self.format != 1 {
            return Err(format!(
                "format {} is not supported (this room reads format 1)",
                self.format
            ));
        }
        if self.chunk_rows == 0 || self.chunk_rows > MAX_CHUNK_ROWS {
            return Err(format!(
                "chunk_rows {} is out of range (1 to {MAX_CHUNK_ROWS})",
                self.chunk_rows
            ));
        }
        if self.tables.len() > MAX_TABLES {
            return Err(format!(
                "{} tables declared; at most {MAX_TABLES} are allowed",
                self.tables.len()
            ));
        }
        // Every row, and every entity, carries a 4-byte ordinal inside a chunk.
        let most_rows = file_bytes / 4;
        if self.entities > MAX_ENTITIES || self.entities > most_rows {
            return Err(format!(
                "the header claims {} entities, more than a file of {file_bytes} bytes can hold",
                self.entities
            ));
        }
        let mut chunks = self.entities.div_ceil(self.chunk_rows) + 1;
        for t in &self.tables {
            if t.rows > MAX_TABLE_ROWS || t.rows > most_rows {
                return Err(format!(
                    "the header claims {} rows in table '{}', more than a file of {file_bytes} bytes can hold",
                    t.rows, t.name
                ));
            }
            if t.chunks != t.rows.div_ceil(self.chunk_rows) {
                return Err(format!(
                    "table '{}' claims {} chunks for {} rows of {} per chunk",
                    t.name, t.chunks, t.rows, self.chunk_rows
                ));
            }
            chunks += t.chunks;
        }
        if chunks != self.chunks {
            return Err(format!(
                "the header claims {} chunks, but its tables need {chunks}",
                self.chunks
            ));
        }
        if self.chunks > file_bytes / MIN_CHUNK_BYTES || self.chunks > u64::from(u32::MAX) {
            return Err(format!(
                "the header claims {} chunks, more than a file of {file_bytes} bytes can hold",
                self.chunks
            ));
        }
        Ok(())
    }
}

/// One entry of the index: which rows of which table a chunk holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// Table.
    pub table: String,
    /// Rows in the chunk.
    pub rows: u64,
    /// First entity ordinal in the chunk.
    pub first_entity: u32,
    /// Last entity ordinal in the chunk.
    pub last_entity: u32,
}

/// SHA-256 of the header bytes.
pub fn header_hash(header: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, header).as_ref());
    out
}

fn nonce(prefix: &[u8; 7], index: u64, last: bool) -> Option<Nonce> {
    let counter = u32::try_from(index).ok()?;
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Some(Nonce::assume_unique_for_key(n))
}

fn aad(header_hash: &[u8; 32], index: u64, last: bool) -> [u8; 41] {
    let mut a = [0u8; 41];
    a[..32].copy_from_slice(header_hash);
    a[32..40].copy_from_slice(&index.to_be_bytes());
    a[40] = u8::from(last);
    a
}

/// Encrypts or decrypts chunks of one dataset.
pub struct ChunkCipher {
    key: LessSafeKey,
    prefix: [u8; 7],
    header_hash: [u8; 32],
}

impl ChunkCipher {
    /// A cipher for the dataset whose header hashes to `header_hash`.
    pub fn new(data_key: &[u8; 32], prefix: [u8; 7], header_hash: [u8; 32]) -> Option<ChunkCipher> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, data_key).ok()?);
        Some(ChunkCipher {
            key,
            prefix,
            header_hash,
        })
    }

    /// Seals chunk `index` in place (appends the tag).
    pub fn seal(&self, index: u64, last: bool, buf: &mut Vec<u8>) -> Option<()> {
        let nonce = nonce(&self.prefix, index, last)?;
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(aad(&self.header_hash, index, last)), buf)
            .ok()
    }

    /// Opens chunk `index` in place, returning the plaintext length, or None if it does not
    /// authenticate as chunk `index` (with this last-chunk flag) of this dataset.
    pub fn open(&self, index: u64, last: bool, buf: &mut [u8]) -> Option<usize> {
        let nonce = nonce(&self.prefix, index, last)?;
        self.key
            .open_in_place(nonce, Aad::from(aad(&self.header_hash, index, last)), buf)
            .ok()
            .map(|p| p.len())
    }
}
