//! The room's embedded database: SQLite in WAL mode with `synchronous = FULL`, so a write is on
//! disk before it is acknowledged or any reader sees it (a worker's claim on a job is the one
//! write that is not flushed on its own, see [`crate::group_commit`]). Migrations live in `runtime/migrations/` and are embedded in
//! the binary. The statements are plain SQL that PostgreSQL also runs.
//!
//! Writes, and the reads a job makes on its way, run whole on the calling thread (rusqlite):
//! writes on the one writing connection, which commits them in groups (see
//! [`crate::group_commit`]), reads on a few connections kept open for them. The listings the
//! service answers with read through sqlx's pool.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::group_commit::{WriteError, Writer};

/// Read connections kept open beside the writer, at most.
const KEPT_READERS: usize = 8;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The pool or a migration failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The writing connection failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// The room's database: the pool that lists, the one writer, and the connections a job reads on
/// (cheap to clone: clones share them).
#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
    writer: Writer,
    readers: Arc<Readers>,
}

/// Read connections, opened when none is free and kept (up to [`KEPT_READERS`]).
struct Readers {
    path: PathBuf,
    free: Mutex<Vec<Connection>>,
}

/// Creates (if needed) the database at `path` and applies migrations: for a new room.
pub async fn open(path: &Path) -> Result<Db, OpenError> {
    connect(path, true).await
}

/// Opens the existing database at `path` (never creating one) and applies migrations.
pub async fn open_existing(path: &Path) -> Result<Db, OpenError> {
    connect(path, false).await
}

/// The room database's connection settings for sqlx: the same as [`crate::group_commit::connect`].
fn options(path: &Path) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true),
    )
}

async fn connect(path: &Path, create: bool) -> Result<Db, OpenError> {
    let options = options(path)?.create_if_missing(create);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(Db {
        pool,
        writer: Writer::open(path)?,
        readers: Arc::new(Readers {
            path: path.to_path_buf(),
            free: Mutex::new(Vec::new()),
        }),
    })
}

impl Db {
    /// The pool, for listings.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The one writing connection in this process: every write goes through it.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Runs `f` as one write (see [`Writer::write`]), on this thread; from inside the async
    /// runtime's worker threads, without holding up the tasks queued on this one.
    pub fn write<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        blocking(|| self.writer.write(f))
    }

    /// Runs `f` as one write whose group commits later (see [`Writer::write_deferred`]).
    pub fn write_deferred<T, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<(T, crate::group_commit::Pending), E>
    where
        E: From<WriteError>,
    {
        blocking(|| self.writer.write_deferred(f))
    }

    /// Runs `f` as one write that need not reach the disk before it returns (see
    /// [`Writer::write_lazily`]): for a change a restart can make again and that no audit entry
    /// records.
    pub fn write_lazily<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        blocking(|| self.writer.write_lazily(f))
    }

    /// Runs `f` on a read connection, on this thread. Each read sees the database as committed
    /// when it starts.
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        blocking(|| {
            let taken = self
                .readers
                .free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let conn = match taken {
                Some(conn) => conn,
                None => {
                    let conn = crate::group_commit::connect(
                        &self.readers.path,
                        OpenFlags::SQLITE_OPEN_READ_WRITE,
                    )
                    .map_err(WriteError::from)?;
                    conn.pragma_update(None, "query_only", "ON")
                        .map_err(WriteError::from)?;
                    conn
                }
            };
            let out = f(&conn);
            let mut free = self
                .readers
                .free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if free.len() < KEPT_READERS {
                free.push(conn);
            }
            out
        })
    }
}

/// Runs `f`, which blocks on the database, on this thread: on a worker thread of a
/// multi-threaded runtime through `block_in_place` (so the tasks queued on it move elsewhere),
/// anywhere else (a current-thread runtime, a plain thread) directly.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A time as RFC 3339 UTC with second precision.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}
