//! The room's one writing connection, committing writes in groups.
//!
//! Every write in a process goes through [`Writer::write`], which runs the whole write (every
//! statement, and the work between them) on the calling thread, holding the connection: no
//! statement waits for a hand-off to another thread. Writers take the connection in the order
//! they asked for it (a fair lock), each the moment the one before it is done, instead of
//! sleeping in SQLite's busy handler.
//!
//! A write is a savepoint inside a transaction that the writers share: when the write returns
//! `Ok`, its savepoint is released and, when no other writer is waiting (or the group is full),
//! the shared transaction commits, one disk flush for the whole group. A writer whose group
//! another will commit waits for that commit: no writer returns before its write is durable,
//! and when the commit fails every writer in the group gets the error and none of their writes
//! is kept. (A lazy write, [`Writer::write_lazily`], commits without that flush.) A deferred
//! write ([`Writer::write_deferred`]) leaves its group open for the writes that follow and
//! returns a [`Pending`], which commits the group itself if no other write has after a grace
//! period: a worker's release then shares its flush with the next job's charge. A write that
//! returns `Err` or panics rolls back to its savepoint, so the writes
//! before it in the group stand; whoever lets go of the connection with the shared transaction
//! open and nobody in line commits it first. Readers (other connections) see a group only once it
//! is committed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};

use parking_lot::{FairMutex, FairMutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::room::db::SqlError;

/// The most writes one shared transaction takes before it commits, however many are waiting.
pub const MAX_GROUP: usize = 64;

/// Why a write could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The database refused a statement of this write.
    #[error("{0}")]
    Database(Arc<SqlError>),
    /// The shared transaction holding this write failed to commit (every write in it is lost).
    #[error("the group of writes holding this one did not commit: {0}")]
    Group(Arc<SqlError>),
    /// The writer went away before the write's group committed.
    #[error("the room's writer closed before the write's group committed")]
    Closed,
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Database(Arc::new(e.into()))
    }
}

impl From<SqlError> for WriteError {
    fn from(e: SqlError) -> Self {
        WriteError::Database(Arc::new(e))
    }
}

impl WriteError {
    /// Whether the database refused the write for a uniqueness constraint.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, WriteError::Database(e) if e.is_unique_violation())
    }
}

/// What the writers of a group learn from its commit.
type GroupResult = Result<(), Arc<SqlError>>;

/// The connection and the shared transaction's state, behind the lock.
struct Shared {
    conn: Connection,
    /// The shared transaction is open.
    open: bool,
    /// The connection's `synchronous` level: `FULL` (every commit flushed to disk before any
    /// reader sees it) for durable writes, `NORMAL` for lazy ones. It cannot change inside a
    /// transaction, so a group is one or the other.
    durable: bool,
    /// The writers waiting for the shared transaction to commit.
    pending: Vec<SyncSender<GroupResult>>,
    /// The number of shared transactions begun so far: the open one's number.
    seq: u64,
    /// A deferred write left the open group for others to join: its [`Pending`] will commit
    /// it, so lazy writes leave it open.
    linger: bool,
}

/// The one writing connection (cheap to clone: clones share it).
#[derive(Clone)]
pub struct Writer {
    shared: Arc<FairMutex<Shared>>,
    /// Writers waiting for the lock.
    waiting: Arc<AtomicUsize>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    groups: AtomicU64,
    writes: AtomicU64,
}

/// Opens a connection to the room's database at `path` (never creating one) with the room's
/// settings: WAL, every commit flushed to disk, foreign keys enforced, and 30 s of patience with
/// another process's lock.
pub fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Shared {
    /// Rolls the shared transaction back and tells its writers why.
    fn fail(&mut self, e: Arc<SqlError>) {
        let _ = self.conn.execute_batch("ROLLBACK");
        self.open = false;
        self.linger = false;
        for waiter in self.pending.drain(..) {
            let _ = waiter.send(Err(e.clone()));
        }
    }

    /// Commits the shared transaction (if open) and tells its writers.
    fn flush(&mut self, stats: &Stats) -> GroupResult {
        if !self.open {
            return Ok(());
        }
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.open = false;
                self.linger = false;
                stats.groups.fetch_add(1, Ordering::Relaxed);
                stats
                    .writes
                    .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
                for waiter in self.pending.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
                Ok(())
            }
            Err(e) => {
                let e = Arc::new(SqlError::from(e));
                self.fail(e.clone());
                Err(e)
            }
        }
    }

    /// Begins the shared transaction at the `synchronous` level a durable (or lazy) write needs.
    fn begin(&mut self, durable: bool) -> Result<(), rusqlite::Error> {
        if self.durable != durable {
            self.conn.pragma_update(
                None,
                "synchronous",
                if durable { "FULL" } else { "NORMAL" },
            )?;
            self.durable = durable;
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.open = true;
        self.linger = false;
        self.seq += 1;
        Ok(())
    }

    /// Takes back the current write: rolls back to its savepoint (on failure, the whole group).
    fn roll_back_write(&mut self) {
        let rolled_back = self
            .conn
            .execute_batch("ROLLBACK TO SAVEPOINT w; RELEASE SAVEPOINT w");
        if let Err(e) = rolled_back {
            self.fail(Arc::new(e.into()));
        }
    }
}

impl Writer {
    /// Opens the writing connection to the room's database at `path` (never creating one).
    pub fn open(path: &Path) -> Result<Writer, rusqlite::Error> {
        let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        Ok(Writer {
            shared: Arc::new(FairMutex::new(Shared {
                conn,
                open: false,
                durable: true,
                pending: Vec::new(),
                seq: 0,
                linger: false,
            })),
            waiting: Arc::new(AtomicUsize::new(0)),
            stats: Arc::default(),
        })
    }

    /// Writers waiting for the connection now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Shared transactions committed, and the writes they held, since the writer opened.
    pub fn committed(&self) -> (u64, u64) {
        (
            self.stats.groups.load(Ordering::Relaxed),
            self.stats.writes.load(Ordering::Relaxed),
        )
    }

    /// Waits for the connection in turn (a fair lock: it goes to the writers in the order
    /// they asked, never to one that arrives later).
    fn lock(&self) -> FairMutexGuard<'_, Shared> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let guard = self.shared.lock();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    /// Runs `f` as one write on the calling thread and returns once it is durable (with its
    /// group), or with the error that kept it or its group from committing. `f` rolls back alone
    /// if it returns `Err` or panics. `f` must not write through this writer itself: the
    /// connection's lock is not reentrant.
    pub fn write<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        self.write_as(Mode::Durable, f).map(|(value, _)| value)
    }

    /// [`Writer::write`] for a write whose caller has more to do before it needs the write
    /// durable: the write is made on the calling thread, its group is left open for the writes
    /// that follow, and the returned [`Pending`] says when the group committed. Nothing of the
    /// write is visible to readers, or durable, until then; [`Pending::settle`] commits the
    /// group itself after a grace period, and dropping the `Pending` commits it at once.
    pub fn write_deferred<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<(T, Pending), E>
    where
        E: From<WriteError>,
    {
        let (value, pending) = self.write_as(Mode::Deferred, f)?;
        Ok((
            value,
            pending.unwrap_or_else(|| Pending {
                writer: Some(self.clone()),
                seq: 0,
                receiver: None,
            }),
        ))
    }

    /// [`Writer::write`] for a write that may be lost with the machine's power until the next
    /// durable write commits (never with the process alone: a committed write survives a
    /// crash). It returns once committed, without waiting for a flush to disk, and readers may
    /// see it before it is flushed. For a change that a restart can do again and that no audit
    /// entry records (a worker taking a job). It joins a durable group that is open (and is then
    /// flushed with it); a durable write arriving at an open lazy group commits that group first.
    /// In a group a deferred write left open it returns at once, the group still open: the
    /// deferred write's [`Pending`] commits it.
    pub fn write_lazily<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        self.write_as(Mode::Lazy, f).map(|(value, _)| value)
    }

    fn write_as<T, E>(
        &self,
        mode: Mode,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<(T, Option<Pending>), E>
    where
        E: From<WriteError>,
    {
        let durable = mode != Mode::Lazy;
        let mut shared = self.lock();
        if shared.open && durable && !shared.durable {
            // A durable write cannot join a lazy group: the group commits first (lazily).
            if let Err(e) = shared.flush(&self.stats) {
                return Err(WriteError::Group(e).into());
            }
        }
        if !shared.open {
            shared.begin(durable).map_err(WriteError::from)?;
        }
        if let Err(e) = shared.conn.execute_batch("SAVEPOINT w") {
            let e = Arc::new(SqlError::from(e));
            shared.fail(e.clone());
            return Err(WriteError::Database(e).into());
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&shared.conn)));
        let value = match outcome {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => {
                shared.roll_back_write();
                self.settle(&mut shared);
                return Err(e);
            }
            Err(panic) => {
                shared.roll_back_write();
                self.settle(&mut shared);
                drop(shared);
                std::panic::resume_unwind(panic);
            }
        };
        if let Err(e) = shared.conn.execute_batch("RELEASE SAVEPOINT w") {
            let e = Arc::new(SqlError::from(e));
            shared.fail(e.clone());
            return Err(WriteError::Group(e).into());
        }
        let full = shared.pending.len() + 1 >= MAX_GROUP;
        if mode == Mode::Deferred && !full {
            let (sender, receiver) = sync_channel(1);
            shared.pending.push(sender);
            shared.linger = true;
            let pending = Pending {
                writer: Some(self.clone()),
                seq: shared.seq,
                receiver: Some(receiver),
            };
            return Ok((value, Some(pending)));
        }
        if mode == Mode::Lazy && shared.linger && !full {
            // The deferred write's `Pending` commits the group; a lazy write need not wait.
            shared.pending.push(sync_channel(1).0);
            return Ok((value, None));
        }
        if self.waiting() == 0 || full {
            shared.pending.push(sync_channel(1).0);
            return match shared.flush(&self.stats) {
                Ok(()) => Ok((value, None)),
                Err(e) => Err(WriteError::Group(e).into()),
            };
        }
        // The next writer in line will commit the group, or hand it on.
        let (sender, receiver): (_, Receiver<GroupResult>) = sync_channel(1);
        shared.pending.push(sender);
        drop(shared);
        match receiver.recv() {
            Ok(Ok(())) => Ok((value, None)),
            Ok(Err(e)) => Err(WriteError::Group(e).into()),
            Err(_) => Err(WriteError::Closed.into()),
        }
    }

    /// After a write was taken back: commits the group the writes before it made, unless a
    /// writer in line will.
    fn settle(&self, shared: &mut Shared) {
        if self.waiting() == 0 {
            let _ = shared.flush(&self.stats);
        }
    }
}

/// How a write commits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Flushed to disk before the writer returns.
    Durable,
    /// Committed before the writer returns, flushed with the next durable group.
    Lazy,
    /// Durable, but the writer returns before its group commits (see [`Pending`]).
    Deferred,
}

/// A deferred write whose group may not have committed yet (see [`Writer::write_deferred`]).
/// Dropping it commits the group (if still open) and waits for it.
pub struct Pending {
    /// The writer whose group holds the write (none once it is known to have committed).
    writer: Option<Writer>,
    /// The group holding the write.
    seq: u64,
    /// Learns the group's fate; `None` once learnt.
    receiver: Option<Receiver<GroupResult>>,
}

impl Pending {
    /// A write already committed (a database without group commit).
    pub fn committed() -> Pending {
        Pending {
            writer: None,
            seq: 0,
            receiver: None,
        }
    }

    /// Waits up to `grace` for another write to commit the group holding this one, then
    /// commits it, and returns once it is durable, or with the error that kept it from
    /// committing (the write is then lost with its group).
    pub fn settle(mut self, grace: Duration) -> Result<(), WriteError> {
        self.wait(grace)
    }

    fn wait(&mut self, grace: Duration) -> Result<(), WriteError> {
        let Some(receiver) = self.receiver.take() else {
            return Ok(());
        };
        let learnt = match receiver.recv_timeout(grace) {
            Ok(result) => Ok(result),
            Err(RecvTimeoutError::Disconnected) => Err(WriteError::Closed),
            Err(RecvTimeoutError::Timeout) => {
                if let Some(writer) = &self.writer {
                    let mut shared = writer.lock();
                    // This write's group, if still open, is ours to commit. Another open group
                    // is committed too when nobody else is in line: a writer may have handed it
                    // to us.
                    if shared.open && (shared.seq == self.seq || writer.waiting() == 0) {
                        let _ = shared.flush(&writer.stats);
                    }
                }
                receiver.recv().map_err(|_| WriteError::Closed)
            }
        };
        match learnt? {
            Ok(()) => Ok(()),
            Err(e) => Err(WriteError::Group(e)),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let _ = self.wait(Duration::ZERO);
    }
}
