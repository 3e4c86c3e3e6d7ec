//! Boundary: audit log. A verifiable record of everything that happened in the room.
//!
//! - `entry.rs`: events and their canonical serialization;
//! - `merkle.rs`: RFC 6962 hashing, inclusion and consistency proofs;
//! - `note.rs`: signed notes (checkpoints, receipts);
//! - `log.rs`: the durable log in the room's database, with signed checkpoints;
//! - `verify.rs`: the offline verifier the security team runs on an export.

pub mod entry;
pub mod log;
pub mod merkle;
pub mod note;
pub mod verify;
