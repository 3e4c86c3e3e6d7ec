//! Strongroom's end-to-end and adversarial tests, in one test binary: each module is one area,
//! and every module links the room once.
//!
//! Two areas run in binaries of their own because they need the whole process: `hostile_input`
//! switches fault-injection points on, which are process-global, and `upload_memory` measures the
//! process's peak memory.

mod audience_matching;
mod audit_log;
mod cells_abi;
mod console;
mod console_sessions;
mod example_queries;
mod failpoint_crashes;
mod group_commit;
mod hostile_guests;
mod module_cache;
mod noise_samplers;
mod object_storage;
mod output_gate;
mod partials;
mod partitions_elsewhere;
mod partner_view;
mod sdk_checks;
mod sealed_data;
mod service_api;
mod shared_control_plane;
mod sql_queries;
mod toolchain_limits;
mod vetting;
