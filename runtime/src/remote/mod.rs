//! Boundary: partitions that run outside the room's process, on an engine the bank already runs
//! (Spark, or plain processes), under a worker contract no engine owns (docs/deploy.md).
//!
//! The room that coordinates a job alone charges, merges, adds noise and writes the log. It hands
//! each partition (a range of entities, so a range of the sealed file's chunks) to a worker as a
//! [`spec::PartitionSpec`] and a one-time token; the worker obtains the dataset key from the
//! coordinator, wrapped to an ephemeral key of its own ([`key_release`]), runs the partition with
//! the same code as a local run, and answers with an [`envelope`]: the canonical partial, bound
//! to its spec by a MAC only the coordinator can check. Workers are pure: a retried or duplicated
//! attempt is harmless, and the coordinator accepts exactly one valid partial per partition.
//!
//! - `spec.rs`: what a worker is asked to do, as JSON;
//! - `envelope.rs`: what a worker answers, and its MAC;
//! - `key_release.rs`: the token and key exchange between a worker and its coordinator;
//! - `worker.rs`: `strongroom worker`, one partition;
//! - `coordinator.rs`: plans a run's partitions, releases keys, checks and merges the answers;
//! - `engine.rs`: where workers run: local processes, or a Spark cluster through `spark-submit`.

pub mod coordinator;
pub mod engine;
pub mod envelope;
pub mod key_release;
pub mod spec;
pub mod worker;
