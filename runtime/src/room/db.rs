//! The room's embedded database: SQLite through sqlx, in WAL mode with `synchronous = FULL`, so a
//! write is on disk before it is acknowledged. Migrations live in `runtime/migrations/` and are
//! embedded in the binary. The statements are plain SQL that PostgreSQL also runs.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;

use crate::group_commit::Writer;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Creates (if needed) the database at `path` and applies migrations: for a new room.
pub async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    connect(path, true).await
}

/// Opens the existing database at `path` (never creating one) and applies migrations.
pub async fn open_existing(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    connect(path, false).await
}

/// The room database's connection settings: WAL, every commit flushed to disk, foreign keys
/// enforced, and 30 s of patience with another process's lock.
fn options(path: &Path) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true),
    )
}

async fn connect(path: &Path, create: bool) -> Result<SqlitePool, sqlx::Error> {
    let options = options(path)?.create_if_missing(create);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

/// The room's one writing connection in this process (see [`crate::group_commit`]). Writers
/// queue for it in order, each starting the moment the previous one is done, instead of retrying
/// in SQLite's busy handler (which sleeps up to 100 ms between tries: that sleep was the long tail
/// of a submit behind the workers' commits), and their commits share disk flushes. Other
/// processes on the same room (a CLI beside `serve`) still meet at SQLite's lock.
pub async fn writer(path: &Path) -> Result<Writer, sqlx::Error> {
    Writer::connect(options(path)?.create_if_missing(false)).await
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
