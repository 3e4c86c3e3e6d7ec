//! # strongroom: the room
//!
//! The trusted core of a room: everything here is trusted, everything a partner uploads is not.
//! It has no command line and no HTTP server (those are `strongroom-cli` and `strongroom-server`),
//! and its offline proofs are checked by `strongroom-verify`. The module tree follows the trust
//! boundaries of docs/threat-model.md:
//!
//! - [`guest_boundary`]: the WIT contract's host side, vetting, the sandbox and its limits;
//! - [`dataset`]: the columnar, entity-grouped view of data that runs read (entity keys and
//!   identifiers stay here, host-side);
//! - [`data_at_rest`]: sealing and opening datasets, checking every byte before it is trusted;
//! - [`output_gate`]: bounded, exact aggregation of guest contributions, exact discrete noise,
//!   thresholds and the privacy ledger: the only way out;
//! - [`audit_log`]: the durable, signed log of everything that happened;
//! - [`keys`]: the room's key pairs, encrypted at rest under the operator's secret;
//! - [`room`]: a room on disk: policies, its database, jobs;
//! - [`remote`]: a job's partitions run by workers on an engine the bank runs (Spark,
//!   processes), under a worker contract of our own: key release, MACed answers, collection.
//!
//! Below them all: [`clock`], [`group_commit`] (the one writing connection), [`private_files`],
//! [`progress`] (how far a run has come, for the bank) and [`toml_text`]. Each boundary imports only those below it.
#![deny(unsafe_code)]

pub mod audit_log;
pub mod clock;
pub mod data_at_rest;
pub mod dataset;
pub mod group_commit;
pub mod guest_boundary;
pub mod keys;
pub mod output_gate;
pub mod private_files;
pub mod progress;
pub mod remote;
pub mod room;
pub mod toml_text;
