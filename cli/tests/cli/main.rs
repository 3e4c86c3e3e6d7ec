//! The `strongroom` binary, run as a user runs it: each command's main path and main errors (exit
//! status, a one-line message, nothing half-written), and the process-level guarantees (a killed
//! writer, an interrupted seal, a killed job, memory bounds), and query modules written in Python
//! and JavaScript. One test binary for them all.

mod audit_crash;
mod both_ways;
mod commands;
mod demo_serve;
mod interrupted_seal;
mod object_storage;
mod on_spark;
mod other_languages;
mod seal_memory;
mod service_process;
mod shared_nodes;
