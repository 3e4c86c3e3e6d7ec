//! Boundary: audit log. Signed notes (C2SP signed-note, Ed25519) are the format of the log's
//! checkpoints and of job receipts.

pub mod note;
