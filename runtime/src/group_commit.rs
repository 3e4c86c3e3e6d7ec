//! The room's one writing connection, committing writes in groups.
//!
//! Every write in a process goes through [`Writer::begin`]. Writers take the connection in the
//! order they asked for it (a fair lock), so each starts the moment the one before it is done,
//! instead of sleeping in SQLite's busy handler. A write is a savepoint inside a transaction that
//! the writers share: [`WriteTx::commit`] releases the savepoint and, when no other writer is
//! waiting (or the group is full), commits the shared transaction, one disk flush for the whole
//! group. A writer whose group another will commit waits for that commit: no writer returns
//! before its write is durable, and when the commit fails every writer in the group gets the
//! error and none of their writes is kept.
//!
//! A write dropped without committing rolls back to its savepoint, so the writes before it in
//! the group stand. Whoever lets go of the connection with the shared transaction open makes
//! sure someone will commit it: the next writer in line, or, when nobody is in line, a task
//! spawned to commit what is there. Readers (other connections) see a group only once it is
//! committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

/// The most writes one shared transaction takes before it commits, however many are waiting.
pub const MAX_GROUP: usize = 64;

/// What the writers of a group learn from its commit.
type GroupResult = Result<(), Arc<sqlx::Error>>;

/// The connection and the shared transaction's state, behind the fair lock.
struct Shared {
    conn: SqliteConnection,
    /// The shared transaction is open.
    open: bool,
    /// A write was dropped: its savepoint is still there, to be rolled back.
    abandoned: bool,
    /// The writers waiting for the shared transaction to commit.
    pending: Vec<oneshot::Sender<GroupResult>>,
}

/// The one writing connection (cheap to clone: clones share it).
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Mutex<Shared>>,
    /// Writers waiting for the lock.
    waiting: Arc<AtomicUsize>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    groups: AtomicU64,
    writes: AtomicU64,
}

/// One write: a savepoint in the shared transaction, on the connection it derefs to.
pub struct WriteTx {
    guard: OwnedMutexGuard<Shared>,
    writer: Writer,
    /// The savepoint exists (begun, neither released nor rolled back).
    savepoint: bool,
}

/// Counts a writer in line for the lock until it gets it (or stops waiting).
struct InLine {
    writer: Writer,
    served: bool,
}

impl Drop for InLine {
    fn drop(&mut self) {
        let left = self.writer.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
        // The last writer in line gave up: the one before it may have left a group to commit.
        if !self.served && left == 0 {
            self.writer.spawn_settle();
        }
    }
}

/// Runs one statement. (Boxed with a named lifetime: a spawned task's future must be `Send` for
/// every lifetime, which sqlx's generic executor future cannot show the compiler otherwise.)
fn run<'c>(
    conn: &'c mut SqliteConnection,
    sql: &'static str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>> {
    Box::pin(async move { sqlx::query(sql).execute(conn).await.map(|_| ()) })
}

impl Shared {
    /// Rolls back a dropped write's savepoint; on failure abandons the whole group.
    async fn clear_abandoned(&mut self) -> Result<(), Arc<sqlx::Error>> {
        if !self.abandoned {
            return Ok(());
        }
        self.abandoned = false;
        let rolled_back = match run(&mut self.conn, "ROLLBACK TO SAVEPOINT w").await {
            Ok(()) => run(&mut self.conn, "RELEASE SAVEPOINT w").await,
            Err(e) => Err(e),
        };
        if let Err(e) = rolled_back {
            let e = Arc::new(e);
            self.fail(e.clone()).await;
            return Err(e);
        }
        Ok(())
    }

    /// Rolls the shared transaction back and tells its writers why.
    async fn fail(&mut self, e: Arc<sqlx::Error>) {
        let _ = run(&mut self.conn, "ROLLBACK").await;
        self.open = false;
        for waiter in self.pending.drain(..) {
            let _ = waiter.send(Err(e.clone()));
        }
    }

    /// Commits the shared transaction (if open) and tells its writers.
    async fn flush(&mut self, stats: &Stats) -> GroupResult {
        self.clear_abandoned().await?;
        if !self.open {
            return Ok(());
        }
        match run(&mut self.conn, "COMMIT").await {
            Ok(()) => {
                self.open = false;
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
                let e = Arc::new(e);
                self.fail(e.clone()).await;
                Err(e)
            }
        }
    }
}

/// The error a writer gets when its group's commit failed (the first error, shared).
fn group_error(e: Arc<sqlx::Error>) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(e))
}

impl Writer {
    /// Connects the writing connection with `options` (the room's, never creating a database).
    pub async fn connect(options: SqliteConnectOptions) -> Result<Writer, sqlx::Error> {
        let conn = options.connect().await?;
        Ok(Writer {
            shared: Arc::new(Mutex::new(Shared {
                conn,
                open: false,
                abandoned: false,
                pending: Vec::new(),
            })),
            waiting: Arc::new(AtomicUsize::new(0)),
            stats: Arc::default(),
        })
    }

    /// Begins a write: waits for the connection in turn, then opens a savepoint in the shared
    /// transaction (beginning it `IMMEDIATE` if none is open).
    pub async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let mut tx = self.lock().await;
        tx.guard.clear_abandoned().await.map_err(group_error)?;
        if !tx.guard.open {
            run(&mut tx.guard.conn, "BEGIN IMMEDIATE").await?;
            tx.guard.open = true;
        }
        run(&mut tx.guard.conn, "SAVEPOINT w").await?;
        tx.savepoint = true;
        Ok(tx)
    }

    /// Writers waiting for the connection now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Shared transactions committed, and the writes they held, since the writer connected.
    pub fn committed(&self) -> (u64, u64) {
        (
            self.stats.groups.load(Ordering::Relaxed),
            self.stats.writes.load(Ordering::Relaxed),
        )
    }

    async fn lock(&self) -> WriteTx {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut in_line = InLine {
            writer: self.clone(),
            served: false,
        };
        let guard = self.shared.clone().lock_owned().await;
        in_line.served = true;
        drop(in_line);
        WriteTx {
            guard,
            writer: self.clone(),
            savepoint: false,
        }
    }

    /// Commits, from a task of its own, whatever the shared transaction holds once the
    /// connection is free (nothing when it is not open).
    fn spawn_settle(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime: the process is ending, and no writer in the group has been told it
            // committed.
            return;
        };
        let writer = self.clone();
        runtime.spawn(async move {
            let mut tx = writer.lock().await;
            let _ = tx.guard.flush(&writer.stats).await;
        });
    }
}

impl WriteTx {
    /// Commits the write: returns once it is durable (with its group), or with the error that
    /// kept its group from committing.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        run(&mut self.guard.conn, "RELEASE SAVEPOINT w").await?;
        self.savepoint = false;
        let (sender, receiver) = oneshot::channel();
        self.guard.pending.push(sender);
        if self.writer.waiting() == 0 || self.guard.pending.len() >= MAX_GROUP {
            return self
                .guard
                .flush(&self.writer.stats)
                .await
                .map_err(group_error);
        }
        // The next writer in line will commit the group, or hand it on.
        drop(self);
        match receiver.await {
            Ok(result) => result.map_err(group_error),
            Err(_) => Err(sqlx::Error::Io(std::io::Error::other(
                "the room's writer closed before the write's group committed",
            ))),
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.savepoint {
            self.guard.abandoned = true;
        }
        if self.guard.open && self.writer.waiting() == 0 {
            self.writer.spawn_settle();
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.guard.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.guard.conn
    }
}
