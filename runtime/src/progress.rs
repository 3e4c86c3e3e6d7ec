//! How far a run has come: customers run and chunks read, for the bank's terminal and the
//! bank's view of a job. Never part of anything a partner sees (the partner's view is
//! `room::partner_view`, which has no progress).

use std::sync::atomic::{AtomicU64, Ordering};

pub use strongroom_api::RunProgress;

/// A run's progress, updated as it goes (shared with whoever watches it).
#[derive(Debug, Default)]
pub struct Progress {
    customers_done: AtomicU64,
    customers: AtomicU64,
    chunks_read: AtomicU64,
    chunks: AtomicU64,
}

impl Progress {
    /// Sets how many customers the run has, and how many chunks it will read.
    pub fn plan(&self, customers: u64, chunks: u64) {
        self.customers.store(customers, Ordering::Relaxed);
        self.chunks.store(chunks, Ordering::Relaxed);
    }

    /// `n` more customers ran.
    pub fn customers_ran(&self, n: u64) {
        self.customers_done.fetch_add(n, Ordering::Relaxed);
    }

    /// One more chunk was read and authenticated.
    pub fn chunk_read(&self) {
        self.chunks_read.fetch_add(1, Ordering::Relaxed);
    }

    /// Where the run is now.
    pub fn snapshot(&self) -> RunProgress {
        RunProgress {
            customers_done: self.customers_done.load(Ordering::Relaxed),
            customers: self.customers.load(Ordering::Relaxed),
            chunks_read: self.chunks_read.load(Ordering::Relaxed),
            chunks: self.chunks.load(Ordering::Relaxed),
        }
    }
}
