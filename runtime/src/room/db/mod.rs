//! The room's database: SQLite embedded in the room (the default), or PostgreSQL shared by
//! several API nodes (`[database]` in room.toml, docs/deploy.md). Every statement of the room
//! is written once, in the SQL both run, and runs through [`Conn`] (see [`sql`]); the schema is
//! migrated from `runtime/migrations/` (SQLite) and `runtime/migrations/postgres/`, embedded in
//! the binary.
//!
//! Writes, and the reads a job makes on its way, run whole on the calling thread:
//! - On SQLite (WAL, `synchronous = FULL`), writes go through the one writing connection, which
//!   commits them in groups (see [`crate::group_commit`]); reads use a few connections kept open
//!   for them.
//! - On PostgreSQL, each write is a transaction that first takes the room's write lock (a
//!   transaction-scoped advisory lock), so writes from every node are serialized as SQLite's one
//!   writer serializes them: two charges racing for the last of a budget, or two nodes claiming
//!   one job, cannot both pass, and the audit log grows one entry after another. Each read is a
//!   read-only transaction that sees the database as committed when it starts.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::group_commit::{WriteError, Writer};

pub mod postgres;
pub mod sql;

pub use sql::{Conn, OptionalExtension, Row, SqlError, ToValue};

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
    /// The database is not one a room can use.
    #[error("{0}")]
    Unusable(String),
}

/// Where a room's database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL (`postgres://user@host:port/database`).
    Postgres(String),
}

/// The room's database (cheap to clone: clones share it).
#[derive(Clone)]
pub struct Db(Backend);

#[derive(Clone)]
enum Backend {
    Sqlite {
        writer: Writer,
        readers: Arc<Readers>,
    },
    Postgres(postgres::Postgres),
}

/// Read connections, opened when none is free and kept (up to [`KEPT_READERS`]).
struct Readers {
    path: PathBuf,
    free: Mutex<Vec<Connection>>,
}

/// Creates (if needed) the database at `location` and applies migrations: for a new room.
pub async fn open(location: &Location) -> Result<Db, OpenError> {
    connect(location, true).await
}

/// Opens the existing database at `location` (never creating a SQLite file) and applies
/// migrations.
pub async fn open_existing(location: &Location) -> Result<Db, OpenError> {
    connect(location, false).await
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

async fn connect(location: &Location, create: bool) -> Result<Db, OpenError> {
    let path = match location {
        Location::Sqlite(path) => path,
        Location::Postgres(url) => {
            return Ok(Db(Backend::Postgres(postgres::Postgres::open(url).await?)));
        }
    };
    let options = options(path)?.create_if_missing(create);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    pool.close().await;
    Ok(Db(Backend::Sqlite {
        writer: Writer::open(path)?,
        readers: Arc::new(Readers {
            path: path.to_path_buf(),
            free: Mutex::new(Vec::new()),
        }),
    }))
}

impl Db {
    /// Whether this is PostgreSQL (shared by several nodes) rather than SQLite (one process).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Backend::Postgres(_))
    }

    /// SQLite's one writing connection in this process (none on PostgreSQL).
    pub fn sqlite_writer(&self) -> Option<&Writer> {
        match &self.0 {
            Backend::Sqlite { writer, .. } => Some(writer),
            Backend::Postgres(_) => None,
        }
    }

    /// Runs `f` as one write, on this thread; from inside the async runtime's worker threads,
    /// without holding up the tasks queued on this one. Returns once it is durable; an error
    /// from `f` (or a panic) takes back everything it did.
    pub fn write<T, E>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        match &self.0 {
            Backend::Sqlite { writer, .. } => {
                blocking(|| writer.write(|conn| f(&Conn::sqlite(conn))))
            }
            Backend::Postgres(pg) => blocking(|| pg.write(true, f)),
        }
    }

    /// Runs `f` as one write whose commit may come later (see [`Writer::write_deferred`]; on
    /// PostgreSQL it has committed when this returns).
    pub fn write_deferred<T, E>(
        &self,
        f: impl FnOnce(&Conn<'_>) -> Result<T, E>,
    ) -> Result<(T, crate::group_commit::Pending), E>
    where
        E: From<WriteError>,
    {
        match &self.0 {
            Backend::Sqlite { writer, .. } => {
                blocking(|| writer.write_deferred(|conn| f(&Conn::sqlite(conn))))
            }
            Backend::Postgres(pg) => blocking(|| {
                pg.write(true, f)
                    .map(|v| (v, crate::group_commit::Pending::committed()))
            }),
        }
    }

    /// Runs `f` as one write that need not reach the disk before it returns (see
    /// [`Writer::write_lazily`]; on PostgreSQL, `synchronous_commit = off`): for a change a
    /// restart can make again and that no audit entry records.
    pub fn write_lazily<T, E>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        match &self.0 {
            Backend::Sqlite { writer, .. } => {
                blocking(|| writer.write_lazily(|conn| f(&Conn::sqlite(conn))))
            }
            Backend::Postgres(pg) => blocking(|| pg.write(false, f)),
        }
    }

    /// Runs `f` on a read connection, on this thread. Each read sees the database as committed
    /// when it starts.
    pub fn read<T, E>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        let (path, free) = match &self.0 {
            Backend::Sqlite { readers, .. } => (&readers.path, &readers.free),
            Backend::Postgres(pg) => return blocking(|| pg.read(f)),
        };
        blocking(|| {
            let taken = free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let conn = match taken {
                Some(conn) => conn,
                None => {
                    let conn =
                        crate::group_commit::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
                            .map_err(WriteError::from)?;
                    conn.pragma_update(None, "query_only", "ON")
                        .map_err(WriteError::from)?;
                    conn
                }
            };
            let out = f(&Conn::sqlite(&conn));
            let mut free = free
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
