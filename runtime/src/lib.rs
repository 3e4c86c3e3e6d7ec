//! # Strongroom: the trusted host
//!
//! The room's runtime: everything here is trusted, everything a partner uploads is not. The module
//! tree follows the trust boundaries of docs/threat-model.md:
//!
//! - [`guest_boundary`]: the WIT contract's host side, vetting, the sandbox and its limits;
//! - [`dataset`]: the columnar, entity-grouped view of data that runs read (entity keys and
//!   identifiers stay here, host-side);
//! - [`output_gate`]: bounded, exact aggregation of guest contributions, exact discrete noise,
//!   thresholds, the privacy ledger and signed receipts: the only way out;
//! - [`audit_log`]: signed notes (checkpoints, receipts);
//! - [`room`]: a room on disk: keys, policies, its database, jobs;
//! - [`cli`]: the `strongroom` command.
#![deny(unsafe_code)]

pub mod audit_log;
pub mod cli;
pub mod data_at_rest;
pub mod dataset;
pub mod guest_boundary;
pub mod output_gate;
pub mod room;
pub mod service;
