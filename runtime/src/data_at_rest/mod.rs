//! Boundary: data at rest. A bank seals a dataset to the room's public key on its own machine;
//! only the room can open it, and any tampering is detected before a single row is used.
//!
//! - `format.rs`: the sealed-dataset layout (docs/formats/sealed-dataset.md), nonces and AAD;
//! - `seal.rs`: sealing (HPKE-wrapped data key, AES-256-GCM chunks of Arrow IPC batches);
//! - `open.rs`: inspecting without the key, and opening with it, chunk by chunk, in parallel;
//! - `stream.rs`: reading a sealed dataset window by window, in bounded memory, decrypting into
//!   `plain_buffer.rs` (kept out of core dumps, locked where allowed, cleared after each chunk);
//! - `party.rs`: the sealing party's signing key;
//! - `blob.rs`: where a sealed file's bytes lie (a file, or an object in object storage), read
//!   by byte ranges; `storage.rs`: the bank's object storage (`[storage]` in room.toml).

pub mod blob;
pub mod format;
pub mod open;
pub mod party;
mod plain_buffer;
pub mod seal;
pub mod spill;
pub mod storage;
pub mod stream;
