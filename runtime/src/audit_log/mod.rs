//! Boundary: audit log. A verifiable record of everything that happened in the room.
//!
//! - `event.rs`: what the room records, as typed events;
//! - `signer.rs`: the room's signing key, for checkpoints and receipts;
//! - `log.rs`: the durable log in the room's database, with signed checkpoints.
//!
//! Everything needed to check the log offline (Merkle proofs, signed notes, checkpoints, the
//! canonical entry form, the export verifier) is in the `strongroom-verify` crate, which an
//! auditor runs without this one.

pub mod log;
pub mod signer;
