//! Per-run limits. Defaults live here; a bank's policy may lower or raise them per grant.

use std::time::Duration;

/// Hard limits for one run of a module.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// Fuel (roughly, WebAssembly instructions) for each isolation unit in isolated mode.
    /// Modules the bank reviewed (batched and table mode) run on an engine without fuel, bounded
    /// by their wall-clock limits.
    pub fuel_per_entity: u64,
    /// Wall-clock deadline for a table-mode run, enforced by epoch interruption.
    pub deadline: Duration,
    /// Wall-clock deadline for each isolation unit (isolated mode), each customer of a batched
    /// version 0.1 call, and a whole batched version 0.2 call; a unit past it fails alone, and a
    /// batch past it reruns one customer per instance.
    pub unit_deadline: Duration,
    /// Linear memory, summed over all memories of an instance, in bytes.
    pub max_memory_bytes: usize,
    /// Table elements, summed over all tables of an instance.
    pub max_table_elements: usize,
    /// Core instances one component may create.
    pub max_instances: usize,
    /// Tables one component may create.
    pub max_tables: usize,
    /// Memories one component may create.
    pub max_memories: usize,
    /// Bytes a guest may pass to the host in one call.
    pub max_hostcall_bytes: usize,
    /// Contributions per isolation unit (isolated) or per run (table).
    pub max_contributions_per_entity: u64,
    /// Contributions per run in table mode.
    pub max_contributions_per_table_run: u64,
    /// Captured bytes of stdout and of stderr, each, per run (kept for the bank's eyes only).
    pub max_output_bytes: usize,
    /// Rows the host returns for one `read` call.
    pub max_batch_rows: u32,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            fuel_per_entity: 20_000_000,
            deadline: Duration::from_secs(600),
            unit_deadline: Duration::from_secs(1),
            max_memory_bytes: 64 << 20,
            max_table_elements: 20_000,
            max_instances: 64,
            max_tables: 8,
            max_memories: 4,
            max_hostcall_bytes: 16 << 20,
            max_contributions_per_entity: 10_000,
            max_contributions_per_table_run: 500_000_000,
            max_output_bytes: 64 << 10,
            max_batch_rows: 1 << 16,
        }
    }
}
