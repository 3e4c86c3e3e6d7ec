//! The room's database on PostgreSQL, shared by every API node of the room.
//!
//! Each write is one transaction that first takes the room's write lock
//! (`pg_advisory_xact_lock(WRITE_LOCK)`, released with the commit), so the writes of every
//! node are serialized exactly as SQLite's one writer serializes a single process's: the ledger
//! reads what is spent and charges under the lock, a job is claimed by one node, and the audit
//! log's entries and frontier grow one write after another. Reads take no lock: each is a
//! read-only `REPEATABLE READ` transaction, a snapshot of what was committed when it began.
//!
//! The database must sort text by code point (`C` collation), as SQLite does, so that every
//! listing comes out in the same order on both; the room refuses another.

use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{Conn, OpenError};
use crate::group_commit::WriteError;

/// The advisory lock every write of a room takes first: ASCII "strongrm".
pub const WRITE_LOCK: i64 = 0x7374_726f_6e67_726d;

/// Connections a node keeps to the database, at most.
pub const MAX_CONNECTIONS: u32 = 16;

/// Collations that sort text by code point, as SQLite does.
const CODE_POINT_COLLATIONS: &[&str] = &["C", "POSIX", "C.UTF-8", "C.utf8"];

/// A room's PostgreSQL database (cheap to clone: clones share the pool).
#[derive(Clone)]
pub struct Postgres {
    pool: PgPool,
    /// The runtime that drives the statements; they are run from threads that are not
    /// themselves driving it (see [`super::blocking`]).
    handle: tokio::runtime::Handle,
}

fn unusable(what: &str, e: impl std::fmt::Display) -> OpenError {
    OpenError::Unusable(format!("{what}: {e}"))
}

impl Postgres {
    /// Connects to the database at `url`, checks its collation and applies the migrations
    /// (concurrent nodes take turns: sqlx holds an advisory lock while it migrates).
    pub async fn open(url: &str) -> Result<Postgres, OpenError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| unusable("the [database] url is not a PostgreSQL URL", e))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| unusable("cannot reach the room's PostgreSQL database", e))?;
        let collation: String = sqlx::query_scalar(
            "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&pool)
        .await?;
        if !CODE_POINT_COLLATIONS.contains(&collation.as_str()) {
            return Err(OpenError::Unusable(format!(
                "the room's PostgreSQL database sorts text by collation '{collation}'; a room needs \
                 'C' (CREATE DATABASE ... TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C')"
            )));
        }
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Postgres {
            pool,
            handle: tokio::runtime::Handle::current(),
        })
    }

    /// Runs `f` as one write: a transaction holding the room's write lock, committed (flushed
    /// to disk first when `durable`) before this returns. An error from `f`, or a panic, rolls
    /// it back.
    pub fn write<T, E>(
        &self,
        durable: bool,
        f: impl FnOnce(&Conn<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        let h = &self.handle;
        let failed = |e: sqlx::Error| WriteError::from(super::SqlError::from(e));
        let mut tx = h.block_on(self.pool.begin()).map_err(failed)?;
        if !durable {
            h.block_on(sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx))
                .map_err(failed)?;
        }
        h.block_on(
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(WRITE_LOCK)
                .execute(&mut *tx),
        )
        .map_err(failed)?;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| f(&Conn::postgres(&mut tx, h))));
        match outcome {
            Ok(Ok(value)) => {
                h.block_on(tx.commit())
                    .map_err(|e| WriteError::Group(Arc::new(e.into())))?;
                Ok(value)
            }
            Ok(Err(e)) => {
                let _ = h.block_on(tx.rollback());
                Err(e)
            }
            Err(panic) => {
                let _ = h.block_on(tx.rollback());
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Runs `f` in a read-only snapshot of what is committed now.
    pub fn read<T, E>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<WriteError>,
    {
        let h = &self.handle;
        let failed = |e: sqlx::Error| WriteError::from(super::SqlError::from(e));
        let mut tx = h.block_on(self.pool.begin()).map_err(failed)?;
        h.block_on(
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx),
        )
        .map_err(failed)?;
        let out = f(&Conn::postgres(&mut tx, h));
        let _ = h.block_on(tx.rollback());
        out
    }
}
