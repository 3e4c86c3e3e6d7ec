//! The `strongroom` binary, run as a user runs it: each command's main path and main errors (exit
//! status, a one-line message, nothing half-written), and the process-level guarantees (a killed
//! writer, an interrupted seal, a killed job, memory bounds). One test binary for them all.

mod audit_crash;
mod both_ways;
mod commands;
mod demo_serve;
mod interrupted_seal;
mod seal_memory;
mod service_process;
