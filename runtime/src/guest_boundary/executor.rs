//! Runs over partitions: an isolated-mode run is a set of [`Partition`]s (ranges of entity
//! ordinals), each run on its own into a [`Partial`], and the partials merge, in any order, into
//! the run's report. An [`Executor`] decides where partitions run; [`LocalPool`] runs them on a
//! pool of threads in this process.
//!
//! A partial is everything a partition's units produced: the exact, bounded aggregate of the
//! units that completed, the failures (the lowest entity ordinals in detail, a count per code),
//! fuel, peak memory and bounded output. Merging is exact and commutative for the aggregate and
//! the counts, and the failures kept are always the lowest ordinals, so a run's report does not
//! depend on which thread ran which partition, or in what order they finished.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use strongroom_contract::manifest::Manifest;

use super::outcome::Outcome;
use crate::output_gate::Aggregator;

/// Failure details a partial keeps (the lowest entity ordinals).
pub const MAX_FAILURE_DETAILS: usize = 16;

/// A range of entity ordinals, `first..end`, run as one piece of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// The first entity ordinal.
    pub first: u32,
    /// One past the last.
    pub end: u32,
}

impl Partition {
    /// Its entity ordinals.
    pub fn entities(&self) -> std::ops::Range<u32> {
        self.first..self.end
    }
}

/// The ordinals of `span` cut into partitions of `size` (the last may be shorter).
pub fn partitions(span: std::ops::Range<u32>, size: u32) -> Vec<Partition> {
    let size = size.max(1);
    let end = span.end;
    span.step_by(size as usize)
        .map(|first| Partition {
            first,
            end: first.saturating_add(size).min(end),
        })
        .collect()
}

/// What a set of units produced, ready to merge with another.
#[derive(Debug)]
pub struct Partial {
    /// The exact, bounded aggregate of the units that completed.
    pub aggregator: Aggregator,
    /// The failing units with the lowest ordinals: (entity, outcome, bank-side detail).
    pub first_failures: Vec<(u32, Outcome, String)>,
    /// Failed units by outcome code.
    pub failed_units: BTreeMap<&'static str, u64>,
    /// Units run.
    pub units: u64,
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// Most linear memory any one instance held, in bytes.
    pub peak_memory_bytes: u64,
    /// Captured stdout, at most the run's output cap.
    pub stdout: Vec<u8>,
    /// Captured stderr, at most the run's output cap.
    pub stderr: Vec<u8>,
    output_cap: usize,
}

impl Partial {
    /// An empty partial for a run of `manifest`, keeping at most `output_cap` bytes of output.
    pub fn new(manifest: &Manifest, output_cap: usize) -> Partial {
        Partial {
            aggregator: Aggregator::new(manifest),
            first_failures: Vec::new(),
            failed_units: BTreeMap::new(),
            units: 0,
            fuel_consumed: 0,
            peak_memory_bytes: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            output_cap,
        }
    }

    /// The most output bytes of each stream this partial keeps.
    pub fn output_cap(&self) -> usize {
        self.output_cap
    }

    /// Records a unit's failure.
    pub fn fail(&mut self, entity: u32, outcome: Outcome, detail: String) {
        *self.failed_units.entry(outcome.code()).or_default() += 1;
        self.first_failures.push((entity, outcome, detail));
        self.keep_lowest();
    }

    /// Adds a unit's output, up to the cap.
    pub fn output(&mut self, stdout: &[u8], stderr: &[u8]) {
        append_bounded(&mut self.stdout, stdout, self.output_cap);
        append_bounded(&mut self.stderr, stderr, self.output_cap);
    }

    /// Merges `other` into this one.
    pub fn merge(&mut self, other: Partial) {
        self.aggregator.merge(other.aggregator);
        self.first_failures.extend(other.first_failures);
        self.keep_lowest();
        for (code, n) in other.failed_units {
            *self.failed_units.entry(code).or_default() += n;
        }
        self.units += other.units;
        self.fuel_consumed += other.fuel_consumed;
        self.peak_memory_bytes = self.peak_memory_bytes.max(other.peak_memory_bytes);
        self.output(&other.stdout, &other.stderr);
    }

    fn keep_lowest(&mut self) {
        self.first_failures.sort_by_key(|f| f.0);
        self.first_failures.truncate(MAX_FAILURE_DETAILS);
    }
}

fn append_bounded(sink: &mut Vec<u8>, bytes: &[u8], cap: usize) {
    let room = cap.saturating_sub(sink.len());
    sink.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// The host itself failed while running partitions (a thread died): the run has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host fault: a worker thread failed")]
pub struct HostFault;

/// Where a run's partitions run.
pub trait Executor {
    /// Runs every partition with `run` and returns their partials, merged or not (the caller
    /// merges whatever comes back); fails if any partition's partial was lost.
    fn execute(
        &self,
        partitions: &[Partition],
        run: &(dyn Fn(Partition) -> Partial + Sync),
        empty: &(dyn Fn() -> Partial + Sync),
    ) -> Result<Vec<Partial>, HostFault>;
}

/// Runs partitions on `threads` threads of this process, each taking the next partition not yet
/// taken and folding its partials into one.
pub struct LocalPool {
    /// Threads to use (at least one).
    pub threads: usize,
}

impl Executor for LocalPool {
    fn execute(
        &self,
        partitions: &[Partition],
        run: &(dyn Fn(Partition) -> Partial + Sync),
        empty: &(dyn Fn() -> Partial + Sync),
    ) -> Result<Vec<Partial>, HostFault> {
        let threads = self.threads.max(1);
        let next = AtomicUsize::new(0);
        let folded: Vec<Partial> = thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut folded = empty();
                        while let Some(&partition) =
                            partitions.get(next.fetch_add(1, Ordering::Relaxed))
                        {
                            folded.merge(run(partition));
                        }
                        folded
                    })
                })
                .collect();
            workers.into_iter().filter_map(|w| w.join().ok()).collect()
        });
        if folded.len() != threads {
            return Err(HostFault);
        }
        Ok(folded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_every_entity_once() {
        for (span, size) in [
            (0..0, 64),
            (0..1, 64),
            (0..64, 64),
            (0..65, 64),
            (0..1000, 7),
            (0..5, 0),
            (130..260, 64),
            (7..8, 3),
        ] {
            let parts = partitions(span.clone(), size);
            let covered: Vec<u32> = parts.iter().flat_map(Partition::entities).collect();
            assert_eq!(covered, span.clone().collect::<Vec<_>>(), "{span:?}/{size}");
            assert!(parts.iter().all(|p| p.first < p.end));
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            name: "m".into(),
            version: "1".into(),
            mode: strongroom_contract::manifest::Mode::Isolated,
            max_groups_per_entity: 1,
            reads: Vec::new(),
            metrics: Vec::new(),
        }
    }

    #[test]
    fn the_failures_kept_are_the_lowest_ordinals_in_any_merge_order() {
        let m = manifest();
        let failing: Vec<u32> = (0..40).map(|i| (i * 37) % 101).collect();
        let mut expected: Vec<u32> = failing.clone();
        expected.sort_unstable();
        expected.truncate(MAX_FAILURE_DETAILS);
        for chunk in [1, 3, 16, 40] {
            // Partials of `chunk` failures each, merged last to first.
            let mut total = Partial::new(&m, 0);
            for piece in failing.chunks(chunk).rev() {
                let mut partial = Partial::new(&m, 0);
                for &e in piece {
                    partial.fail(e, Outcome::OutOfFuel, format!("entity {e}"));
                }
                total.merge(partial);
            }
            let kept: Vec<u32> = total.first_failures.iter().map(|f| f.0).collect();
            assert_eq!(kept, expected, "chunks of {chunk}");
            assert_eq!(total.failed_units.get("out_of_fuel"), Some(&40));
        }
    }

    #[test]
    fn a_pool_runs_every_partition_once() {
        let m = manifest();
        let parts = partitions(0..1000, 7);
        let partials = LocalPool { threads: 3 }
            .execute(
                &parts,
                &|p| {
                    let mut partial = Partial::new(&m, 0);
                    partial.units = u64::from(p.end - p.first);
                    partial.fuel_consumed = p.entities().map(u64::from).sum();
                    partial
                },
                &|| Partial::new(&m, 0),
            )
            .expect("no thread fails");
        assert_eq!(partials.len(), 3);
        assert_eq!(partials.iter().map(|p| p.units).sum::<u64>(), 1000);
        assert_eq!(
            partials.iter().map(|p| p.fuel_consumed).sum::<u64>(),
            (0..1000u64).sum::<u64>()
        );
    }

    #[test]
    fn a_thread_that_dies_is_a_host_fault() {
        let m = manifest();
        let parts = partitions(0..10, 1);
        let result = LocalPool { threads: 2 }.execute(
            &parts,
            &|p| {
                assert!(p.first != 5, "a host bug while running partition 5");
                Partial::new(&m, 0)
            },
            &|| Partial::new(&m, 0),
        );
        assert_eq!(result.err(), Some(HostFault));
    }

    #[test]
    fn output_stays_under_its_cap_however_it_merges() {
        let manifest = manifest();
        let mut a = Partial::new(&manifest, 10);
        a.output(b"123456", b"");
        let mut b = Partial::new(&manifest, 10);
        b.output(b"789012", b"abc");
        a.merge(b);
        assert_eq!(a.stdout, b"1234567890");
        assert_eq!(a.stderr, b"abc");
    }
}
