//! The log itself: entries appended to the room's database, a Merkle tree over them, and signed
//! checkpoints.
//!
//! Durability: an append is one `BEGIN IMMEDIATE` transaction in SQLite (WAL, `synchronous =
//! FULL`), so it is on disk before `append` returns. We chose the database over an append-only
//! file because the ledger and jobs live there too: an event and the state change it records can
//! commit together, and there is one thing to back up.
//!
//! Each entry is stored with the room's signature over the checkpoint (origin, size, root) of the
//! tree that ends with it. A checkpoint is only ever computed from committed rows, so it never
//! covers an entry that is not durable; and the per-entry signatures let an offline verifier name
//! the first entry that was changed, dropped, reordered or inserted.

use crate::room::db::{Conn, OptionalExtension, SqlError};
use serde_json::{Value, json};

use strongroom_verify::canonical::canonical;
pub use strongroom_verify::checkpoint::Checkpoint;
use strongroom_verify::checkpoint::origin_for;
use strongroom_verify::event::Event;
use strongroom_verify::merkle::{Frontier, Hash, MerkleTree, leaf_hash};
use strongroom_verify::note::NoteError;

use super::signer::Signer;
use crate::clock::now_rfc3339;
use crate::group_commit::WriteError;
use crate::room::db::Db;

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The write holding an append failed.
    #[error("audit log database: {0}")]
    Write(#[from] WriteError),
    /// Stored data is inconsistent.
    #[error("audit log is corrupt: {0}")]
    Corrupt(String),
    /// Signing or parsing a note failed.
    #[error(transparent)]
    Note(#[from] NoteError),
}

impl From<SqlError> for LogError {
    fn from(e: SqlError) -> Self {
        LogError::Write(e.into())
    }
}

/// One exported line: the entry, its index, and the signature over the tree head ending with it.
pub fn export_line(index: u64, entry: &str, signature: &str) -> Result<String, LogError> {
    strongroom_verify::export::export_line(index, entry, signature)
        .map_err(|e| LogError::Corrupt(e.to_string()))
}

/// What an append returns.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Index of the new entry.
    pub index: u64,
    /// Its canonical text.
    pub entry: String,
    /// The tree head ending with it.
    pub checkpoint: Checkpoint,
    /// Its inclusion proof in that tree.
    pub proof: Vec<Hash>,
}

/// A stored entry.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Position in the log.
    pub index: u64,
    /// Canonical JSON.
    pub entry: String,
    /// Signature over the tree head of size `index + 1`.
    pub signature: String,
}

/// The room's audit log.
pub struct AuditLog<'a> {
    db: &'a Db,
    signer: std::sync::Arc<Signer>,
    origin: String,
    witness: Option<&'a WitnessKeeper>,
}

/// The last checkpoint the room signed, kept in a file outside the database (`keys/log.witness`),
/// so that restoring an old `room.db` (which would reset the budget ledger) is caught: the room
/// refuses a database whose log does not extend this checkpoint.
#[derive(Debug, Clone)]
pub struct Witness {
    path: std::path::PathBuf,
}

/// The size last recorded in each witness file by this process: updates are serialized, a
/// smaller checkpoint never replaces a larger one, and the file is read once, not per append.
static RECORDED: std::sync::Mutex<Option<std::collections::HashMap<std::path::PathBuf, u64>>> =
    std::sync::Mutex::new(None);

/// Why the witness file could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WitnessError(pub String);

impl From<String> for WitnessError {
    fn from(message: String) -> Self {
        WitnessError(message)
    }
}

impl From<&str> for WitnessError {
    fn from(message: &str) -> Self {
        WitnessError(message.to_string())
    }
}

impl Witness {
    /// The witness file at `path`.
    pub fn at(path: std::path::PathBuf) -> Witness {
        Witness { path }
    }

    /// The checkpoint recorded, if any.
    pub fn read(&self) -> Result<Option<Checkpoint>, WitnessError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Checkpoint::parse(&text)
                .map(Some)
                .map_err(|e| WitnessError(format!("{}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.path.display()).into()),
        }
    }

    /// Records `checkpoint` unless a larger one is already recorded (written aside, then
    /// renamed into place, so the file is always whole).
    pub fn record(&self, checkpoint: &Checkpoint) -> Result<(), WitnessError> {
        let mut recorded = RECORDED.lock().unwrap_or_else(|p| p.into_inner());
        let recorded = recorded.get_or_insert_with(Default::default);
        let current = match recorded.get(&self.path) {
            Some(&size) => size,
            None => self.read().ok().flatten().map_or(0, |c| c.size),
        };
        if current >= checkpoint.size {
            return Ok(());
        }
        let tmp = self.path.with_extension("witness.tmp");
        std::fs::write(&tmp, checkpoint.text())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        recorded.insert(self.path.clone(), checkpoint.size);
        Ok(())
    }
}

/// How often, at most, a [`WitnessKeeper`] rewrites its file.
pub const WITNESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Records a room's checkpoints in its [`Witness`] from a thread of its own, so that no writer
/// waits for the file: the newest checkpoint sent is written at most [`WITNESS_INTERVAL`] after
/// it was sent (the file is rewritten once per interval, not once per write), and the newest of
/// all before the keeper is dropped. A checkpoint is sent only once its entry is durable, so the
/// witness never runs ahead of the database; it lags it by at most the interval (or, when the
/// process is killed, by what it had not written yet), which only narrows what a restored older
/// database can roll back without being caught.
pub struct WitnessKeeper {
    witness: Witness,
    sender: std::sync::Mutex<Option<std::sync::mpsc::Sender<Checkpoint>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The first error the thread met writing the file, reported to the next writer.
    failed: std::sync::Arc<std::sync::Mutex<Option<WitnessError>>>,
}

impl WitnessKeeper {
    /// Starts the thread that keeps `witness`.
    pub fn start(witness: Witness) -> Result<WitnessKeeper, WitnessError> {
        let (sender, receiver) = std::sync::mpsc::channel::<Checkpoint>();
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (kept, report) = (witness.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name("strongroom-witness".into())
            .spawn(move || {
                let write = |checkpoint: &Checkpoint| {
                    if let Err(e) = kept.record(checkpoint) {
                        eprintln!("strongroom: recording the log's witness: {e}");
                        report
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                    }
                };
                let newer = |a: Checkpoint, b: Checkpoint| if b.size > a.size { b } else { a };
                let mut last_write: Option<std::time::Instant> = None;
                while let Ok(first) = receiver.recv() {
                    // At most one write per WITNESS_INTERVAL: the checkpoints arriving
                    // meanwhile are folded into the newest, which is written at its end (or at
                    // once when the keeper finishes).
                    let mut newest = first;
                    let due = last_write.map(|at| at + WITNESS_INTERVAL);
                    let mut finished = false;
                    while let Some(left) =
                        due.and_then(|due| due.checked_duration_since(std::time::Instant::now()))
                    {
                        match receiver.recv_timeout(left) {
                            Ok(next) => newest = newer(newest, next),
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                                finished = true;
                                break;
                            }
                        }
                    }
                    newest = receiver.try_iter().fold(newest, newer);
                    write(&newest);
                    last_write = Some(std::time::Instant::now());
                    if finished {
                        break;
                    }
                }
            })
            .map_err(|e| WitnessError(format!("starting the witness's thread: {e}")))?;
        Ok(WitnessKeeper {
            witness,
            sender: std::sync::Mutex::new(Some(sender)),
            thread: std::sync::Mutex::new(Some(thread)),
            failed,
        })
    }

    /// The witness file.
    pub fn witness(&self) -> &Witness {
        &self.witness
    }

    /// Hands `checkpoint` (of durable entries) to the thread; reports an earlier failure to
    /// write the file, if there was one.
    pub fn record(&self, checkpoint: &Checkpoint) -> Result<(), WitnessError> {
        if let Some(e) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        match sender.as_ref() {
            Some(sender) if sender.send(checkpoint.clone()).is_ok() => Ok(()),
            // The thread is gone: write it here.
            _ => self.witness.record(checkpoint),
        }
    }

    /// Waits until every checkpoint handed over so far is written, and stops the thread.
    pub fn finish(&self) {
        drop(self.sender.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WitnessKeeper {
    fn drop(&mut self) {
        self.finish();
    }
}

/// 128 random bits, hex.
fn fresh_salt() -> Result<String, LogError> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| LogError::Corrupt("no system randomness for an entry's salt".into()))?;
    Ok(hex::encode(salt))
}

impl<'a> AuditLog<'a> {
    /// The log in `db`, signing with `signer` (the room's key, named after the room).
    pub fn new(db: &'a Db, signer: impl Into<std::sync::Arc<Signer>>, room: &str) -> Self {
        AuditLog {
            db,
            signer: signer.into(),
            origin: origin_for(room),
            witness: None,
        }
    }

    /// Records every new checkpoint in `witness` too, once its entry is committed.
    pub fn with_witness(mut self, witness: &'a WitnessKeeper) -> Self {
        self.witness = Some(witness);
        self
    }

    /// Checks that the stored log extends the witnessed checkpoint (and is not empty); records
    /// the current checkpoint when there is no witness yet.
    pub async fn check_witness(&self) -> Result<(), WitnessError> {
        // The witness first, the database second: a writer in another process records the
        // witness only after its entry commits, so a witness read before the database can never
        // be ahead of it unless the database lost entries. (Read the other way round, an append
        // landing in between looked like a restored database.)
        let recorded = match &self.witness {
            Some(keeper) => keeper.witness().read()?,
            None => None,
        };
        let size = self.size().await.map_err(|e| e.to_string())?;
        if size == 0 {
            return Err("the database holds no audit log: it is empty or not this room's".into());
        }
        let Some(witness) = &self.witness else {
            return Ok(());
        };
        let Some(recorded) = recorded else {
            let (checkpoint, _) = self.checkpoint().await.map_err(|e| e.to_string())?;
            return witness.witness().record(&checkpoint);
        };
        if recorded.size > size {
            return Err(format!(
                "the database's audit log has {size} entries, but the room signed a checkpoint of {} (an older copy of the database was restored?)",
                recorded.size
            ).into());
        }
        let tree = self.tree().await.map_err(|e| e.to_string())?;
        if tree.root(recorded.size).ok() != Some(recorded.root) {
            return Err(format!(
                "the database's audit log does not extend the checkpoint of {} entries the room signed (a different or modified database?)",
                recorded.size
            ).into());
        }
        Ok(())
    }

    /// Appends an event, durably; returns its index.
    pub async fn append(&self, event: &Event) -> Result<u64, LogError> {
        Ok(self.append_with_proof(event)?.index)
    }

    /// Appends an event, durably, and returns, with its index, the entry's canonical text, the
    /// tree head that ends with it and the inclusion proof of the entry in that tree.
    pub fn append_with_proof(&self, event: &Event) -> Result<Appended, LogError> {
        let appended = self.db.write(|conn| self.append_in(conn, event))?;
        self.committed(&appended)?;
        Ok(appended)
    }

    /// Appends an event inside the caller's write, so that a state change and the entry
    /// recording it commit together or not at all. After committing, the caller calls
    /// [`AuditLog::committed`].
    pub fn append_in(&self, conn: &Conn<'_>, event: &Event) -> Result<Appended, LogError> {
        let mut appended = self.append_all_in(conn, std::slice::from_ref(event))?;
        appended
            .pop()
            .ok_or_else(|| LogError::Corrupt("an append that appended nothing".into()))
    }

    /// Appends events, in order, inside the caller's write, as [`AuditLog::append_in`] does
    /// one by one: each entry gets its own index, salt and signed tree head. After committing,
    /// the caller calls [`AuditLog::committed`] with the last.
    pub fn append_all_in(
        &self,
        conn: &Conn<'_>,
        events: &[Event],
    ) -> Result<Vec<Appended>, LogError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let stored = conn
            .prepare_cached("SELECT size, nodes FROM audit_frontier WHERE id = 1")
            .and_then(|mut s| {
                s.query_row(crate::params![], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .optional()
            })
            .map_err(WriteError::from)?;
        let mut frontier = match stored {
            Some((size, nodes)) => {
                Frontier::from_bytes(size.max(0) as u64, &nodes).ok_or_else(|| {
                    LogError::Corrupt("stored frontier does not match its size".into())
                })?
            }
            None => Frontier::new(),
        };
        let mut appended = Vec::with_capacity(events.len());
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO audit_entries (idx, entry, leaf_hash, tree_head_signature) VALUES (?, ?, ?, ?)",
            )
            .map_err(WriteError::from)?;
        for event in events {
            let index = frontier.size();
            let Value::Object(mut map) = serde_json::to_value(event)
                .map_err(|e| LogError::Corrupt(format!("an event that is not JSON: {e}")))?
            else {
                return Err(LogError::Corrupt(
                    "an event that is not a JSON object".into(),
                ));
            };
            map.insert("index".into(), json!(index));
            map.insert("time".into(), json!(now_rfc3339()));
            // A fresh random salt in every entry: a leaf hash (which a partner sees as a sibling
            // in its own inclusion proofs) then says nothing about the entry's content, however
            // predictable the rest of it is.
            map.insert("salt".into(), json!(fresh_salt()?));
            let entry =
                canonical(&Value::Object(map)).map_err(|e| LogError::Corrupt(e.to_string()))?;
            let leaf = leaf_hash(entry.as_bytes());
            // The audit path of the newest leaf is the old right edge, smallest subtree first.
            let proof: Vec<Hash> = frontier.nodes().iter().rev().copied().collect();
            frontier.push(leaf);
            let checkpoint = Checkpoint {
                origin: self.origin.clone(),
                size: frontier.size(),
                root: frontier.root(),
            };
            let signature = self.signer.signature(&checkpoint.text());
            let signature = signature
                .split_once(' ')
                .map_or(signature.clone(), |(_, s)| s.to_string());
            insert
                .execute(crate::params![
                    index as i64,
                    entry.as_str(),
                    leaf.as_slice(),
                    signature.as_str()
                ])
                .map_err(WriteError::from)?;
            appended.push(Appended {
                index,
                entry,
                checkpoint,
                proof,
            });
        }
        conn.prepare_cached(
            "INSERT INTO audit_frontier (id, size, nodes) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET size = excluded.size, nodes = excluded.nodes",
        )
        .and_then(|mut s| s.execute(crate::params![frontier.size() as i64, frontier.to_bytes()]))
        .map_err(WriteError::from)?;
        Ok(appended)
    }

    /// Records, once the transaction holding `appended` has committed, its checkpoint as the
    /// room's witness (see [`Witness`]).
    pub fn committed(&self, appended: &Appended) -> Result<(), LogError> {
        match &self.witness {
            Some(witness) => witness
                .record(&appended.checkpoint)
                .map_err(|e| LogError::Corrupt(e.to_string())),
            None => Ok(()),
        }
    }

    /// The number of durable entries.
    pub async fn size(&self) -> Result<u64, LogError> {
        Self::size_in(self.db)
    }

    /// The number of durable entries of the log in `db`.
    pub fn size_in(db: &Db) -> Result<u64, LogError> {
        let size: Option<i64> = db.read(|conn| {
            conn.query_row(
                "SELECT size FROM audit_frontier WHERE id = 1",
                crate::params![],
                |r| r.get(0),
            )
            .optional()
            .map_err(LogError::from)
        })?;
        Ok(size.unwrap_or(0).max(0) as u64)
    }

    /// A signed checkpoint of the log as it is durably now.
    pub async fn checkpoint(&self) -> Result<(Checkpoint, String), LogError> {
        let row: Option<(i64, Vec<u8>)> = self.db.read(|conn| {
            conn.query_row(
                "SELECT size, nodes FROM audit_frontier WHERE id = 1",
                crate::params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(WriteError::from)
        })?;
        let frontier = match row {
            Some((size, nodes)) => {
                Frontier::from_bytes(size.max(0) as u64, &nodes).ok_or_else(|| {
                    LogError::Corrupt("stored frontier does not match its size".into())
                })?
            }
            None => Frontier::new(),
        };
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: frontier.size(),
            root: frontier.root(),
        };
        let note = self.signer.sign(&checkpoint.text())?;
        Ok((checkpoint, note))
    }

    /// Entries from `from` on, in order.
    pub async fn entries(&self, from: u64) -> Result<Vec<StoredEntry>, LogError> {
        self.entries_page(from, u64::MAX).await
    }

    /// At most `limit` entries from `from` on, in order (the database reads only those).
    pub async fn entries_page(&self, from: u64, limit: u64) -> Result<Vec<StoredEntry>, LogError> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db.read(|conn| {
            conn.prepare_cached(
                "SELECT idx, entry, tree_head_signature FROM audit_entries WHERE idx >= ? ORDER BY idx LIMIT ?",
            )?
            .query_map(crate::params![from, limit], |r| {
                Ok(StoredEntry {
                    index: r.get::<_, i64>(0)?.max(0) as u64,
                    entry: r.get(1)?,
                    signature: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, SqlError>>()
            .map_err(|e| LogError::Write(e.into()))
        })
    }

    /// The whole tree, built from the stored leaf hashes (O(n); for proofs).
    pub async fn tree(&self) -> Result<MerkleTree, LogError> {
        let rows: Vec<Vec<u8>> = self.db.read(|conn| {
            conn.prepare_cached("SELECT leaf_hash FROM audit_entries ORDER BY idx")?
                .query_map(crate::params![], |r| r.get(0))?
                .collect::<Result<Vec<_>, SqlError>>()
                .map_err(|e| LogError::Write(e.into()))
        })?;
        let mut leaves = Vec::with_capacity(rows.len());
        for bytes in rows {
            leaves.push(
                bytes
                    .try_into()
                    .map_err(|_| LogError::Corrupt("a stored leaf hash is not 32 bytes".into()))?,
            );
        }
        Ok(MerkleTree::from_leaf_hashes(leaves))
    }
}
