//! Sealing, on the bank's machine, with only the room's public key.

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
    SealedBy, TableSummary, header_hash,
};
use super::party::PartyKey;
use crate::dataset::csv_input::load_csv_tables;
use crate::dataset::schema::DatasetSchema;
use crate::dataset::{ColumnData, Table};
use crate::room::keys::RoomPublicKeys;

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

fn rows_batch(
    table: &Table,
    schema: &crate::dataset::schema::TableSchema,
    from: usize,
    to: usize,
) -> Result<RecordBatch, SealError> {
    use crate::dataset::schema::Role;
    let mut fields = vec![Field::new("entity", DataType::UInt32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(
        table.entity_of_row[from..to].to_vec(),
    ))];
    for c in &schema.columns {
        let (dt, array): (DataType, ArrayRef) = match c.role {
            Role::Entity => continue,
            Role::Identifier => {
                let values = table
                    .identifiers
                    .iter()
                    .find(|i| i.name == c.name)
                    .map(|i| &i.values[from..to])
                    .unwrap_or_default();
                (
                    DataType::Utf8,
                    Arc::new(StringArray::from_iter_values(values.iter())),
                )
            }
            _ => match table.column(&c.name).map(|col| &col.data) {
                Some(ColumnData::Int(v)) => (
                    DataType::Int64,
                    Arc::new(Int64Array::from(v[from..to].to_vec())),
                ),
                Some(ColumnData::Float(v)) => (
                    DataType::Float64,
                    Arc::new(Float64Array::from(v[from..to].to_vec())),
                ),
                Some(ColumnData::Bool(v)) => (
                    DataType::Boolean,
                    Arc::new(BooleanArray::from(v[from..to].to_vec())),
                ),
                Some(ColumnData::Date(v)) => (
                    DataType::Date32,
                    Arc::new(Date32Array::from(v[from..to].to_vec())),
                ),
                Some(ColumnData::Category(v)) => (
                    DataType::UInt32,
                    Arc::new(UInt32Array::from(v[from..to].to_vec())),
                ),
                None => {
                    return Err(SealError::Crypto(format!(
                        "column {} missing after loading",
                        c.name
                    )));
                }
            },
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

/// Seals CSV `tables` described by `schema` to `room`, signed by `party`, into `out`.
pub fn seal(
    schema: &DatasetSchema,
    tables: &[(String, PathBuf)],
    room: &RoomPublicKeys,
    party: &PartyKey,
    chunk_rows: usize,
    out: &Path,
    progress: bool,
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
    let (dataset, _) = load_csv_tables(tables, Some(schema), "")?;
    let chunk_rows = chunk_rows.max(1);

    // The plan of chunks: (table name, row range) per chunk, then the entity keys.
    let mut plan: Vec<(String, usize, usize)> = Vec::new();
    let mut summaries = Vec::new();
    for t in &dataset.tables {
        let before = plan.len();
        let mut from = 0;
        while from < t.rows() {
            let to = (from + chunk_rows).min(t.rows());
            plan.push((t.name.clone(), from, to));
            from = to;
        }
        summaries.push(TableSummary {
            name: t.name.clone(),
            rows: t.rows() as u64,
            chunks: (plan.len() - before) as u64,
        });
    }
    let mut from = 0;
    while from < dataset.entities() {
        let to = (from + chunk_rows).min(dataset.entities());
        plan.push((ENTITIES_TABLE.to_string(), from, to));
        from = to;
    }

    let rng = SystemRandom::new();
    let mut data_key = Zeroizing::new([0u8; 32]);
    let mut dataset_id = [0u8; 16];
    let mut prefix = [0u8; 7];
    for buf in [&mut data_key[..], &mut dataset_id[..], &mut prefix[..]] {
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
        &data_key[..],
        b"",
        &mut csprng,
    )
    .map_err(|e| SealError::Crypto(format!("HPKE: {e}")))?;

    let schema_toml = schema.to_inline_toml();
    let header = Header {
        format: 1,
        dataset_id: hex::encode(dataset_id),
        dataset: schema.name.clone(),
        schema_sha256: hex::encode(
            ring::digest::digest(&ring::digest::SHA256, schema_toml.as_bytes()).as_ref(),
        ),
        schema_toml,
        room_fingerprint: room.fingerprint(),
        hpke_suite: HPKE_SUITE.into(),
        encapsulated_key: B64.encode(encapped.to_bytes()),
        wrapped_key: B64.encode(&wrapped),
        nonce_prefix: B64.encode(prefix),
        chunk_rows: chunk_rows as u64,
        chunks: plan.len() as u64 + 1,
        entities: dataset.entities() as u64,
        tables: summaries,
        sealed_by: SealedBy {
            name: party.name.clone(),
            ed25519: B64.encode(party.public()),
        },
        sealed_at: crate::room::db::now_rfc3339(),
    };
    let header_bytes = serde_json::to_vec(&header).map_err(|e| SealError::Crypto(e.to_string()))?;
    let mut signed = HEADER_SIGNATURE_CONTEXT.to_vec();
    signed.extend_from_slice(&header_bytes);
    let signature = party.sign(&signed);
    let cipher = ChunkCipher::new(&data_key, prefix, header_hash(&header_bytes))
        .ok_or_else(|| SealError::Crypto("bad data key".into()))?;

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| out_err(e.to_string()))?;
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
    let mut index = Vec::with_capacity(plan.len());
    let mut rows_done = 0u64;
    for (i, (table, from, to)) in plan.iter().enumerate() {
        let (batch, first, last) = if table == ENTITIES_TABLE {
            (
                entities_batch(&dataset.entity_keys, *from, *to)?,
                *from as u32,
                (*to as u32).saturating_sub(1),
            )
        } else {
            let t = dataset
                .table(table)
                .expect("planned from the dataset's own tables");
            let ts = schema
                .tables
                .iter()
                .find(|s| &s.name == table)
                .expect("loaded against this schema");
            (
                rows_batch(t, ts, *from, *to)?,
                t.entity_of_row[*from],
                t.entity_of_row[*to - 1],
            )
        };
        let mut buf = ipc(&batch)?;
        index.push(IndexEntry {
            table: table.clone(),
            rows: (*to - *from) as u64,
            first_entity: first,
            last_entity: last,
        });
        let mut sealed = std::mem::take(&mut *buf);
        cipher
            .seal(i as u64, false, &mut sealed)
            .ok_or_else(|| SealError::Crypto("chunk encryption failed".into()))?;
        put(&mut w, &(sealed.len() as u32).to_le_bytes())?;
        put(&mut w, &sealed)?;
        rows_done += (*to - *from) as u64;
        if progress {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\rsealing: chunk {}/{}, {} rows, {:.0} rows/s, {:.1} MB/s   ",
                i + 1,
                plan.len() + 1,
                rows_done,
                rows_done as f64 / secs,
                input_bytes as f64 * (i + 1) as f64 / (plan.len() + 1) as f64 / secs / 1e6
            );
        }
    }
    let mut last = serde_json::to_vec(&index).map_err(|e| SealError::Crypto(e.to_string()))?;
    cipher
        .seal(plan.len() as u64, true, &mut last)
        .ok_or_else(|| SealError::Crypto("index encryption failed".into()))?;
    put(&mut w, &(last.len() as u32).to_le_bytes())?;
    put(&mut w, &last)?;
    w.flush().map_err(|e| out_err(e.to_string()))?;
    drop(w);
    tmp.as_file()
        .sync_all()
        .map_err(|e| out_err(e.to_string()))?;
    tmp.persist(out).map_err(|e| out_err(e.error.to_string()))?;
    if progress {
        eprintln!();
    }
    Ok(SealSummary {
        header,
        bytes: written,
        input_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
