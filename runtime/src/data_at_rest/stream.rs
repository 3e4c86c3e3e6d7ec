//! Reading a sealed dataset window by window, in bounded memory.
//!
//! [`SealedSource::open`] reads what a run plans with: the header (its signature, the room it is
//! sealed to, the data key), where every chunk lies (lengths only) and the index, the last chunk,
//! authenticated and checked. Nothing else is decrypted. [`SealedSource::windows`] then reads the
//! rows of consecutive ranges of entities: each table's chunks are read in order into one reused
//! buffer, authenticated, checked exactly as opening the whole file checks them, decoded, and
//! cleared; a window holds only the rows of its entities (and the one chunk per table that
//! straddles its end). Entity keys are never read, and identifier columns are decoded only for a
//! job that matches an audience list.
//!
//! The last window ends the read only once every data chunk of every table authenticated and
//! the rows of each table add up to what the authenticated header and index declare; otherwise
//! the iterator ends with the error, and the run that read it has no result.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, UInt32Array};
use zeroize::Zeroizing;

use super::blob::{Blob, Ranges};
use super::format::{ChunkCipher, ENTITIES_TABLE, Header, IndexEntry, header_hash};
use super::open::{
    Checker, OpenError, Prefix, check_header, chunk_locations, cipher, cipher_with_key, data_key,
    decode_table, read_prefix,
};
use super::plain_buffer::PlainBuffer;
use crate::dataset::Dataset;
use crate::keys::RoomKeys;
use crate::progress::Progress;

/// Entities per window unless a caller asks otherwise.
pub const DEFAULT_WINDOW_ENTITIES: u32 = 8192;

/// A sealed dataset opened for reading window by window.
pub struct SealedSource {
    blob: Blob,
    header: Header,
    header_sha256: String,
    /// The header's exact bytes and its signature (to unwrap the data key again).
    header_bytes: Vec<u8>,
    signature: Vec<u8>,
    cipher: ChunkCipher,
    /// Where each chunk's ciphertext lies: (offset, length), in chunk order, the index last.
    locations: Vec<(u64, usize)>,
    /// The index's authenticated bytes, for a fresh checker per read.
    index_bytes: Zeroizing<Vec<u8>>,
    index: Vec<IndexEntry>,
    /// Per table of the schema, in order: its chunks, in file order.
    table_chunks: Vec<Vec<usize>>,
    /// The dataset's tables and columns, without rows.
    shape: Arc<Dataset>,
    bytes: u64,
}

impl SealedSource {
    /// Opens the sealed file at `path` with the room's keys: checks the header and its
    /// signature, unwraps the data key, locates every chunk and authenticates and checks the
    /// index. Every length is checked against the format's limits and the bytes present before
    /// anything is read by it.
    pub fn open(path: &Path, room: &RoomKeys) -> Result<SealedSource, OpenError> {
        Self::open_blob(Blob::File(path.to_path_buf()), room)
    }

    /// [`SealedSource::open`] for a file or an object in object storage.
    pub fn open_blob(blob: Blob, room: &RoomKeys) -> Result<SealedSource, OpenError> {
        Self::open_by(blob, |header, header_bytes, signature| {
            cipher(header, header_bytes, signature, room)
        })
    }

    /// Opens the sealed file at `path` as [`SealedSource::open`] does, with its data key `key`
    /// given (released to a worker that has no room key): the header must still carry a valid
    /// signature by its sealing party and be sealed to the room with `room_fingerprint`, and
    /// every chunk read must authenticate under `key`.
    pub fn open_with_key(
        blob: Blob,
        room_fingerprint: &str,
        key: &[u8; 32],
    ) -> Result<SealedSource, OpenError> {
        Self::open_by(blob, |header, header_bytes, signature| {
            check_header(header, header_bytes, signature, room_fingerprint)?;
            cipher_with_key(header, header_bytes, key)
        })
    }

    /// The dataset's data key, unwrapped with the room's key (for releasing to a worker).
    pub fn data_key(&self, room: &RoomKeys) -> Result<Zeroizing<[u8; 32]>, OpenError> {
        data_key(&self.header, &self.header_bytes, &self.signature, room)
    }

    fn open_by(
        blob: Blob,
        cipher: impl FnOnce(&Header, &[u8], &[u8]) -> Result<ChunkCipher, OpenError>,
    ) -> Result<SealedSource, OpenError> {
        let name = blob.name();
        let io = |e: std::io::Error| OpenError::Io(format!("{name}: {e}"));
        let total = blob.len().map_err(io)?;
        let mut r = blob.sequential().map_err(io)?;
        let Prefix {
            header,
            header_bytes,
            signature,
            len,
        } = read_prefix(&mut r, total)?;
        let cipher = cipher(&header, &header_bytes, &signature)?;
        let declared = header.chunks;
        let (locations, count) = chunk_locations(&mut r, len, total, declared, &name)?;
        drop(r);
        let mut file = blob.ranges().map_err(io)?;
        let mut plain = PlainBuffer::new();
        let mut read = |i: u64, plain: &mut PlainBuffer| {
            read_chunk(&mut file, &cipher, &locations, i, declared, plain)
                .map_err(|e| e.into_open_error(&name))
        };
        if count != declared || declared == 0 {
            // As verifying does: what is present authenticates first, so the error names the
            // first bad chunk.
            for i in 0..locations.len() as u64 {
                read(i, &mut plain)?;
            }
            return Err(OpenError::Chunk {
                index: count.min(declared.saturating_sub(1)),
                total: declared,
            });
        }
        read(declared - 1, &mut plain)?;
        let index_bytes = Zeroizing::new(plain.bytes().to_vec());
        drop(plain);
        let checker = Checker::new(&header, &index_bytes)?;
        let index = checker.index.clone();
        let mut table_chunks: Vec<Vec<usize>> = vec![Vec::new(); checker.schema.tables.len()];
        for (i, entry) in index.iter().enumerate() {
            if let Some(t) = checker
                .schema
                .tables
                .iter()
                .position(|t| t.name == entry.table)
            {
                // A table's chunks hold consecutive entities in file order (what reading the
                // whole file checks chunk by chunk): a range of entities then lies in one run
                // of its chunks, which a partition reads alone.
                if let Some(&before) = table_chunks[t].last()
                    && index[before].last_entity > entry.first_entity
                {
                    return Err(OpenError::Content(format!(
                        "index entry {i} starts before the table's previous chunk ends"
                    )));
                }
                table_chunks[t].push(i);
            }
        }
        let entities = u32::try_from(header.entities)
            .map_err(|_| OpenError::Malformed("too many entities".into()))?;
        let mut tables = Vec::new();
        for ts in &checker.schema.tables {
            tables.push(Arc::new(decode_table(ts, &[], 0..0, true)?));
        }
        let shape = Arc::new(Dataset {
            name: checker.schema.name.clone(),
            tables,
            entity_keys: Vec::new(),
            span: 0..entities,
        });
        Ok(SealedSource {
            blob,
            header_sha256: hex::encode(header_hash(&header_bytes)),
            header,
            header_bytes,
            signature,
            cipher,
            locations,
            index_bytes,
            index,
            table_chunks,
            shape,
            bytes: total,
        })
    }

    /// What it reads: a file, or an object in object storage.
    pub fn blob(&self) -> &Blob {
        &self.blob
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// SHA-256 of the header, hex: the dataset's identity.
    pub fn header_sha256(&self) -> &str {
        &self.header_sha256
    }

    /// The file's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The dataset's name, tables, columns and dictionaries, and its entity count: everything a
    /// run is planned and admitted with. Its tables hold no rows (reading them is
    /// [`SealedSource::windows`]).
    pub fn shape(&self) -> &Arc<Dataset> {
        &self.shape
    }

    /// The chunks holding the rows of `entities`: for each table, in the schema's order, the
    /// indices (in the file) of the chunks whose entity range meets `entities`, ascending. A
    /// partition of a run is a range of entities; this is the range of the file it needs, from
    /// the authenticated index (every chunk holds whole rows of consecutive entities).
    pub fn chunks_for(&self, entities: std::ops::Range<u32>) -> Vec<(String, Vec<usize>)> {
        self.shape
            .tables
            .iter()
            .zip(&self.table_chunks)
            .map(|(table, chunks)| {
                let meets: Vec<usize> = chunks
                    .iter()
                    .copied()
                    .filter(|&i| {
                        let e = &self.index[i];
                        e.first_entity < entities.end && e.last_entity >= entities.start
                    })
                    .collect();
                (table.name.clone(), meets)
            })
            .collect()
    }

    /// Reads the whole dataset into memory, as [`super::open::SealedFile::open`] does (for a
    /// run that needs every row at once: table mode).
    pub fn load(&self, threads: usize) -> Result<Dataset, OpenError> {
        let bytes = self
            .blob
            .read_all()
            .map_err(|e| OpenError::Io(format!("{}: {e}", self.blob.name())))?;
        let file = super::open::SealedFile::parse(&bytes)?;
        drop(bytes);
        if file.header_sha256() != self.header_sha256 {
            return Err(OpenError::Content(
                "the file changed since it was opened".into(),
            ));
        }
        file.open_with(&self.cipher, threads)
    }

    /// Authenticates and decrypts every chunk, one at a time, into the plaintext buffer, and
    /// clears it after each, decoding nothing: what reading the file costs in cryptography and
    /// clearing alone.
    pub fn authenticate(&self) -> Result<(), OpenError> {
        let name = self.blob.name();
        let io = |e: std::io::Error| OpenError::Io(format!("{name}: {e}"));
        let mut file = self.blob.ranges().map_err(io)?;
        let mut buf = PlainBuffer::new();
        for i in 0..self.header.chunks {
            read_chunk(
                &mut file,
                &self.cipher,
                &self.locations,
                i,
                self.header.chunks,
                &mut buf,
            )
            .map_err(|e| e.into_open_error(&name))?;
            buf.clear();
        }
        Ok(())
    }

    /// Reads the rows of the entities `entities` alone (a partition run elsewhere), in windows
    /// of `size` entities: only the chunks that hold them are read, each authenticated and
    /// checked as reading the whole file checks it. Whether every chunk of the file adds up to
    /// the header was checked when the file was taken in; this read checks the chunks of the
    /// range, and ends after its last entity.
    pub fn range_windows(
        &self,
        entities: std::ops::Range<u32>,
        size: u32,
    ) -> Result<Windows<'_>, OpenError> {
        let end = entities.end.min(self.shape.span.end);
        let first = entities.start.min(end);
        let mut windows = self.windows(size)?;
        windows.next = first;
        windows.end = Some(end);
        for (cursor, chunks) in windows.cursors.iter_mut().zip(&self.table_chunks) {
            cursor.next = chunks.partition_point(|&i| self.index[i].last_entity < first);
        }
        Ok(windows)
    }

    /// The rows of the entities `entities`, in one window (see [`SealedSource::range_windows`]).
    pub fn range(
        &self,
        entities: std::ops::Range<u32>,
        identifiers: bool,
    ) -> Result<Dataset, OpenError> {
        let end = entities.end.min(self.shape.span.end);
        let first = entities.start.min(end);
        if first == end {
            let mut shape = Dataset::clone(&self.shape);
            shape.span = first..first;
            return Ok(shape);
        }
        let mut windows = self.range_windows(first..end, end - first)?;
        windows.identifiers = identifiers;
        windows
            .window()?
            .ok_or_else(|| OpenError::Content("an empty range".into()))
    }

    /// Reads the dataset in windows of `entities` consecutive entities (the last may be
    /// shorter), in order. See the module's documentation for what is checked.
    pub fn windows(&self, entities: u32) -> Result<Windows<'_>, OpenError> {
        let io = |e: std::io::Error| OpenError::Io(format!("{}: {e}", self.blob.name()));
        Ok(Windows {
            source: self,
            file: self.blob.ranges().map_err(io)?,
            checker: Checker::new(&self.header, &self.index_bytes)?,
            size: entities.max(1),
            next: 0,
            cursors: vec![Cursor::default(); self.table_chunks.len()],
            buf: PlainBuffer::new(),
            done: false,
            progress: None,
            identifiers: false,
            end: None,
        })
    }
}

/// Why reading one chunk failed.
enum ChunkError {
    Io(std::io::Error),
    Unauthentic { index: u64, total: u64 },
}

impl ChunkError {
    fn into_open_error(self, name: &str) -> OpenError {
        match self {
            ChunkError::Io(e) => OpenError::Io(format!("{name}: {e}")),
            ChunkError::Unauthentic { index, total } => OpenError::Chunk { index, total },
        }
    }
}

/// Reads chunk `i` into `buf`, authenticates and decrypts it in place; `buf` then holds the
/// plaintext alone.
fn read_chunk(
    file: &mut Ranges,
    cipher: &ChunkCipher,
    locations: &[(u64, usize)],
    i: u64,
    total: u64,
    buf: &mut PlainBuffer,
) -> Result<(), ChunkError> {
    let (at, n) = locations[i as usize];
    let bytes = buf.fill(n).map_err(ChunkError::Io)?;
    file.read_at(at, bytes).map_err(ChunkError::Io)?;
    match cipher.open(i, i + 1 == total, bytes) {
        Some(len) => {
            buf.truncate(len);
            Ok(())
        }
        None => {
            buf.clear();
            Err(ChunkError::Unauthentic { index: i, total })
        }
    }
}

/// A table's read position: its next chunk, and the decoded batches not yet wholly used.
#[derive(Clone, Default)]
struct Cursor {
    next: usize,
    held: Vec<(RecordBatch, u32)>,
}

/// The windows of a [`SealedSource`], in order (see [`SealedSource::windows`]).
pub struct Windows<'s> {
    source: &'s SealedSource,
    file: Ranges,
    checker: Checker,
    size: u32,
    next: u32,
    cursors: Vec<Cursor>,
    buf: PlainBuffer,
    done: bool,
    progress: Option<Arc<Progress>>,
    identifiers: bool,
    /// A range's end: the read stops there, with no check of the rest of the file.
    end: Option<u32>,
}

impl Windows<'_> {
    /// Decodes the tables' identifier columns too (for matching an audience list; without, a
    /// window holds none of them).
    pub fn with_identifiers(mut self) -> Self {
        self.identifiers = true;
        self
    }

    /// Reports on `progress` the chunks read (and plans it: the customers and chunks ahead).
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        let chunks = self.source.table_chunks.iter().map(Vec::len).sum::<usize>();
        progress.plan(u64::from(self.source.shape.span.end), chunks as u64);
        self.progress = Some(progress);
        self
    }

    fn window(&mut self) -> Result<Option<Dataset>, OpenError> {
        let source = self.source;
        if let Some(end) = self.end
            && self.next >= end
        {
            return Ok(None);
        }
        let entities = self.end.unwrap_or(source.shape.span.end);
        if self.next >= entities {
            // Every chunk of every table must have been read, and every row counted.
            for (t, cursor) in self.cursors.iter().enumerate() {
                if cursor.next != source.table_chunks[t].len() {
                    return Err(OpenError::Content(format!(
                        "table '{}' has rows past the last entity",
                        source.shape.tables[t].name
                    )));
                }
            }
            self.checker.finish_except(ENTITIES_TABLE)?;
            return Ok(None);
        }
        let first = self.next;
        let end = first.saturating_add(self.size).min(entities);
        let mut tables = Vec::with_capacity(self.cursors.len());
        for (t, cursor) in self.cursors.iter_mut().enumerate() {
            let chunks = &source.table_chunks[t];
            // Read this table's chunks until one starts at or past the window's end.
            while let Some(&i) = chunks.get(cursor.next) {
                if source.index[i].first_entity >= end {
                    break;
                }
                read_chunk(
                    &mut self.file,
                    &source.cipher,
                    &source.locations,
                    i as u64,
                    source.header.chunks,
                    &mut self.buf,
                )
                .map_err(|e| e.into_open_error(&source.blob.name()))?;
                let batch = self.checker.chunk(i, self.buf.bytes());
                self.buf.clear();
                if let Some(progress) = &self.progress {
                    progress.chunk_read();
                }
                fail::fail_point!("stream.after_chunk");
                cursor.held.push((batch?, source.index[i].last_entity));
                cursor.next += 1;
            }
            // The rows of the window's entities, as slices of the held batches.
            let mut parts = Vec::new();
            for (batch, _) in &cursor.held {
                let ordinals = batch
                    .column_by_name("entity")
                    .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
                    .ok_or_else(|| OpenError::Content("a chunk has no entity column".into()))?
                    .values();
                let from = ordinals.partition_point(|&e| e < first);
                let to = ordinals.partition_point(|&e| e < end);
                if to > from {
                    parts.push(batch.slice(from, to - from));
                }
            }
            let ts = &self.checker.schema.tables[t];
            tables.push(Arc::new(decode_table(
                ts,
                &parts,
                first..end,
                self.identifiers,
            )?));
            drop(parts);
            cursor.held.retain(|(_, last)| *last >= end);
        }
        self.next = end;
        Ok(Some(Dataset {
            name: source.shape.name.clone(),
            tables,
            entity_keys: Vec::new(),
            span: first..end,
        }))
    }
}

impl Iterator for Windows<'_> {
    type Item = Result<Dataset, OpenError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.window() {
            Ok(Some(window)) => Some(Ok(window)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
