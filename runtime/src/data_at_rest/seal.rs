//! Sealing, on the bank's machine, with only the room's public key.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    UInt32Array,
};
use arrow_schema::{DataType, Field, Schema};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hpke::{Deserializable, OpModeS, Serializable};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::format::{
    ChunkCipher, ENTITIES_TABLE, HEADER_SIGNATURE_CONTEXT, HPKE_INFO, Header, IndexEntry, MAGIC,
    MAX_CHUNK_BYTES, MAX_CHUNK_ROWS, SealedBy, TableSummary, header_hash,
};
use super::party::PartyKey;
use super::spill::{ExternalSorter, SpillDir};
use crate::dataset::csv_input::InputError;
use crate::dataset::input::{Cell, RowSource, RowValidator};
use crate::dataset::schema::DatasetSchema;
use crate::keys::RoomPublicKeys;

use super::format::{HpkeAead as Aead, HpkeKdf as Kdf, HpkeKem as Kem};

pub use super::format::HPKE_SUITE;

/// Why sealing failed. No output file is left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Input could not be read or does not fit the schema.
    #[error(transparent)]
    Input(#[from] crate::dataset::csv_input::InputError),
    /// Output could not be written.
    #[error("{path}: {message}")]
    Output {
        /// File.
        path: String,
        /// Cause.
        message: String,
    },
    /// Cryptography failed (no randomness, a bad room key).
    #[error("{0}")]
    Crypto(String),
    /// An option or the data is outside the format's limits.
    #[error("{0}")]
    Limit(String),
}

/// What sealing produced.
#[derive(Debug, Clone)]
pub struct SealSummary {
    /// The header written.
    pub header: Header,
    /// Bytes written.
    pub bytes: u64,
    /// Plaintext input bytes read.
    pub input_bytes: u64,
    /// Seconds spent.
    pub seconds: f64,
}

/// Builds one record batch from rows of one table (entity ordinal first, then the columns).
fn rows_batch(
    schema: &crate::dataset::schema::TableSchema,
    rows: &[(u32, Vec<Cell>)],
) -> Result<RecordBatch, SealError> {
    use crate::dataset::schema::Role;
    let mut fields = vec![Field::new("entity", DataType::UInt32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
    ))];
    let bad = || SealError::Crypto("a validated row does not match its schema".into());
    for (k, c) in schema.columns.iter().enumerate() {
        let cells = rows.iter().map(|r| &r.1[k]);
        let (dt, array): (DataType, ArrayRef) = match c.role {
            Role::Entity => continue,
            Role::Identifier => (
                DataType::Utf8,
                Arc::new(StringArray::from_iter_values(cells.map(|x| {
                    if let Cell::Text(t) = x {
                        t.as_str()
                    } else {
                        ""
                    }
                }))),
            ),
            Role::Int => (
                DataType::Int64,
                Arc::new(Int64Array::from(
                    cells
                        .map(|x| {
                            if let Cell::Int(v) = x {
                                Ok(*v)
                            } else {
                                Err(bad())
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )),
            ),
            Role::Float => (
                DataType::Float64,
                Arc::new(Float64Array::from(
                    cells
                        .map(|x| {
                            if let Cell::Float(v) = x {
                                Ok(*v)
                            } else {
                                Err(bad())
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )),
            ),
            Role::Bool => (
                DataType::Boolean,
                Arc::new(BooleanArray::from(
                    cells
                        .map(|x| {
                            if let Cell::Bool(v) = x {
                                Ok(*v)
                            } else {
                                Err(bad())
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )),
            ),
            Role::Date => (
                DataType::Date32,
                Arc::new(Date32Array::from(
                    cells
                        .map(|x| {
                            if let Cell::Date(v) = x {
                                Ok(*v)
                            } else {
                                Err(bad())
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )),
            ),
            Role::Category => (
                DataType::UInt32,
                Arc::new(UInt32Array::from(
                    cells
                        .map(|x| {
                            if let Cell::Category(v) = x {
                                Ok(*v)
                            } else {
                                Err(bad())
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )),
            ),
        };
        fields.push(Field::new(&c.name, dt, false));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| SealError::Crypto(e.to_string()))
}

fn entities_batch(keys: &[String], from: usize, to: usize) -> Result<RecordBatch, SealError> {
    let schema = Schema::new(vec![
        Field::new("entity", DataType::UInt32, false),
        Field::new("key", DataType::Utf8, false),
    ]);
    let ordinals: Vec<u32> = (from as u32..to as u32).collect();
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(UInt32Array::from(ordinals)),
            Arc::new(StringArray::from_iter_values(keys[from..to].iter())),
        ],
    )
    .map_err(|e| SealError::Crypto(e.to_string()))
}

fn ipc(batch: &RecordBatch) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())
        .map_err(|e| SealError::Crypto(e.to_string()))?;
    w.write(batch)
        .map_err(|e| SealError::Crypto(e.to_string()))?;
    w.finish().map_err(|e| SealError::Crypto(e.to_string()))?;
    Ok(Zeroizing::new(
        w.into_inner()
            .map_err(|e| SealError::Crypto(e.to_string()))?,
    ))
}

/// How to seal.
#[derive(Debug, Clone)]
pub struct SealOptions {
    /// Rows per encrypted chunk.
    pub chunk_rows: usize,
    /// Rows held in memory before sorting and spilling a run to disk, in bytes (approximate).
    pub memory_budget: usize,
    /// Print progress to stderr.
    pub progress: bool,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            chunk_rows: 65_536,
            memory_budget: 256 << 20,
            progress: false,
        }
    }
}

/// Seals `tables` (CSV, or Parquet by the `.parquet` extension) described by `schema` to
/// `room`, signed by `party`, into `out`, with the default memory budget.
pub fn seal(
    schema: &DatasetSchema,
    tables: &[(String, PathBuf)],
    room: &RoomPublicKeys,
    party: &PartyKey,
    chunk_rows: usize,
    out: &Path,
    progress: bool,
) -> Result<SealSummary, SealError> {
    seal_with(
        schema,
        tables,
        room,
        party,
        &SealOptions {
            chunk_rows,
            progress,
            ..SealOptions::default()
        },
        out,
    )
}

/// Seals with explicit options. Memory stays near `options.memory_budget` whatever the input
/// size: rows are validated as they stream in, sorted by entity in bounded runs spilled to a
/// private temporary directory beside `out`, and merged chunk by chunk into the output. Nothing
/// is left behind on failure.
pub fn seal_with(
    schema: &DatasetSchema,
    tables: &[(String, PathBuf)],
    room: &RoomPublicKeys,
    party: &PartyKey,
    options: &SealOptions,
    out: &Path,
) -> Result<SealSummary, SealError> {
    let started = Instant::now();
    let out_err = |message: String| SealError::Output {
        path: out.display().to_string(),
        message,
    };
    let input_bytes: u64 = tables
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    if options.chunk_rows == 0 || options.chunk_rows as u64 > MAX_CHUNK_ROWS {
        return Err(SealError::Limit(format!(
            "--chunk-rows must be between 1 and {MAX_CHUNK_ROWS}, not {}",
            options.chunk_rows
        )));
    }
    let chunk_rows = options.chunk_rows;
    for (name, _) in tables {
        if !schema.tables.iter().any(|t| &t.name == name) {
            return Err(InputError::Tables(format!("table '{name}' is not in the schema")).into());
        }
        if tables.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(InputError::Tables(format!("table '{name}' is given twice")).into());
        }
    }
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (spill_dir, swept) = SpillDir::new(dir).map_err(|e| out_err(e.to_string()))?;
    if swept > 0 && options.progress {
        eprintln!(
            "removed {swept} spill director{} left by an interrupted seal (encrypted, unreadable)",
            if swept == 1 { "y" } else { "ies" }
        );
    }

    // Pass 1: validate every row, collect the entity keys, sort each table by entity.
    // Hashed while reading (rows of one customer often follow one another, so the last key is
    // checked first), sorted once at the end.
    let mut keys: HashSet<String, foldhash::fast::RandomState> = HashSet::default();
    let mut last_key = String::new();
    let mut sorted = Vec::new();
    let mut summaries = Vec::new();
    let mut rows_read = 0u64;
    let mut bytes_done = 0u64;
    for ts in &schema.tables {
        let Some((_, path)) = tables.iter().find(|(n, _)| n == &ts.name) else {
            return Err(InputError::Tables(format!(
                "the schema declares table '{}' but no file was given for it",
                ts.name
            ))
            .into());
        };
        let mut source = RowSource::open(path)?;
        let validator = RowValidator::new(ts, source.header(), source.path())?;
        let table_dir = spill_dir
            .subdir(&ts.name)
            .map_err(|e| out_err(e.to_string()))?;
        let mut sorter = ExternalSorter::new(&table_dir, options.memory_budget)
            .map_err(|e| out_err(e.to_string()))?;
        let shown = source.path().to_string();
        while let Some(row) = source.next_row() {
            let (location, cells) = row?;
            let (key, cells) = validator.validate(&shown, location, cells)?;
            if key != last_key {
                if !keys.contains(&key) {
                    keys.insert(key.clone());
                }
                last_key.clone_from(&key);
            }
            sorter
                .push((key, cells))
                .map_err(|e| out_err(format!("spilling sorted rows: {e}")))?;
            rows_read += 1;
            if options.progress && rows_read.is_multiple_of(100_000) {
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                let bytes = bytes_done + source.bytes_read();
                eprint!(
                    "\rsealing: read {rows_read} rows, {:.1} MB ({:.0} rows/s, {:.1} MB/s)   ",
                    bytes as f64 / 1e6,
                    rows_read as f64 / secs,
                    bytes as f64 / 1e6 / secs
                );
            }
        }
        bytes_done += source.bytes_read();
        let rows = sorter.rows();
        summaries.push(TableSummary {
            name: ts.name.clone(),
            rows,
            chunks: rows.div_ceil(chunk_rows as u64),
        });
        sorted.push((ts, sorter));
    }
    let mut keys: Vec<String> = keys.into_iter().collect();
    keys.sort_unstable();
    let entity_chunks = (keys.len() as u64).div_ceil(chunk_rows as u64);
    let total_chunks = summaries.iter().map(|t| t.chunks).sum::<u64>() + entity_chunks + 1;

    // The header: everything but the chunks is known now.
    let keyed = DataKey::new(room)?;
    let schema_toml = schema.to_inline_toml();
    let header = Header {
        format: 1,
        dataset_id: hex::encode(keyed.dataset_id),
        dataset: schema.name.clone(),
        schema_sha256: hex::encode(
            ring::digest::digest(&ring::digest::SHA256, schema_toml.as_bytes()).as_ref(),
        ),
        schema_toml,
        room_fingerprint: room.fingerprint(),
        hpke_suite: HPKE_SUITE.into(),
        encapsulated_key: keyed.encapsulated_key.clone(),
        wrapped_key: keyed.wrapped_key.clone(),
        nonce_prefix: B64.encode(keyed.prefix),
        chunk_rows: chunk_rows as u64,
        chunks: total_chunks,
        entities: keys.len() as u64,
        tables: summaries,
        sealed_by: SealedBy {
            name: party.name.clone(),
            ed25519: B64.encode(party.public()),
        },
        sealed_at: crate::clock::now_rfc3339(),
    };
    let (header_bytes, signature, cipher) = keyed.sign(&header, party)?;

    // Pass 2: merge each table in entity order into encrypted chunks.
    // Inside the spill directory, so an interrupted seal's partial output goes with it.
    let tmp =
        tempfile::NamedTempFile::new_in(spill_dir.path()).map_err(|e| out_err(e.to_string()))?;
    let mut w = std::io::BufWriter::new(tmp.as_file());
    let mut written = 0u64;
    let mut put =
        |w: &mut std::io::BufWriter<&std::fs::File>, bytes: &[u8]| -> Result<(), SealError> {
            written += bytes.len() as u64;
            w.write_all(bytes).map_err(|e| out_err(e.to_string()))
        };
    put(&mut w, MAGIC)?;
    put(&mut w, &(header_bytes.len() as u32).to_le_bytes())?;
    put(&mut w, &header_bytes)?;
    put(&mut w, &(signature.len() as u16).to_le_bytes())?;
    put(&mut w, &signature)?;
    let mut index: Vec<IndexEntry> = Vec::with_capacity(total_chunks as usize);
    let mut write_chunk = |w: &mut std::io::BufWriter<&std::fs::File>,
                           batch: RecordBatch,
                           entry: IndexEntry|
     -> Result<(), SealError> {
        let i = index.len() as u64;
        let mut sealed = std::mem::take(&mut *ipc(&batch)?);
        cipher
            .seal(i, false, &mut sealed)
            .ok_or_else(|| SealError::Crypto("chunk encryption failed".into()))?;
        if sealed.len() > MAX_CHUNK_BYTES {
            return Err(SealError::Limit(format!(
                "a chunk of {} rows of table '{}' takes {} bytes, over the format's limit of {} MiB: seal with a smaller --chunk-rows",
                entry.rows,
                entry.table,
                sealed.len(),
                MAX_CHUNK_BYTES >> 20
            )));
        }
        put(w, &(sealed.len() as u32).to_le_bytes())?;
        put(w, &sealed)?;
        index.push(entry);
        if options.progress {
            eprint!("\rsealing: wrote chunk {}/{total_chunks}   ", i + 1);
        }
        Ok(())
    };
    // Rows come out of each sorter in key order, the order of `keys`: a cursor that only moves
    // forward finds each row's ordinal.
    let missing = || SealError::Crypto("an entity key went missing between passes".into());
    for (ts, sorter) in sorted {
        let mut cursor = 0usize;
        let mut ordinal = |key: &str| {
            while keys.get(cursor).is_some_and(|k| k.as_str() < key) {
                cursor += 1;
            }
            match keys.get(cursor) {
                Some(k) if k == key => Ok(cursor as u32),
                _ => Err(missing()),
            }
        };
        let mut rows: Vec<(u32, Vec<Cell>)> = Vec::with_capacity(chunk_rows.min(1 << 20));
        for row in sorter
            .into_sorted()
            .map_err(|e| out_err(format!("reading sorted rows: {e}")))?
        {
            let (key, cells) = row.map_err(|e| out_err(format!("reading sorted rows: {e}")))?;
            rows.push((ordinal(&key)?, cells));
            if rows.len() == chunk_rows {
                let entry = IndexEntry {
                    table: ts.name.clone(),
                    rows: rows.len() as u64,
                    first_entity: rows[0].0,
                    last_entity: rows[rows.len() - 1].0,
                };
                write_chunk(&mut w, rows_batch(ts, &rows)?, entry)?;
                rows.clear();
            }
        }
        if !rows.is_empty() {
            let entry = IndexEntry {
                table: ts.name.clone(),
                rows: rows.len() as u64,
                first_entity: rows[0].0,
                last_entity: rows[rows.len() - 1].0,
            };
            write_chunk(&mut w, rows_batch(ts, &rows)?, entry)?;
        }
    }
    let mut from = 0;
    while from < keys.len() {
        let to = (from + chunk_rows).min(keys.len());
        let entry = IndexEntry {
            table: ENTITIES_TABLE.to_string(),
            rows: (to - from) as u64,
            first_entity: from as u32,
            last_entity: to as u32 - 1,
        };
        write_chunk(&mut w, entities_batch(&keys, from, to)?, entry)?;
        from = to;
    }
    if index.len() as u64 + 1 != total_chunks {
        return Err(SealError::Crypto(format!(
            "planned {total_chunks} chunks, wrote {}",
            index.len() + 1
        )));
    }
    let mut last = serde_json::to_vec(&index).map_err(|e| SealError::Crypto(e.to_string()))?;
    cipher
        .seal(index.len() as u64, true, &mut last)
        .ok_or_else(|| SealError::Crypto("index encryption failed".into()))?;
    put(&mut w, &(last.len() as u32).to_le_bytes())?;
    put(&mut w, &last)?;
    w.flush().map_err(|e| out_err(e.to_string()))?;
    drop(w);
    tmp.as_file()
        .sync_all()
        .map_err(|e| out_err(e.to_string()))?;
    tmp.persist(out).map_err(|e| out_err(e.error.to_string()))?;
    if options.progress {
        eprintln!();
    }
    Ok(SealSummary {
        header,
        bytes: written,
        input_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A fresh data key, wrapped to the room.
struct DataKey {
    key: Zeroizing<[u8; 32]>,
    dataset_id: [u8; 16],
    prefix: [u8; 7],
    encapsulated_key: String,
    wrapped_key: String,
}

impl DataKey {
    fn new(room: &RoomPublicKeys) -> Result<DataKey, SealError> {
        let rng = SystemRandom::new();
        let mut key = Zeroizing::new([0u8; 32]);
        let mut dataset_id = [0u8; 16];
        let mut prefix = [0u8; 7];
        for buf in [&mut key[..], &mut dataset_id[..], &mut prefix[..]] {
            rng.fill(buf)
                .map_err(|_| SealError::Crypto("no system randomness".into()))?;
        }
        let room_key = <Kem as hpke::Kem>::PublicKey::from_bytes(&room.sealing)
            .map_err(|_| SealError::Crypto("the room's sealing key is not an X25519 key".into()))?;
        let mut info = HPKE_INFO.to_vec();
        info.extend_from_slice(&dataset_id);
        let mut csprng = hpke_rand::UnwrapErr(hpke_rand::OsRng);
        let (encapped, wrapped) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
            &OpModeS::Base,
            &room_key,
            &info,
            &key[..],
            b"",
            &mut csprng,
        )
        .map_err(|e| SealError::Crypto(format!("HPKE: {e}")))?;
        Ok(DataKey {
            key,
            dataset_id,
            prefix,
            encapsulated_key: B64.encode(encapped.to_bytes()),
            wrapped_key: B64.encode(&wrapped),
        })
    }

    /// The header's bytes, the party's signature over them, and the chunk cipher bound to them.
    fn sign(
        &self,
        header: &Header,
        party: &PartyKey,
    ) -> Result<(Vec<u8>, Vec<u8>, ChunkCipher), SealError> {
        let header_bytes =
            serde_json::to_vec(header).map_err(|e| SealError::Crypto(e.to_string()))?;
        let mut signed = HEADER_SIGNATURE_CONTEXT.to_vec();
        signed.extend_from_slice(&header_bytes);
        let signature = party.sign(&signed);
        let cipher = ChunkCipher::new(&self.key, self.prefix, header_hash(&header_bytes))
            .ok_or_else(|| SealError::Crypto("bad data key".into()))?;
        Ok((header_bytes, signature, cipher))
    }
}

/// Seals exactly the given header and chunk plaintexts (the last one is the index), with a fresh
/// data key wrapped to `room` and the header signed by `party`: the header's key fields, room
/// fingerprint and sealing party are filled in, nothing else is checked. This is what anyone
/// holding the room's public key can produce, so tests and fuzzers use it to build files that
/// authenticate but lie, and to reach past authentication into the decoders.
pub fn seal_raw(
    room: &RoomPublicKeys,
    party: &PartyKey,
    mut header: Header,
    plaintexts: &[Vec<u8>],
) -> Result<Vec<u8>, SealError> {
    let keyed = DataKey::new(room)?;
    header.dataset_id = hex::encode(keyed.dataset_id);
    header.room_fingerprint = room.fingerprint();
    header.encapsulated_key = keyed.encapsulated_key.clone();
    header.wrapped_key = keyed.wrapped_key.clone();
    header.nonce_prefix = B64.encode(keyed.prefix);
    header.sealed_by = SealedBy {
        name: party.name.clone(),
        ed25519: B64.encode(party.public()),
    };
    let (header_bytes, signature, cipher) = keyed.sign(&header, party)?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(&(signature.len() as u16).to_le_bytes());
    out.extend_from_slice(&signature);
    for (i, plain) in plaintexts.iter().enumerate() {
        let mut buf = plain.clone();
        cipher
            .seal(i as u64, i + 1 == plaintexts.len(), &mut buf)
            .ok_or_else(|| SealError::Crypto("chunk encryption failed".into()))?;
        out.extend_from_slice(&(buf.len() as u32).to_le_bytes());
        out.extend_from_slice(&buf);
    }
    Ok(out)
}
