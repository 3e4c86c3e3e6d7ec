//! Reading sealed datasets: inspecting the header without any key, and opening with the room's
//! key. Every chunk is authenticated before it is decoded; one bad chunk anywhere fails the whole
//! dataset, naming the chunk, and nothing decrypted from it is used. Plaintext stays in memory.

use std::collections::HashMap;
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
use crate::room::keys::RoomKeys;

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

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], OpenError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| OpenError::Malformed(format!("truncated in the {what}")))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
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
        let mut c = Cursor { bytes, pos: 0 };
        if c.take(8, "magic")? != MAGIC {
            return Err(OpenError::Malformed(
                "wrong magic (not a strongroom sealed dataset)".into(),
            ));
        }
        let len =
            u32::from_le_bytes(c.take(4, "header length")?.try_into().expect("4 bytes")) as usize;
        if len > MAX_HEADER_BYTES {
            return Err(OpenError::Malformed(format!(
                "header length {len} is out of range"
            )));
        }
        let header_bytes = c.take(len, "header")?.to_vec();
        let header: Header = serde_json::from_slice(&header_bytes)
            .map_err(|e| OpenError::Malformed(format!("header: {e}")))?;
        let sig_len =
            u16::from_le_bytes(c.take(2, "signature length")?.try_into().expect("2 bytes"))
                as usize;
        let signature = c.take(sig_len, "signature")?.to_vec();
        let mut chunks = Vec::new();
        while c.pos < bytes.len() {
            let n = u32::from_le_bytes(c.take(4, "chunk length")?.try_into().expect("4 bytes"))
                as usize;
            if n > MAX_CHUNK_BYTES {
                return Err(OpenError::Malformed(format!(
                    "chunk {} length {n} is out of range",
                    chunks.len()
                )));
            }
            chunks.push(c.take(n, &format!("chunk {}", chunks.len()))?.to_vec());
        }
        Ok(SealedFile {
            header,
            header_bytes,
            signature,
            chunks,
            bytes: bytes.len() as u64,
        })
    }

    /// Checks the sealing party's signature over the header (with the key the header names).
    pub fn header_signature_valid(&self) -> bool {
        let Ok(key) = B64.decode(&self.header.sealed_by.ed25519) else {
            return false;
        };
        let mut signed = HEADER_SIGNATURE_CONTEXT.to_vec();
        signed.extend_from_slice(&self.header_bytes);
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&signed, &self.signature)
            .is_ok()
    }

    /// SHA-256 of the header: the dataset's identity in receipts and the log.
    pub fn header_sha256(&self) -> String {
        hex::encode(header_hash(&self.header_bytes))
    }

    fn cipher(&self, room: &RoomKeys) -> Result<ChunkCipher, OpenError> {
        if !self.header_signature_valid() {
            return Err(OpenError::BadHeaderSignature);
        }
        if self.header.room_fingerprint != room.public.fingerprint() {
            return Err(OpenError::OtherRoom(self.header.room_fingerprint.clone()));
        }
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(room.sealing_secret())
            .map_err(|_| OpenError::KeyUnwrap)?;
        let enc_bytes = B64
            .decode(&self.header.encapsulated_key)
            .map_err(|_| OpenError::KeyUnwrap)?;
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc_bytes)
            .map_err(|_| OpenError::KeyUnwrap)?;
        let wrapped = B64
            .decode(&self.header.wrapped_key)
            .map_err(|_| OpenError::KeyUnwrap)?;
        let mut info = HPKE_INFO.to_vec();
        info.extend_from_slice(
            &hex::decode(&self.header.dataset_id).map_err(|_| OpenError::KeyUnwrap)?,
        );
        let key = Zeroizing::new(
            hpke::single_shot_open::<Aead, Kdf, Kem>(
                &OpModeR::Base,
                &sk,
                &enc,
                &info,
                &wrapped,
                b"",
            )
            .map_err(|_| OpenError::KeyUnwrap)?,
        );
        let key: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| OpenError::KeyUnwrap)?;
        let key = Zeroizing::new(key);
        let prefix: [u8; 7] = B64
            .decode(&self.header.nonce_prefix)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| OpenError::Malformed("nonce prefix".into()))?;
        ChunkCipher::new(&key, prefix, header_hash(&self.header_bytes)).ok_or(OpenError::KeyUnwrap)
    }

    /// Authenticates and decrypts every chunk (in parallel), returning the plaintexts.
    fn decrypt_all(
        &self,
        room: &RoomKeys,
        threads: usize,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, OpenError> {
        let cipher = self.cipher(room)?;
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
                    let cipher = &cipher;
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

    /// Authenticates every chunk without decoding (for `dataset inspect --verify`).
    pub fn verify(&self, room: &RoomKeys, threads: usize) -> Result<(), OpenError> {
        self.decrypt_all(room, threads).map(|_| ())
    }

    /// Opens the dataset: authenticates every chunk, then decodes it into memory.
    pub fn open(&self, room: &RoomKeys, threads: usize) -> Result<Dataset, OpenError> {
        let plain = self.decrypt_all(room, threads)?;
        let (index_bytes, chunks) = plain
            .split_last()
            .ok_or_else(|| OpenError::Content("no chunks".into()))?;
        let index: Vec<IndexEntry> = serde_json::from_slice(index_bytes)
            .map_err(|e| OpenError::Content(format!("index: {e}")))?;
        if index.len() != chunks.len() {
            return Err(OpenError::Content(
                "the index does not list every chunk".into(),
            ));
        }
        let schema = DatasetSchema::parse_inline(&self.header.schema_toml, "sealed header")
            .map_err(|e| OpenError::Content(e.to_string()))?;
        let mut batches: HashMap<&str, Vec<RecordBatch>> = HashMap::new();
        for (entry, bytes) in index.iter().zip(chunks) {
            let reader =
                arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&bytes[..]), None)
                    .map_err(|e| OpenError::Content(e.to_string()))?;
            for batch in reader {
                let batch = batch.map_err(|e| OpenError::Content(e.to_string()))?;
                batches.entry(entry.table.as_str()).or_default().push(batch);
            }
        }
        let entities = self.header.entities as usize;
        let mut entity_keys = vec![String::new(); entities];
        for batch in batches
            .get(ENTITIES_TABLE)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let ordinals = downcast::<UInt32Array>(batch, "entity")?;
            let keys = downcast::<StringArray>(batch, "key")?;
            for i in 0..batch.num_rows() {
                let slot = entity_keys
                    .get_mut(ordinals.value(i) as usize)
                    .ok_or_else(|| OpenError::Content("entity ordinal out of range".into()))?;
                *slot = keys.value(i).to_string();
            }
        }
        let mut tables = Vec::new();
        for ts in &schema.tables {
            let parts = batches
                .get(ts.name.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            tables.push(Arc::new(decode_table(ts, parts, entities)?));
        }
        Ok(Dataset {
            name: schema.name.clone(),
            tables,
            entity_keys,
        })
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

fn decode_table(
    ts: &crate::dataset::schema::TableSchema,
    parts: &[RecordBatch],
    entities: usize,
) -> Result<Table, OpenError> {
    let mut entity_of_row = Vec::new();
    for b in parts {
        entity_of_row.extend_from_slice(downcast::<UInt32Array>(b, "entity")?.values());
    }
    if !entity_of_row.is_sorted()
        || entity_of_row
            .last()
            .is_some_and(|&e| e as usize >= entities)
    {
        return Err(OpenError::Content(format!(
            "table '{}' is not grouped by entity",
            ts.name
        )));
    }
    let mut entity_starts = vec![0u32; entities + 1];
    for &e in &entity_of_row {
        entity_starts[e as usize + 1] += 1;
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
        guest_columns,
        identifiers,
        entity_of_row,
        entity_starts,
    })
}
