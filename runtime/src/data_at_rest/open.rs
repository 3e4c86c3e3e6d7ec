//! Reading sealed datasets: inspecting the header without any key, and opening with the room's
//! key. Every chunk is authenticated before it is decoded; one bad chunk anywhere fails the whole
//! dataset, naming the chunk, and nothing decrypted from it is used. Plaintext stays in memory.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    Array, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    UInt32Array,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hpke::{Deserializable, OpModeR};
use ring::signature::{ED25519, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::format::{
    ChunkCipher, ENTITIES_TABLE, HEADER_SIGNATURE_CONTEXT, HPKE_INFO, Header, IndexEntry, MAGIC,
    MAX_CHUNK_BYTES, MAX_HEADER_BYTES, header_hash,
};
use crate::dataset::schema::{DatasetSchema, Role};
use crate::dataset::{Column, ColumnData, Dataset, IdentifierColumn, Table};
use crate::keys::RoomKeys;

use super::format::{HpkeAead as Aead, HpkeKdf as Kdf, HpkeKem as Kem};

/// Why a sealed dataset was refused. Nothing from a refused dataset is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be read.
    #[error("{0}")]
    Io(String),
    /// The file's structure is broken (wrong magic, truncated, lengths out of range).
    #[error("not a valid sealed dataset: {0}")]
    Malformed(String),
    /// The header was modified (its signature by the sealing party does not verify).
    #[error("the header's signature by the sealing party does not verify: the header was modified")]
    BadHeaderSignature,
    /// Sealed to another room.
    #[error("this dataset is sealed to another room (fingerprint {0})")]
    OtherRoom(String),
    /// The wrapped data key does not open with this room's key.
    #[error(
        "the data key does not open with this room's key: the header's key material was modified"
    )]
    KeyUnwrap,
    /// A chunk failed authentication.
    #[error(
        "chunk {index} of {total} failed authentication: the file was modified, truncated, reordered or spliced"
    )]
    Chunk {
        /// Chunk index.
        index: u64,
        /// Chunks expected.
        total: u64,
    },
    /// Authenticated content that does not match the header (a sealing bug, not an attack).
    #[error("inconsistent content: {0}")]
    Content(String),
}

/// A sealed file split into its parts, before any cryptography.
pub struct SealedFile {
    /// The parsed header.
    pub header: Header,
    /// The header's exact bytes.
    pub header_bytes: Vec<u8>,
    /// The sealing party's signature.
    pub signature: Vec<u8>,
    /// Encrypted chunks, in file order.
    pub chunks: Vec<Vec<u8>>,
    /// File size.
    pub bytes: u64,
}

/// The part of a sealed file before its chunks.
pub(super) struct Prefix {
    pub(super) header: Header,
    pub(super) header_bytes: Vec<u8>,
    pub(super) signature: Vec<u8>,
    /// Bytes the prefix takes.
    pub(super) len: u64,
}

pub(super) fn read_exact(r: &mut impl Read, n: usize, what: &str) -> Result<Vec<u8>, OpenError> {
    let mut buf = Vec::new();
    r.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| OpenError::Io(e.to_string()))?;
    if buf.len() != n {
        return Err(OpenError::Malformed(format!("truncated in the {what}")));
    }
    Ok(buf)
}

pub(super) fn read_u32(r: &mut impl Read, what: &str) -> Result<u32, OpenError> {
    let b = read_exact(r, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads and checks the magic, the header (whose counts are checked against the file's size) and
/// the signature. Every length is checked against a limit and the bytes left before it is read.
pub(super) fn read_prefix(r: &mut impl Read, file_bytes: u64) -> Result<Prefix, OpenError> {
    if read_exact(r, 8, "magic")? != MAGIC {
        return Err(OpenError::Malformed(
            "wrong magic (not a strongroom sealed dataset)".into(),
        ));
    }
    let len = read_u32(r, "header length")? as usize;
    if len > MAX_HEADER_BYTES || len as u64 > file_bytes {
        return Err(OpenError::Malformed(format!(
            "header length {len} is out of range"
        )));
    }
    let header_bytes = read_exact(r, len, "header")?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|e| OpenError::Malformed(format!("header: {e}")))?;
    header.check(file_bytes).map_err(OpenError::Malformed)?;
    let b = read_exact(r, 2, "signature length")?;
    let sig_len = u16::from_le_bytes([b[0], b[1]]) as usize;
    let signature = read_exact(r, sig_len, "signature")?;
    Ok(Prefix {
        header,
        header_bytes,
        signature,
        len: 8 + 4 + len as u64 + 2 + sig_len as u64,
    })
}

/// Walks the chunks' length prefixes from byte `start` of a file of `total` bytes: where the
/// ciphertext of each of the first `keep` chunks lies (offset, length), and how many chunks the
/// file holds. Each length is checked against the format's limit and the bytes left before the
/// reader skips by it; at most `keep` locations are kept (the header's count, itself bounded by
/// the file's size), however many chunks the file holds.
pub(super) fn chunk_locations(
    r: &mut impl super::blob::Walk,
    start: u64,
    total: u64,
    keep: u64,
    name: &str,
) -> Result<(Vec<(u64, usize)>, u64), OpenError> {
    let io = |e: std::io::Error| OpenError::Io(format!("{name}: {e}"));
    let mut locations = Vec::new();
    let mut pos = start;
    let mut count = 0u64;
    while pos < total {
        let n = read_u32(r, "chunk length")?;
        let n = chunk_len(n, count, total - pos - 4)?;
        if count < keep {
            locations.push((pos + 4, n));
        }
        r.skip(n as u64).map_err(io)?;
        pos += 4 + n as u64;
        count += 1;
    }
    Ok((locations, count))
}

/// Checks a chunk length read from the file against the format's limit and the bytes left.
pub(super) fn chunk_len(n: u32, index: u64, left: u64) -> Result<usize, OpenError> {
    let n = n as usize;
    if n > MAX_CHUNK_BYTES {
        return Err(OpenError::Malformed(format!(
            "chunk {index} length {n} is out of range"
        )));
    }
    if n as u64 > left {
        return Err(OpenError::Malformed(format!("truncated in chunk {index}")));
    }
    Ok(n)
}

impl SealedFile {
    /// Reads and splits a sealed file.
    pub fn read(path: &Path) -> Result<SealedFile, OpenError> {
        let bytes =
            std::fs::read(path).map_err(|e| OpenError::Io(format!("{}: {e}", path.display())))?;
        SealedFile::parse(&bytes)
    }

    /// Splits sealed bytes.
    pub fn parse(bytes: &[u8]) -> Result<SealedFile, OpenError> {
        let total = bytes.len() as u64;
        let mut r = bytes;
        let prefix = read_prefix(&mut r, total)?;
        let mut chunks = Vec::new();
        while !r.is_empty() {
            let index = chunks.len() as u64;
            let n = read_u32(&mut r, "chunk length")?;
            let n = chunk_len(n, index, r.len() as u64)?;
            let (chunk, rest) = r.split_at(n);
            chunks.push(chunk.to_vec());
            r = rest;
        }
        Ok(SealedFile {
            header: prefix.header,
            header_bytes: prefix.header_bytes,
            signature: prefix.signature,
            chunks,
            bytes: total,
        })
    }

    /// Checks the sealing party's signature over the header (with the key the header names).
    pub fn header_signature_valid(&self) -> bool {
        signature_valid(&self.header, &self.header_bytes, &self.signature)
    }

    /// SHA-256 of the header: the dataset's identity in receipts and the log.
    pub fn header_sha256(&self) -> String {
        hex::encode(header_hash(&self.header_bytes))
    }

    /// Authenticates and decrypts every chunk (in parallel), returning the plaintexts.
    fn decrypt_all(
        &self,
        room: &RoomKeys,
        threads: usize,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, OpenError> {
        let cipher = cipher(&self.header, &self.header_bytes, &self.signature, room)?;
        self.decrypt_all_with(&cipher, threads)
    }

    /// [`SealedFile::decrypt_all`] with the dataset's cipher already at hand.
    fn decrypt_all_with(
        &self,
        cipher: &ChunkCipher,
        threads: usize,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, OpenError> {
        let total = self.header.chunks;
        // Chunks beyond what the header declares can never authenticate; missing ones are
        // reported after every present chunk was checked, so the error names the first bad one.
        let n = self
            .chunks
            .len()
            .min(usize::try_from(total).unwrap_or(usize::MAX));
        let results: Vec<Result<Zeroizing<Vec<u8>>, u64>> = std::thread::scope(|scope| {
            let per = n.div_ceil(threads.max(1)).max(1);
            let handles: Vec<_> = (0..n)
                .step_by(per)
                .map(|start| {
                    let chunks = &self.chunks;
                    scope.spawn(move || {
                        (start..(start + per).min(n))
                            .map(|i| {
                                let mut buf = Zeroizing::new(chunks[i].clone());
                                let last = i as u64 + 1 == total;
                                match cipher.open(i as u64, last, &mut buf) {
                                    Some(len) => {
                                        buf.truncate(len);
                                        Ok(buf)
                                    }
                                    None => Err(i as u64),
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut out = Vec::with_capacity(n);
        for r in results {
            out.push(r.map_err(|index| OpenError::Chunk { index, total })?);
        }
        if out.len() != n {
            return Err(OpenError::Content("a decryption worker failed".into()));
        }
        if self.chunks.len() as u64 != total {
            // Every present chunk is authentic, but chunks are missing (or extra): truncation.
            return Err(OpenError::Chunk {
                index: (self.chunks.len() as u64).min(total.saturating_sub(1)),
                total,
            });
        }
        Ok(out)
    }

    /// Authenticates every chunk and returns the plaintexts, the index last, unchecked (for
    /// tools that re-seal a file's content, and tests).
    pub fn plaintext_chunks(&self, room: &RoomKeys) -> Result<Vec<Zeroizing<Vec<u8>>>, OpenError> {
        self.decrypt_all(room, 1)
    }

    /// Authenticates every chunk and checks everything [`SealedFile::open`] will trust (the
    /// index, every batch against the schema and the index, entity ordinals, category codes),
    /// without keeping the rows (for `dataset inspect --verify`).
    pub fn verify(&self, room: &RoomKeys, threads: usize) -> Result<(), OpenError> {
        let plain = self.decrypt_all(room, threads)?;
        let (index_bytes, chunks) = plain
            .split_last()
            .ok_or_else(|| OpenError::Content("no chunks".into()))?;
        let mut checker = Checker::new(&self.header, index_bytes)?;
        for (i, bytes) in chunks.iter().enumerate() {
            checker.chunk(i, bytes)?;
        }
        checker.finish()
    }

    /// Opens the dataset: authenticates every chunk, checks it, then decodes it into memory.
    pub fn open(&self, room: &RoomKeys, threads: usize) -> Result<Dataset, OpenError> {
        let cipher = cipher(&self.header, &self.header_bytes, &self.signature, room)?;
        self.open_with(&cipher, threads)
    }

    /// [`SealedFile::open`] with the dataset's cipher already at hand.
    pub(super) fn open_with(
        &self,
        cipher: &ChunkCipher,
        threads: usize,
    ) -> Result<Dataset, OpenError> {
        let plain = self.decrypt_all_with(cipher, threads)?;
        let (index_bytes, chunks) = plain
            .split_last()
            .ok_or_else(|| OpenError::Content("no chunks".into()))?;
        let mut checker = Checker::new(&self.header, index_bytes)?;
        let mut batches: HashMap<String, Vec<RecordBatch>> = HashMap::new();
        for (i, bytes) in chunks.iter().enumerate() {
            let batch = checker.chunk(i, bytes)?;
            batches
                .entry(checker.index[i].table.clone())
                .or_default()
                .push(batch);
        }
        checker.finish()?;
        let entities = self.header.entities as usize;
        // Checked: the entities table lists ordinals 0, 1, ... entities - 1 in order.
        let mut entity_keys = Vec::new();
        for batch in batches
            .get(ENTITIES_TABLE)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let keys = downcast::<StringArray>(batch, "key")?;
            entity_keys.extend((0..batch.num_rows()).map(|i| keys.value(i).to_string()));
        }
        if entity_keys.len() != entities {
            return Err(OpenError::Content(
                "the entities table does not list every entity".into(),
            ));
        }
        let mut tables = Vec::new();
        for ts in &checker.schema.tables {
            let parts = batches
                .get(ts.name.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            tables.push(Arc::new(decode_table(ts, parts, 0..entities as u32, true)?));
        }
        Ok(Dataset {
            name: checker.schema.name.clone(),
            tables,
            entity_keys,
            span: 0..entities as u32,
        })
    }
}

fn signature_valid(header: &Header, header_bytes: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = B64.decode(&header.sealed_by.ed25519) else {
        return false;
    };
    let mut signed = HEADER_SIGNATURE_CONTEXT.to_vec();
    signed.extend_from_slice(header_bytes);
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&signed, signature)
        .is_ok()
}

/// The chunk cipher of a dataset, once its header's signature verified and its data key
/// unwrapped with the room's key.
pub(super) fn cipher(
    header: &Header,
    header_bytes: &[u8],
    signature: &[u8],
    room: &RoomKeys,
) -> Result<ChunkCipher, OpenError> {
    let key = data_key(header, header_bytes, signature, room)?;
    cipher_with_key(header, header_bytes, &key)
}

/// Checks the header's signature by its sealing party and that it is sealed to the room with
/// `room_fingerprint`.
pub(super) fn check_header(
    header: &Header,
    header_bytes: &[u8],
    signature: &[u8],
    room_fingerprint: &str,
) -> Result<(), OpenError> {
    if !signature_valid(header, header_bytes, signature) {
        return Err(OpenError::BadHeaderSignature);
    }
    if header.room_fingerprint != room_fingerprint {
        return Err(OpenError::OtherRoom(header.room_fingerprint.clone()));
    }
    Ok(())
}

/// The dataset's data key, unwrapped with the room's key after the header checks.
pub(super) fn data_key(
    header: &Header,
    header_bytes: &[u8],
    signature: &[u8],
    room: &RoomKeys,
) -> Result<Zeroizing<[u8; 32]>, OpenError> {
    check_header(header, header_bytes, signature, &room.public.fingerprint())?;
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(room.sealing_secret())
        .map_err(|_| OpenError::KeyUnwrap)?;
    let enc_bytes = B64
        .decode(&header.encapsulated_key)
        .map_err(|_| OpenError::KeyUnwrap)?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc_bytes)
        .map_err(|_| OpenError::KeyUnwrap)?;
    let wrapped = B64
        .decode(&header.wrapped_key)
        .map_err(|_| OpenError::KeyUnwrap)?;
    let mut info = HPKE_INFO.to_vec();
    info.extend_from_slice(&hex::decode(&header.dataset_id).map_err(|_| OpenError::KeyUnwrap)?);
    let key = Zeroizing::new(
        hpke::single_shot_open::<Aead, Kdf, Kem>(&OpModeR::Base, &sk, &enc, &info, &wrapped, b"")
            .map_err(|_| OpenError::KeyUnwrap)?,
    );
    let key: [u8; 32] = key
        .as_slice()
        .try_into()
        .map_err(|_| OpenError::KeyUnwrap)?;
    Ok(Zeroizing::new(key))
}

/// The chunk cipher of the dataset whose header is `header_bytes`, under its data key `key`.
pub(super) fn cipher_with_key(
    header: &Header,
    header_bytes: &[u8],
    key: &[u8; 32],
) -> Result<ChunkCipher, OpenError> {
    let prefix: [u8; 7] = B64
        .decode(&header.nonce_prefix)
        .ok()
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| OpenError::Malformed("nonce prefix".into()))?;
    ChunkCipher::new(key, prefix, header_hash(header_bytes)).ok_or(OpenError::KeyUnwrap)
}

/// What a streaming check of a sealed file found.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The header.
    pub header: Header,
    /// SHA-256 of the header, hex.
    pub header_sha256: String,
    /// File size.
    pub bytes: u64,
}

/// Checks a sealed file on disk as [`SealedFile::verify`] does, holding one chunk in memory at
/// a time (uploads are checked this way, so a large or hostile upload cannot exhaust memory).
/// Two passes: the first walks the chunk lengths to find the index (the last chunk), the second
/// authenticates and checks every chunk in order.
pub fn verify_file(path: &Path, room: &RoomKeys) -> Result<Verified, OpenError> {
    verify_file_visiting(path, room, |_| Ok::<_, OpenError>(()), |_, _, _| {})
        .map(|(verified, ())| verified)
}

/// [`verify_file`], with a visit: once the header's signature verifies, `start` sees the header
/// (and may refuse the file) and makes the visit's state; then each checked batch, with its
/// table's name, is handed to `visit` before it is dropped. What an upload needs to know of the
/// content (an audience list's members) without holding it.
pub fn verify_file_visiting<S, E: From<OpenError>>(
    path: &Path,
    room: &RoomKeys,
    start: impl FnOnce(&Header) -> Result<S, E>,
    mut visit: impl FnMut(&mut S, &str, &RecordBatch),
) -> Result<(Verified, S), E> {
    let io = |e: std::io::Error| OpenError::Io(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let total = file.metadata().map_err(io)?.len();
    let mut r = std::io::BufReader::new(file);
    let prefix = read_prefix(&mut r, total)?;
    let cipher = cipher(
        &prefix.header,
        &prefix.header_bytes,
        &prefix.signature,
        room,
    )?;
    let mut state = start(&prefix.header)?;
    let declared = prefix.header.chunks;
    // Pass 1: lengths only.
    let (locations, count) = chunk_locations(
        &mut r,
        prefix.len,
        total,
        declared,
        &path.display().to_string(),
    )?;
    let missing = |present: u64| OpenError::Chunk {
        index: present.min(declared.saturating_sub(1)),
        total: declared,
    };
    let open_at = |r: &mut std::io::BufReader<std::fs::File>,
                   at: u64,
                   n: usize,
                   i: u64|
     -> Result<Zeroizing<Vec<u8>>, OpenError> {
        r.seek(SeekFrom::Start(at)).map_err(io)?;
        let mut buf = Zeroizing::new(read_exact(r, n, "chunk")?);
        let len = cipher
            .open(i, i + 1 == declared, &mut buf)
            .ok_or(OpenError::Chunk {
                index: i,
                total: declared,
            })?;
        buf.truncate(len);
        Ok(buf)
    };
    if count != declared || declared == 0 {
        // Authenticate what is present first, so the error names the first bad chunk.
        for (i, &(at, n)) in locations.iter().enumerate() {
            open_at(&mut r, at, n, i as u64)?;
        }
        return Err(missing(count).into());
    }
    let (index_at, index_len) = locations[locations.len() - 1];
    let index = open_at(&mut r, index_at, index_len, declared - 1)?;
    let mut checker = Checker::new(&prefix.header, &index)?;
    drop(index);
    // Pass 2: every data chunk, in order.
    for (i, &(at, n)) in locations[..locations.len() - 1].iter().enumerate() {
        let plain = open_at(&mut r, at, n, i as u64)?;
        let batch = checker.chunk(i, &plain)?;
        visit(&mut state, &checker.index[i].table, &batch);
    }
    checker.finish()?;
    let verified = Verified {
        header_sha256: hex::encode(header_hash(&prefix.header_bytes)),
        header: prefix.header,
        bytes: total,
    };
    Ok((verified, state))
}

/// Checks decrypted chunks against the header, the schema and the index, one at a time and in
/// order, before anything from them is used: what [`SealedFile::open`] trusts.
pub(super) struct Checker {
    pub(super) schema: DatasetSchema,
    pub(super) index: Vec<IndexEntry>,
    entities: u64,
    chunk_rows: u64,
    /// Per table: rows seen and the last entity ordinal seen.
    seen: HashMap<String, (u64, Option<u32>)>,
    /// Rows each table declares in the header.
    declared: HashMap<String, u64>,
}

impl Checker {
    pub(super) fn new(header: &Header, index_bytes: &[u8]) -> Result<Checker, OpenError> {
        let content = |m: String| OpenError::Content(m);
        let schema = DatasetSchema::parse_inline(&header.schema_toml, "sealed header")
            .map_err(|e| content(e.to_string()))?;
        let index: Vec<IndexEntry> =
            serde_json::from_slice(index_bytes).map_err(|e| content(format!("index: {e}")))?;
        if index.len() as u64 + 1 != header.chunks {
            return Err(content("the index does not list every chunk".into()));
        }
        let mut declared: HashMap<String, u64> = header
            .tables
            .iter()
            .map(|t| (t.name.clone(), t.rows))
            .collect();
        if declared.len() != header.tables.len()
            || schema.tables.len() != header.tables.len()
            || schema
                .tables
                .iter()
                .any(|t| !declared.contains_key(&t.name))
        {
            return Err(content(
                "the header's tables are not the schema's tables".into(),
            ));
        }
        declared.insert(ENTITIES_TABLE.to_string(), header.entities);
        let mut listed: HashMap<&str, u64> = HashMap::new();
        for (i, e) in index.iter().enumerate() {
            if !declared.contains_key(&e.table) {
                return Err(content(format!(
                    "index entry {i} names table '{}', which the header does not declare",
                    e.table
                )));
            }
            if e.rows == 0
                || e.rows > header.chunk_rows
                || e.first_entity > e.last_entity
                || u64::from(e.last_entity) >= header.entities
            {
                return Err(content(format!("index entry {i} is out of range")));
            }
            *listed.entry(e.table.as_str()).or_default() += e.rows;
        }
        for (table, rows) in &declared {
            if listed.get(table.as_str()).copied().unwrap_or(0) != *rows {
                return Err(content(format!(
                    "the index lists a different number of rows for table '{table}' than the header"
                )));
            }
        }
        Ok(Checker {
            schema,
            index,
            entities: header.entities,
            chunk_rows: header.chunk_rows,
            seen: HashMap::new(),
            declared,
        })
    }

    /// Decodes chunk `i` (one Arrow IPC batch) and checks it; returns the batch.
    pub(super) fn chunk(&mut self, i: usize, bytes: &[u8]) -> Result<RecordBatch, OpenError> {
        let entry = self
            .index
            .get(i)
            .ok_or_else(|| OpenError::Content(format!("chunk {i} is not in the index")))?
            .clone();
        let content = |m: String| OpenError::Content(format!("chunk {i} ({}): {m}", entry.table));
        // Every offset and length in the IPC framing is checked against the bytes present
        // before the Arrow decoder slices by them.
        check_ipc_layout(bytes, self.chunk_rows).map_err(content)?;
        // The Arrow decoder reads authenticated but untrusted bytes: a panic inside it is a
        // refusal of this file, never a crashed worker.
        let decoded = std::panic::catch_unwind(|| -> Result<Vec<RecordBatch>, String> {
            let reader =
                arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                    .map_err(|e| e.to_string())?;
            reader
                .take(2)
                .map(|b| b.map_err(|e| e.to_string()))
                .collect()
        })
        .map_err(|_| content("the Arrow decoder failed on this chunk".into()))?
        .map_err(content)?;
        let [batch] = <[RecordBatch; 1]>::try_from(decoded)
            .map_err(|_| content("a chunk holds exactly one record batch".into()))?;
        if batch.num_rows() as u64 != entry.rows || entry.rows > self.chunk_rows {
            return Err(content(format!(
                "{} rows where the index lists {}",
                batch.num_rows(),
                entry.rows
            )));
        }
        if batch.columns().iter().any(|c| c.null_count() > 0) {
            return Err(content("a column holds nulls".into()));
        }
        let ordinals = downcast::<UInt32Array>(&batch, "entity")?.values();
        let (seen_rows, last) = self.seen.entry(entry.table.clone()).or_default();
        if entry.table == ENTITIES_TABLE {
            // The entity keys: ordinals 0, 1, 2, ... in order, one row each.
            if batch.num_columns() != 2 {
                return Err(content("the entities table has two columns".into()));
            }
            downcast::<StringArray>(&batch, "key")?;
            let next = last.map_or(0, |l| u64::from(l) + 1);
            if ordinals
                .iter()
                .enumerate()
                .any(|(k, &o)| u64::from(o) != next + k as u64)
            {
                return Err(content("entity ordinals are not consecutive".into()));
            }
        } else {
            let ts = self
                .schema
                .tables
                .iter()
                .find(|t| t.name == entry.table)
                .ok_or_else(|| content("not a table of the schema".into()))?;
            if batch.num_columns() != ts.columns.len() {
                return Err(content(format!(
                    "{} columns where the schema has {}",
                    batch.num_columns(),
                    ts.columns.len()
                )));
            }
            for c in &ts.columns {
                let name = c.name.as_str();
                match c.role {
                    Role::Entity => {}
                    Role::Identifier => {
                        downcast::<StringArray>(&batch, name)?;
                    }
                    Role::Int => {
                        downcast::<Int64Array>(&batch, name)?;
                    }
                    Role::Float => {
                        downcast::<Float64Array>(&batch, name)?;
                    }
                    Role::Date => {
                        downcast::<Date32Array>(&batch, name)?;
                    }
                    Role::Bool => {
                        downcast::<BooleanArray>(&batch, name)?;
                    }
                    Role::Category => {
                        let size = c.dictionary.as_ref().map_or(0, Vec::len);
                        if downcast::<UInt32Array>(&batch, name)?
                            .values()
                            .iter()
                            .any(|&x| x as usize >= size)
                        {
                            return Err(content(format!(
                                "column {name} has a code outside its dictionary"
                            )));
                        }
                    }
                }
            }
            let grouped = ordinals.is_sorted()
                && ordinals
                    .first()
                    .is_some_and(|&f| f == entry.first_entity && last.is_none_or(|l| f >= l))
                && ordinals.last() == Some(&entry.last_entity);
            if !grouped || u64::from(entry.last_entity) >= self.entities {
                return Err(content("rows are not grouped by entity".into()));
            }
        }
        *seen_rows += entry.rows;
        *last = ordinals.last().copied();
        Ok(batch)
    }

    /// Checks that every table's chunks held exactly the rows the header declares.
    fn finish(&self) -> Result<(), OpenError> {
        self.finish_except("")
    }

    /// [`Checker::finish`] for every table but `skipped` (whose chunks were not read).
    pub(super) fn finish_except(&self, skipped: &str) -> Result<(), OpenError> {
        for (table, rows) in self.declared.iter().filter(|(t, _)| *t != skipped) {
            if self.seen.get(table).map_or(0, |s| s.0) != *rows {
                return Err(OpenError::Content(format!(
                    "table '{table}' holds a different number of rows than the header declares"
                )));
            }
        }
        Ok(())
    }
}

/// Checks the framing of an Arrow IPC stream (what the sealer writes: a schema message, then
/// record batches, each `0xFFFFFFFF`, a metadata length, the flatbuffer metadata, the body):
/// every message's flatbuffer verifies, every body fits in the bytes present, and every buffer of
/// a batch lies inside its body; no dictionaries, no compression, and at most `max_rows` rows a
/// node. The Arrow decoder trusts these numbers (a buffer outside its body panics inside it).
pub(crate) fn check_ipc_layout(bytes: &[u8], max_rows: u64) -> Result<(), String> {
    let mut pos = 0usize;
    loop {
        let word = |at: usize| -> Result<u32, String> {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| "the Arrow stream is truncated".to_string())
        };
        if word(pos)? != 0xFFFF_FFFF {
            return Err("an Arrow message lacks its continuation marker".into());
        }
        let meta_len = word(pos + 4)? as usize;
        pos += 8;
        if meta_len == 0 {
            return if pos == bytes.len() {
                Ok(())
            } else {
                Err("bytes follow the end of the Arrow stream".into())
            };
        }
        let meta = bytes
            .get(pos..pos.saturating_add(meta_len))
            .ok_or("an Arrow message's metadata runs past the chunk")?;
        let message = arrow_ipc::root_as_message(meta)
            .map_err(|e| format!("an Arrow message does not verify: {e}"))?;
        pos += meta_len;
        let body = usize::try_from(message.bodyLength())
            .ok()
            .filter(|&b| b <= bytes.len() - pos)
            .ok_or("an Arrow message's body runs past the chunk")?;
        match message.header_type() {
            arrow_ipc::MessageHeader::Schema => {}
            arrow_ipc::MessageHeader::RecordBatch => {
                let batch = message
                    .header_as_record_batch()
                    .ok_or("an Arrow record batch has no header")?;
                if batch.compression().is_some() {
                    return Err("an Arrow record batch is compressed".into());
                }
                let fits = |n: i64| u64::try_from(n).is_ok_and(|n| n <= max_rows);
                if !fits(batch.length()) {
                    return Err("an Arrow record batch claims too many rows".into());
                }
                for node in batch.nodes().iter().flatten() {
                    if !fits(node.length())
                        || node.null_count() < 0
                        || node.null_count() > node.length()
                    {
                        return Err("an Arrow field node's counts are out of range".into());
                    }
                }
                for buffer in batch.buffers().iter().flatten() {
                    let inside = u64::try_from(buffer.offset())
                        .ok()
                        .zip(u64::try_from(buffer.length()).ok())
                        .and_then(|(o, l)| o.checked_add(l))
                        .is_some_and(|end| end <= body as u64);
                    if !inside {
                        return Err("an Arrow buffer lies outside its message body".into());
                    }
                }
            }
            _ => return Err("an Arrow message is neither a schema nor a record batch".into()),
        }
        pos += body;
    }
}

fn downcast<'a, T: 'static>(batch: &'a RecordBatch, column: &str) -> Result<&'a T, OpenError> {
    batch
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            OpenError::Content(format!("column '{column}' is missing or of the wrong type"))
        })
}

/// A dataset with `schema`'s tables, columns and dictionaries and no rows: what a job is planned
/// with (its groups, its noise) when only the bank's schema is at hand, as in a partner's preview.
pub fn shape_of(schema: &crate::dataset::schema::DatasetSchema) -> Result<Dataset, OpenError> {
    let tables = schema
        .tables
        .iter()
        .map(|ts| decode_table(ts, &[], 0..0, false).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Dataset {
        name: schema.name.clone(),
        tables,
        entity_keys: Vec::new(),
        span: 0..0,
    })
}

/// Decodes a table's rows from checked batches whose rows all belong to the entities of `span`
/// (every row of the table, or a window's), grouped by entity; its identifier columns only if
/// `identifiers` (a job matching an audience list needs them, no other does).
pub(super) fn decode_table(
    ts: &crate::dataset::schema::TableSchema,
    parts: &[RecordBatch],
    span: std::ops::Range<u32>,
    with_identifiers: bool,
) -> Result<Table, OpenError> {
    let mut entity_of_row = Vec::new();
    for b in parts {
        entity_of_row.extend_from_slice(downcast::<UInt32Array>(b, "entity")?.values());
    }
    if !entity_of_row.is_sorted()
        || entity_of_row.first().is_some_and(|&e| e < span.start)
        || entity_of_row.last().is_some_and(|&e| e >= span.end)
    {
        return Err(OpenError::Content(format!(
            "table '{}' is not grouped by entity",
            ts.name
        )));
    }
    let entities = span.len();
    let mut entity_starts = vec![0u32; entities + 1];
    for &e in &entity_of_row {
        entity_starts[(e - span.start) as usize + 1] += 1;
    }
    for e in 0..entities {
        entity_starts[e + 1] += entity_starts[e];
    }
    let mut guest_columns = Vec::new();
    let mut identifiers = Vec::new();
    for c in &ts.columns {
        let name = c.name.as_str();
        let data = match c.role {
            Role::Entity => continue,
            Role::Identifier if !with_identifiers => continue,
            Role::Identifier => {
                let mut values = Vec::new();
                for b in parts {
                    let a = downcast::<StringArray>(b, name)?;
                    values.extend((0..a.len()).map(|i| a.value(i).to_string()));
                }
                identifiers.push(IdentifierColumn {
                    name: c.name.clone(),
                    values,
                });
                continue;
            }
            Role::Int => ColumnData::Int(
                parts
                    .iter()
                    .map(|b| downcast::<Int64Array>(b, name).map(|a| a.values().to_vec()))
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
            ),
            Role::Float => ColumnData::Float(
                parts
                    .iter()
                    .map(|b| downcast::<Float64Array>(b, name).map(|a| a.values().to_vec()))
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
            ),
            Role::Date => ColumnData::Date(
                parts
                    .iter()
                    .map(|b| downcast::<Date32Array>(b, name).map(|a| a.values().to_vec()))
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
            ),
            Role::Category => ColumnData::Category(
                parts
                    .iter()
                    .map(|b| downcast::<UInt32Array>(b, name).map(|a| a.values().to_vec()))
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
            ),
            Role::Bool => ColumnData::Bool(
                parts
                    .iter()
                    .map(|b| {
                        downcast::<BooleanArray>(b, name)
                            .map(|a| (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>())
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
            ),
        };
        if data.len() != entity_of_row.len() {
            return Err(OpenError::Content(format!(
                "column {}.{name} has the wrong number of rows",
                ts.name
            )));
        }
        let dictionary = c.dictionary.clone().map(|d| -> Arc<[String]> { d.into() });
        if let (ColumnData::Category(codes), Some(d)) = (&data, &dictionary)
            && codes.iter().any(|&x| x as usize >= d.len())
        {
            return Err(OpenError::Content(format!(
                "column {}.{name} has a code outside its dictionary",
                ts.name
            )));
        }
        guest_columns.push(Column {
            name: c.name.clone(),
            data,
            dictionary,
        });
    }
    Ok(Table {
        name: ts.name.clone(),
        hidden: crate::dataset::HiddenColumns::of(ts),
        guest_columns,
        identifiers,
        entity_of_row,
        first_entity: span.start,
        entity_starts,
    })
}
