//! # strongroom-verify: checking a room's proofs without trusting the room
//!
//! Everything an auditor, a bank's security team or a partner needs offline, and nothing else:
//!
//! - [`merkle`]: RFC 6962 leaf and node hashes, inclusion and consistency proofs;
//! - [`note`]: C2SP signed notes and the keys that verify them;
//! - [`checkpoint`]: the signed tree heads of the audit log;
//! - [`canonical`]: the canonical JSON an audit entry's leaf hash covers;
//! - [`event`]: every event the room records, typed;
//! - [`export`]: the log verifier, which names the first bad entry of an export;
//! - [`receipt`]: a partner's receipt and its inclusion in the log;
//! - [`room_keys`]: parsing the room's published public keys (`room.pub`).
//!
//! The crate has no I/O, no async runtime and no C code, so it builds for
//! `wasm32-unknown-unknown`: the web console verifies the log in the browser with it. The
//! verification rules are ours to own and are tested against published vectors
//! (tests/vectors in the repository).
#![forbid(unsafe_code)]

pub mod canonical;
pub mod checkpoint;
pub mod event;
pub mod export;
pub mod merkle;
pub mod note;
pub mod receipt;
pub mod room_keys;

pub use checkpoint::Checkpoint;
pub use event::Event;
pub use export::{Verified, VerifyError, verify_export};
pub use note::{Note, NoteError, Verifier};
pub use receipt::{LogPosition, Receipt, ReceiptError};
pub use room_keys::RoomPublicKeys;
