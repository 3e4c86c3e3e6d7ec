//! The sandbox: one wasmtime engine configured for hostile guests, and the two ways a module runs.
//!
//! - Pooling allocator with copy-on-write memory images, and `InstancePre` (imports resolved once
//!   per module), so a fresh instance per isolation unit costs microseconds.
//! - Fuel and an epoch deadline, memory/table/instance limits through a `ResourceLimiter`, a wasm
//!   stack cap, and a cap on bytes a guest passes to the host per call.
//! - WebAssembly proposals we do not need are off; Spectre mitigations and guard regions are
//!   wasmtime's defaults.
//! - Every failure becomes a typed [`Outcome`]; nothing a guest does panics the host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
};

use super::cache::{CacheError, CacheStatus, ModuleCache};
use super::executor::{Executor, HostFault, LocalPool, Partial, Partition, partitions};
use super::freshness::{self, MemoryReset};
use super::host_api::{ColumnSlice, GuestState, Stop, column_values};
use super::outcome::Outcome;
use super::vetting::{Abi, VettedModule};
use super::wasi::{self, CapturedOutput};
use super::{RunContext, RunLimits};
use crate::dataset::Dataset;
use crate::output_gate::{Aggregate, Aggregator, BoundingStats, CellColumns, EntityContributions};
use crate::progress::Progress;
use strongroom_contract::host::{v0_1, v0_2};
use strongroom_contract::manifest::Mode;

/// Engine-wide settings: they size the instance pool, so they are fixed when the room starts.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Largest linear memory any single memory may reach (a run's limit may be lower).
    pub max_memory_per_memory: usize,
    /// Largest table.
    pub max_table_elements: usize,
    /// Instances alive at once across all runs (pool size).
    pub max_concurrent_instances: u32,
    /// Wasm stack per instance.
    pub max_wasm_stack: usize,
    /// Bytes of a memory or table slot kept resident between instances (reset in place).
    pub keep_resident_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_memory_per_memory: 256 << 20,
            max_table_elements: 100_000,
            max_concurrent_instances: 64,
            max_wasm_stack: 512 << 10,
            keep_resident_bytes: 1 << 20,
        }
    }
}

const EPOCH_TICK: Duration = Duration::from_millis(10);

struct EpochTicker {
    ticks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Why a vetted module could not be made ready to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// The compiled-module cache failed (its disk, or compiling on a miss).
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The engine could not compile the component.
    #[error("compiling the module failed: {0}")]
    Compile(String),
    /// The component does not link against the world (a vetted module always does).
    #[error("linking the module failed: {0}")]
    Link(String),
}

/// How an engine bounds a guest's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metering {
    /// Fuel and a wall-clock deadline: isolated mode, where any module runs unreviewed and a
    /// unit must run out of fuel at the same instruction whatever the machine's load (fuel), and
    /// the host's own time in its calls is bounded too (the deadline).
    FuelAndDeadline,
    /// A wall-clock deadline alone (epoch interruption): modules the bank reviewed, in batched
    /// and table mode. Their compiled code then has no fuel check in every block.
    Deadline,
}

/// An engine with its linker and the memory reset it proved.
struct Metered {
    engine: Engine,
    linker: Linker<GuestState>,
    memory_reset: MemoryReset,
}

/// The configured engines (one per [`Metering`]) and the linkers holding the guest's whole
/// world.
pub struct Sandbox {
    isolated: Metered,
    reviewed: Metered,
    epoch: EpochTicker,
    /// Modules prepared in this process, by hash, the most recently used last: a module run
    /// again is neither vetted nor loaded again (vetting depends on the bytes alone).
    prepared: std::sync::Mutex<Vec<Arc<PreparedModule>>>,
}

/// Prepared modules kept in memory at most.
const PREPARED_IN_MEMORY: usize = 16;

/// The engine's configuration; `page_scan` chooses how pooled memory is reset.
fn engine_config(settings: &EngineSettings, page_scan: bool, metering: Metering) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    let n = settings.max_concurrent_instances;
    pool.total_component_instances(n)
        .total_core_instances(n * 64)
        .total_memories(n * 4)
        .total_tables(n * 8)
        .total_stacks(n)
        // componentize-py links CPython from 38 core instances.
        .max_core_instances_per_component(64)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .table_elements(settings.max_table_elements)
        .max_memory_size(settings.max_memory_per_memory)
        // Reset an instance's memory by rewriting only the pages it dirtied (found with
        // Linux's PAGEMAP_SCAN where available) instead of unmapping them: an isolation unit
        // then costs no page faults and takes no process-wide VM lock, so threads scale. The
        // fallback rewrites the whole resident part, reading no page flags.
        .linear_memory_keep_resident(settings.keep_resident_bytes)
        .table_keep_resident(settings.keep_resident_bytes)
        .pagemap_scan(if page_scan {
            Enabled::Auto
        } else {
            Enabled::No
        });

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(metering == Metering::FuelAndDeadline)
        .epoch_interruption(true)
        .max_wasm_stack(settings.max_wasm_stack)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // Proposals a query module does not need: off, so their code paths are not attack
        // surface (GC, function references, exceptions, threads and component-model async
        // are not even compiled in). Vetting refuses modules that use them with a message naming the feature.
        .wasm_memory64(false)
        .wasm_multi_memory(false)
        .wasm_tail_call(false)
        .wasm_relaxed_simd(false)
        .wasm_gc(false)
        .wasm_stack_switching(false)
        .wasm_wide_arithmetic(false)
        .wasm_custom_page_sizes(false)
        .wasm_branch_hinting(false);
    config
}

/// A linked module of either version of the world.
enum Pre {
    V0_1(v0_1::QueryPre<GuestState>),
    V0_2(v0_2::QueryPre<GuestState>),
}

/// A vetted module, compiled and linked, ready for many instances.
pub struct PreparedModule {
    /// The vetted module (manifest, hash).
    pub module: VettedModule,
    /// Linked on the isolated engine (made when first needed).
    isolated: std::sync::OnceLock<Result<Pre, String>>,
    /// Linked on the reviewed engine (made when first needed).
    reviewed: std::sync::OnceLock<Result<Pre, String>>,
    /// Where compiled code is kept, for the engine compiled second.
    module_cache: Option<ModuleCache>,
    /// Whether the compiled artifact of the module's own mode came from the cache.
    pub cache: CacheStatus,
}

impl PreparedModule {
    /// Compiles and links the module for batched runs now rather than at the first batched run
    /// (benchmarks time preparation apart); false if it does not link.
    pub fn prepare_batched(&self, sandbox: &Sandbox) -> bool {
        self.pre(sandbox, Metering::Deadline).is_some()
    }

    /// The module linked for runs metered by `metering`, compiled on first need (a vetted module
    /// compiled for one engine compiles for the other; failing that, the run is a host fault).
    fn pre(&self, sandbox: &Sandbox, metering: Metering) -> Option<&Pre> {
        let cell = match metering {
            Metering::FuelAndDeadline => &self.isolated,
            Metering::Deadline => &self.reviewed,
        };
        cell.get_or_init(|| {
            sandbox
                .link(&self.module, self.module_cache.as_ref(), metering)
                .map(|(pre, _)| pre)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .ok()
    }
}

/// What a run produced. Only [`RunReport::partner_outcome`] and the aggregate may go towards a
/// partner (the aggregate through the output gate); everything else is for the bank.
///
/// In isolated mode units fail alone: a failing unit's contributions are dropped (removing one
/// customer is within the neighbour relation) and the run completes with the others.
#[derive(Debug)]
pub struct RunReport {
    /// Bank only. Table mode: how the run ended. Isolated mode: the outcome of the failing unit
    /// with the lowest entity ordinal, or `Completed` when no unit failed.
    pub outcome: Outcome,
    /// Trap text, guest error text, the entity ordinal that failed: bank only.
    pub detail: Option<String>,
    /// Exact, bounded aggregates of every unit that completed; `None` when the run as a whole
    /// failed (table mode, or a host fault).
    pub aggregate: Option<Aggregate>,
    /// Isolated mode: units that failed, by outcome code (bank only).
    pub failed_units: std::collections::BTreeMap<&'static str, u64>,
    /// Captured stdout (bounded), bank only.
    pub stdout: Vec<u8>,
    /// Captured stderr (bounded), bank only.
    pub stderr: Vec<u8>,
    /// Fuel consumed across all instances.
    pub fuel_consumed: u64,
    /// Isolation units run (isolated) or 1 (table).
    pub units: u64,
    /// Most linear memory any one instance held, in bytes.
    pub peak_memory_bytes: u64,
    /// The run's seed (recorded so a run can be replayed).
    pub seed: [u8; 32],
}

impl RunReport {
    /// The one code a partner may see about how a run went. It depends only on whether the run
    /// as a whole produced an aggregate, never on which units failed or why: `completed`, or, in
    /// table mode, `run_failed` (the one data-dependent bit table mode keeps, bounded by the
    /// bank's approval), or `host_error` when the host itself failed.
    pub fn partner_outcome(&self) -> &'static str {
        match (&self.aggregate, &self.outcome) {
            (Some(_), _) => "completed",
            (None, Outcome::Trap(kind)) if kind == HOST_FAULT => "host_error",
            (None, _) => "run_failed",
        }
    }

    /// Units that failed, all codes together.
    pub fn failed_unit_count(&self) -> u64 {
        self.failed_units.values().sum()
    }
}

/// The trap kind recorded when the host, not the guest, failed (a worker thread died).
pub const HOST_FAULT: &str = "host fault: a worker thread failed";

/// Entities per partition of an isolated-mode run: small enough that threads stay evenly busy
/// to the end, large enough that taking the next one costs nothing.
pub const PARTITION_ENTITIES: u32 = 64;

/// Entities per partition of a batched run: one instance (and, under version 0.2 of the
/// contract, one call) serves them all, so the instance's setup and reset are paid once for this
/// many customers; a window of [`crate::data_at_rest::stream::DEFAULT_WINDOW_ENTITIES`] still
/// makes enough partitions to keep every core busy.
pub const BATCHED_PARTITION_ENTITIES: u32 = 512;

impl Sandbox {
    /// An engine for hostile guests, once it has proven that a pooled slot comes back fresh
    /// (see [`super::freshness`]): with the page-scan reset when swap is off and the self-test
    /// passes, else with the reset that reads no page flags; refused if neither passes.
    pub fn new(settings: &EngineSettings) -> wasmtime::Result<Sandbox> {
        let isolated = Self::metered(settings, Metering::FuelAndDeadline)?;
        let reviewed = Self::metered(settings, Metering::Deadline)?;
        let ticks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let engines = [isolated.engine.clone(), reviewed.engine.clone()];
            let (ticks, stop) = (Arc::clone(&ticks), Arc::clone(&stop));
            thread::Builder::new()
                .name("strongroom-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        thread::sleep(EPOCH_TICK);
                        engines.iter().for_each(Engine::increment_epoch);
                        ticks.fetch_add(1, Ordering::Relaxed);
                    }
                })?;
        }
        Ok(Sandbox {
            isolated,
            reviewed,
            epoch: EpochTicker { ticks, stop },
            prepared: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// One engine metered by `metering`, once its pooled slots proved to come back fresh.
    fn metered(settings: &EngineSettings, metering: Metering) -> wasmtime::Result<Metered> {
        let fallback = |why: String| -> wasmtime::Result<(Engine, MemoryReset)> {
            let engine = Engine::new(&engine_config(settings, false, metering))?;
            freshness::self_test(&engine).map_err(|e| {
                wasmtime::Error::msg(format!(
                    "isolated mode refuses to start: a pooled instance slot does not come back fresh even without page-flag resets ({e}); first: {why}"
                ))
            })?;
            Ok((engine, MemoryReset::Fallback(why)))
        };
        let (engine, memory_reset) = if freshness::swap_enabled() {
            fallback(
                "swap is enabled, and a dirty page swapped out is not seen by a page scan".into(),
            )?
        } else {
            let engine = Engine::new(&engine_config(settings, true, metering))?;
            match freshness::self_test(&engine) {
                Ok(()) => (engine, MemoryReset::PageScan),
                Err(e) => fallback(format!("the page-scan reset failed the self-test: {e}"))?,
            }
        };
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker)?;
        v0_1::Query::add_to_linker::<_, HasSelf<GuestState>>(&mut linker, |s| s)?;
        v0_2::Query::add_to_linker::<_, HasSelf<GuestState>>(&mut linker, |s| s)?;
        Ok(Metered {
            engine,
            linker,
            memory_reset,
        })
    }

    fn metered_by(&self, metering: Metering) -> &Metered {
        match metering {
            Metering::FuelAndDeadline => &self.isolated,
            Metering::Deadline => &self.reviewed,
        }
    }

    /// How instance memory is reset between units, as proven when the engine was made.
    pub fn memory_reset(&self) -> &MemoryReset {
        &self.isolated.memory_reset
    }

    /// The isolated-mode engine (for caching and benchmarks).
    pub fn engine(&self) -> &Engine {
        &self.isolated.engine
    }

    /// The engine metered by `metering`.
    pub fn engine_for(&self, metering: Metering) -> &Engine {
        &self.metered_by(metering).engine
    }

    /// Compiles (or loads from `cache`) and links a vetted module for the engine of its mode
    /// (isolated or table); a batched run links it for the reviewed engine when it first needs
    /// to, with the same cache.
    pub fn prepare(
        &self,
        module: VettedModule,
        cache: Option<&ModuleCache>,
    ) -> Result<PreparedModule, PrepareError> {
        let metering = match module.manifest.mode {
            Mode::Isolated => Metering::FuelAndDeadline,
            Mode::Table => Metering::Deadline,
        };
        let (pre, status) = self.link(&module, cache, metering)?;
        let prepared = PreparedModule {
            module,
            isolated: Default::default(),
            reviewed: Default::default(),
            module_cache: cache.cloned(),
            cache: status,
        };
        let cell = match metering {
            Metering::FuelAndDeadline => &prepared.isolated,
            Metering::Deadline => &prepared.reviewed,
        };
        let _ = cell.set(Ok(pre));
        Ok(prepared)
    }

    /// Compiles (or loads) and links `module` for the engine metered by `metering`.
    fn link(
        &self,
        module: &VettedModule,
        cache: Option<&ModuleCache>,
        metering: Metering,
    ) -> Result<(Pre, CacheStatus), PrepareError> {
        let Metered { engine, linker, .. } = self.metered_by(metering);
        let (component, status) = match cache {
            Some(cache) => cache.load_or_compile(engine, &module.hash, &module.bytes)?,
            None => (
                Component::new(engine, &module.bytes)
                    .map_err(|e| PrepareError::Compile(format!("{e:#}")))?,
                CacheStatus::Miss,
            ),
        };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| PrepareError::Link(format!("{e:#}")))?;
        let link = |e: wasmtime::Error| PrepareError::Link(format!("{e:#}"));
        let pre = match module.abi {
            Abi::V0_1 => Pre::V0_1(v0_1::QueryPre::new(pre).map_err(link)?),
            Abi::V0_2 => Pre::V0_2(v0_2::QueryPre::new(pre).map_err(link)?),
        };
        Ok((pre, status))
    }

    /// The module with SHA-256 `hash`, if this sandbox prepared it recently
    /// ([`Sandbox::prepare_shared`]).
    pub fn prepared(&self, hash: &[u8; 32]) -> Option<Arc<PreparedModule>> {
        let mut kept = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        let at = kept.iter().position(|p| &p.module.hash == hash)?;
        let found = kept.remove(at);
        kept.push(Arc::clone(&found));
        Some(found)
    }

    /// Prepares `module` as [`Sandbox::prepare`] does, once: kept in memory by hash (the
    /// [`PREPARED_IN_MEMORY`] most recently used), so later jobs find it with
    /// [`Sandbox::prepared`].
    pub fn prepare_shared(
        &self,
        module: VettedModule,
        cache: Option<&ModuleCache>,
    ) -> Result<Arc<PreparedModule>, PrepareError> {
        if let Some(found) = self.prepared(&module.hash) {
            return Ok(found);
        }
        let prepared = Arc::new(self.prepare(module, cache)?);
        let mut kept = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if !kept.iter().any(|p| p.module.hash == prepared.module.hash) {
            if kept.len() >= PREPARED_IN_MEMORY {
                kept.remove(0);
            }
            kept.push(Arc::clone(&prepared));
        }
        Ok(prepared)
    }

    fn deadline_tick(&self, limit: Duration) -> u64 {
        let ticks = (limit.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        self.epoch.ticks.load(Ordering::Relaxed) + ticks
    }

    /// A store on the engine metered by `metering`; `fuel` is set where that engine meters it.
    fn new_store(
        &self,
        metering: Metering,
        ctx: &Arc<RunContext>,
        entity: Option<u32>,
        fuel: u64,
        deadline_tick: u64,
    ) -> (Store<GuestState>, CapturedOutput) {
        let output = wasi::output(ctx.limits.max_output_bytes);
        let mut store = Store::new(
            &self.metered_by(metering).engine,
            GuestState::new(Arc::clone(ctx), entity, &output),
        );
        store.limiter(|s| &mut s.limiter);
        if metering == Metering::FuelAndDeadline {
            // Fuel can only fail to be set when fuel is not enabled, and it is on this engine.
            let _ = store.set_fuel(fuel);
        }
        let now = self.epoch.ticks.load(Ordering::Relaxed);
        store.set_epoch_deadline(deadline_tick.saturating_sub(now).max(1));
        store.set_hostcall_fuel(ctx.limits.max_hostcall_bytes);
        (store, output)
    }

    /// Runs `module` over the data in `ctx`, in the run's mode, on up to `threads` threads
    /// (isolated mode; table mode uses one).
    pub fn run(&self, module: &PreparedModule, ctx: Arc<RunContext>, threads: usize) -> RunReport {
        self.run_on(module, ctx, &LocalPool { threads })
    }

    fn run_table(&self, module: &PreparedModule, ctx: Arc<RunContext>) -> RunReport {
        let deadline = self.deadline_tick(ctx.limits.deadline);
        let (mut store, output) = self.new_store(Metering::Deadline, &ctx, None, 0, deadline);
        let Some(pre) = module.pre(self, Metering::Deadline) else {
            return host_fault_report(&ctx);
        };
        let result = match pre {
            Pre::V0_1(pre) => call_run(pre, &mut store),
            // Table mode pulls its rows: the call names no entity and must return no cell.
            Pre::V0_2(pre) => {
                call_cells(pre, &mut store, &ctx, 0..0, accepted(&ctx, 0)).map(|_| ())
            }
        };
        let cap = ctx.limits.max_output_bytes;
        let mut report = RunReport {
            outcome: Outcome::Completed,
            detail: None,
            aggregate: None,
            failed_units: Default::default(),
            stdout: output.stdout.contents().to_vec(),
            stderr: output.stderr.contents().to_vec(),
            // Table mode runs reviewed modules, metered by the deadline alone.
            fuel_consumed: 0,
            peak_memory_bytes: store.data().limiter.memory_bytes() as u64,
            units: 1,
            seed: ctx.seed,
        };
        match result {
            Ok(()) => {
                let mut aggregator = Aggregator::new(&ctx.manifest);
                let entities: Vec<EntityContributions> =
                    std::mem::take(&mut store.data_mut().table_contributions);
                for contributions in entities {
                    aggregator.merge_entity(contributions);
                }
                report.aggregate = Some(aggregator.finish(&ctx.manifest));
            }
            Err(failure) => {
                let (outcome, detail) = classify(failure, store.data(), &output, cap);
                report.outcome = outcome;
                report.detail = Some(detail);
            }
        }
        report
    }

    /// Runs `module` over the data in `ctx` with `executor` deciding where its partitions run
    /// (isolated mode; table mode runs as one piece, here).
    pub fn run_on(
        &self,
        module: &PreparedModule,
        ctx: Arc<RunContext>,
        executor: &dyn Executor,
    ) -> RunReport {
        match ctx.mode {
            Mode::Isolated => self.run_isolated(module, ctx, executor),
            // Outside any async runtime's context, as isolated runs are (on threads of their
            // own): a guest's WASI write flushes by entering a runtime, which panics on a thread
            // already driving one (a job runs inside the service's). Inside a multi-threaded
            // runtime, this thread leaves its context for the run (its memory stays this
            // thread's to reuse); inside any other, the run takes a thread of its own.
            Mode::Table => match tokio::runtime::Handle::try_current() {
                Err(_) => self.run_table(module, ctx),
                Ok(handle)
                    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
                {
                    tokio::task::block_in_place(|| self.run_table(module, ctx))
                }
                Ok(_) => thread::scope(|scope| {
                    thread::Builder::new()
                        .name("strongroom-table-run".into())
                        .spawn_scoped(scope, || self.run_table(module, Arc::clone(&ctx)))
                        .ok()
                        .and_then(|run| run.join().ok())
                        .unwrap_or_else(|| host_fault_report(&ctx))
                }),
            },
        }
    }

    fn run_isolated(
        &self,
        module: &PreparedModule,
        ctx: Arc<RunContext>,
        executor: &dyn Executor,
    ) -> RunReport {
        let total = self.run_span(module, &ctx, executor, None);
        isolated_report(&ctx, total)
    }

    /// Runs `module` in isolated mode over a dataset read window by window: `ctx` was made
    /// against the dataset's shape (its tables and columns), and each window (the rows of a
    /// range of entities) runs as that range's partitions, the windows' partials merging as the
    /// partitions' do. The report is the one [`Sandbox::run`] gives on the whole dataset. The
    /// first window that cannot be read ends the run with its error.
    ///
    /// The next window is read on a thread of its own while the current one runs (one window
    /// ahead, so at most two windows' rows are in memory).
    pub fn run_windows<E: Send>(
        &self,
        module: &PreparedModule,
        ctx: Arc<RunContext>,
        windows: impl Iterator<Item = Result<Dataset, E>> + Send,
        executor: &dyn Executor,
        progress: Option<&Progress>,
    ) -> Result<RunReport, E> {
        let mut total = Ok(Partial::new(&ctx.manifest, ctx.limits.max_output_bytes));
        let read = thread::scope(|scope| {
            let (ahead, next) = std::sync::mpsc::sync_channel(0);
            let reader = thread::Builder::new()
                .name("strongroom-window-reader".into())
                .spawn_scoped(scope, move || {
                    // A reader that fails (a panic is caught here) sends no end: the run then
                    // ends as a host fault, with no aggregate.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        for window in windows {
                            let failed = window.is_err();
                            if ahead.send(Some(window)).is_err() || failed {
                                return;
                            }
                        }
                        let _ = ahead.send(None);
                    }));
                });
            if reader.is_err() {
                return Err(HostFault);
            }
            for window in next {
                let window = match window {
                    Some(Ok(window)) => window,
                    Some(Err(e)) => return Ok(Err(e)),
                    None => return Ok(Ok(())),
                };
                let window = RunContext {
                    dataset: Arc::new(window),
                    ..RunContext::clone(&ctx)
                };
                let partial = self.run_span(module, &Arc::new(window), executor, progress);
                total = match (std::mem::replace(&mut total, Err(HostFault)), partial) {
                    (Ok(mut total), Ok(partial)) => {
                        total.merge(partial);
                        Ok(total)
                    }
                    (Err(fault), _) | (_, Err(fault)) => Err(fault),
                };
            }
            Err(HostFault)
        });
        match read {
            // A reader that died, or could not start, is a host fault.
            Err(fault) => total = Err(fault),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
        }
        Ok(isolated_report(&ctx, total))
    }

    /// Runs every partition of the entities `ctx`'s dataset holds (a range of the run's
    /// entities, read on its own) on up to `threads` threads, merged into one partial: what a
    /// worker running part of a run elsewhere hands back (see [`isolated_report`] for the report
    /// its coordinator makes of the merged partials).
    pub fn run_range(
        &self,
        module: &PreparedModule,
        ctx: &Arc<RunContext>,
        threads: usize,
    ) -> Result<Partial, HostFault> {
        self.run_span(module, ctx, &LocalPool { threads }, None)
    }

    /// Runs the partitions of every entity `ctx`'s dataset holds, merged into one partial.
    fn run_span(
        &self,
        module: &PreparedModule,
        ctx: &Arc<RunContext>,
        executor: &dyn Executor,
        progress: Option<&Progress>,
    ) -> Result<Partial, HostFault> {
        let size = if ctx.batched {
            BATCHED_PARTITION_ENTITIES
        } else {
            PARTITION_ENTITIES
        };
        let parts = partitions(ctx.dataset.span.clone(), size);
        let empty = || Partial::new(&ctx.manifest, ctx.limits.max_output_bytes);
        let partials = executor.execute(
            &parts,
            &|partition| {
                let partial = if ctx.batched {
                    self.run_partition_batched(module, ctx, partition)
                } else {
                    self.run_partition(module, ctx, partition)
                };
                if let Some(progress) = progress {
                    progress.customers_ran(partial.units);
                }
                partial
            },
            &empty,
        )?;
        let mut total = empty();
        for partial in partials {
            total.merge(partial);
        }
        Ok(total)
    }

    /// Runs one partition of an isolated-mode run: one fresh instance per entity, each unit
    /// failing alone. Public so that a partition can run wherever an executor sends it.
    pub fn run_partition(
        &self,
        module: &PreparedModule,
        ctx: &Arc<RunContext>,
        partition: Partition,
    ) -> Partial {
        let mut partial = Partial::new(&ctx.manifest, ctx.limits.max_output_bytes);
        let fuel = ctx.limits.fuel_per_entity;
        for entity in partition.entities() {
            // Each unit has its own wall-clock limit (fuel does not count page faults or host
            // time): a slow unit fails alone, and no deadline ever cuts the run short for the
            // other customers.
            let deadline = self.deadline_tick(ctx.limits.unit_deadline);
            let unit = self.run_unit(module, ctx, entity, fuel, deadline);
            partial.units += 1;
            partial.fuel_consumed += unit.fuel_consumed;
            partial.peak_memory_bytes = partial.peak_memory_bytes.max(unit.memory_bytes);
            partial.output(&unit.stdout, &unit.stderr);
            match unit.result {
                Ok(contributions) => partial.aggregator.merge_entity(contributions),
                Err((outcome, detail)) => partial.fail(entity, outcome, detail),
            }
        }
        partial
    }
}

/// The report of a run the host itself failed (a thread that could not start or died).
fn host_fault_report(ctx: &RunContext) -> RunReport {
    isolated_report(ctx, Err(HostFault))
}

/// The report of an isolated-mode run from its merged partial (or the host fault that lost one).
/// The report of an isolated-mode run whose partitions' partials merged into `total` (a host
/// fault if any was lost).
pub fn isolated_report(ctx: &RunContext, total: Result<Partial, HostFault>) -> RunReport {
    let mut report = RunReport {
        outcome: Outcome::Completed,
        detail: None,
        aggregate: None,
        failed_units: BTreeMap::new(),
        stdout: Vec::new(),
        stderr: Vec::new(),
        fuel_consumed: 0,
        peak_memory_bytes: 0,
        units: 0,
        seed: ctx.seed,
    };
    let Ok(total) = total else {
        report.outcome = Outcome::Trap(HOST_FAULT.into());
        return report;
    };
    if let Some((_, outcome, _)) = total.first_failures.first() {
        report.outcome = outcome.clone();
        report.detail = Some(
            total
                .first_failures
                .iter()
                .map(|(entity, _, detail)| format!("entity #{entity}: {detail}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    report.failed_units = total.failed_units;
    report.stdout = total.stdout;
    report.stderr = total.stderr;
    report.fuel_consumed = total.fuel_consumed;
    report.peak_memory_bytes = total.peak_memory_bytes;
    report.units = total.units;
    report.aggregate = Some(total.aggregator.finish(&ctx.manifest));
    report
}

impl Sandbox {
    /// Runs one partition batched: one instance on the reviewed engine (no fuel, a wall-clock
    /// limit), its `run` called once per customer in turn, each call with the customer's own
    /// wall-clock limit and contribution bounds, and only that customer's rows in scope. If any call fails, nothing the instance produced is
    /// kept and the partition runs again one customer per fresh instance
    /// ([`Sandbox::run_partition`]), so a failure drops that customer's contributions alone and
    /// the report is what isolated mode gives. For modules the bank reviewed: state a module
    /// keeps between calls could carry one customer's data into another's contributions.
    pub fn run_partition_batched(
        &self,
        module: &PreparedModule,
        ctx: &Arc<RunContext>,
        partition: Partition,
    ) -> Partial {
        let deadline = self.deadline_tick(ctx.limits.unit_deadline);
        let (mut store, output) =
            self.new_store(Metering::Deadline, ctx, Some(partition.first), 0, deadline);
        let pre = match module.pre(self, Metering::Deadline) {
            None => return self.run_partition(module, ctx, partition),
            Some(Pre::V0_1(pre)) => pre,
            Some(Pre::V0_2(pre)) => {
                return self.run_partition_cells(module, pre, ctx, partition, store, output);
            }
        };
        let Ok(instance) = pre.instantiate(&mut store) else {
            return self.run_partition(module, ctx, partition);
        };
        let mut partial = Partial::new(&ctx.manifest, ctx.limits.max_output_bytes);
        let mut peak = 0u64;
        for entity in partition.entities() {
            // The previous customer's contributions were taken; none are carried over.
            store.data_mut().next_entity(entity);
            let now = self.epoch.ticks.load(Ordering::Relaxed);
            let deadline = self.deadline_tick(ctx.limits.unit_deadline);
            store.set_epoch_deadline(deadline.saturating_sub(now).max(1));
            store.set_hostcall_fuel(ctx.limits.max_hostcall_bytes);
            let ran = instance.call_run(&mut store);
            if !matches!(ran, Ok(Ok(()))) || store.data().stop.is_some() {
                return self.run_partition(module, ctx, partition);
            }
            partial.units += 1;
            peak = peak.max(store.data().limiter.memory_bytes() as u64);
            let contributions = std::mem::take(&mut store.data_mut().entity_contributions);
            partial.aggregator.merge_entity(contributions);
        }
        partial.peak_memory_bytes = peak;
        partial.output(&output.stdout.contents(), &output.stderr.contents());
        partial
    }

    /// Version 0.2 batched: the whole partition in one call to one instance, with one
    /// customer's wall-clock limit for the whole batch (a reviewed module serves a batch in
    /// milliseconds); its cells are checked as isolated mode's are. Any failure, running past
    /// the limit included, reruns the partition one customer per fresh instance, each with its
    /// own fuel and limit, as in version 0.1: no batch holds a worker longer than one customer
    /// could before the fallback begins.
    fn run_partition_cells(
        &self,
        module: &PreparedModule,
        pre: &v0_2::QueryPre<GuestState>,
        ctx: &Arc<RunContext>,
        partition: Partition,
        mut store: Store<GuestState>,
        output: CapturedOutput,
    ) -> Partial {
        let n = u64::from(partition.end - partition.first);
        let mut partial = Partial::new(&ctx.manifest, ctx.limits.max_output_bytes);
        let merged = call_cells(
            pre,
            &mut store,
            ctx,
            partition.entities(),
            |cells, reported| {
                ctx.bounds.check_cells(&ctx.domain_sizes, n as u32, cells)?;
                partial
                    .aggregator
                    .merge_cells(&ctx.domain_sizes, cells, reported);
                Ok(())
            },
        );
        if merged.is_err() {
            return self.run_partition(module, ctx, partition);
        }
        partial.units = n;
        partial.peak_memory_bytes = store.data().limiter.memory_bytes() as u64;
        partial.output(&output.stdout.contents(), &output.stderr.contents());
        partial
    }
}

/// One isolation unit's result: its bounded contributions, or how it failed.
pub struct UnitReport {
    /// The entity's bounded contributions, or the outcome and bank-side detail of its failure.
    pub result: Result<EntityContributions, (Outcome, String)>,
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// Captured stdout (bounded).
    pub stdout: Vec<u8>,
    /// Captured stderr (bounded).
    pub stderr: Vec<u8>,
    /// Linear memory the instance held at the end, in bytes.
    pub memory_bytes: u64,
}

impl Sandbox {
    /// Runs one isolation unit: a fresh instance for `entity`, one call, teardown. Used by the
    /// isolated runner, and public so that one entity's run can be replayed or measured.
    pub fn run_unit(
        &self,
        module: &PreparedModule,
        ctx: &Arc<RunContext>,
        entity: u32,
        fuel: u64,
        deadline_tick: u64,
    ) -> UnitReport {
        let metering = Metering::FuelAndDeadline;
        let (mut store, output) = self.new_store(metering, ctx, Some(entity), fuel, deadline_tick);
        let result = match module.pre(self, metering) {
            None => Err(Failure::Wasm(wasmtime::format_err!(
                "the module could not be compiled for isolated mode"
            ))),
            Some(Pre::V0_1(pre)) => call_run(pre, &mut store)
                .map(|()| std::mem::take(&mut store.data_mut().entity_contributions)),
            Some(Pre::V0_2(pre)) => {
                call_cells(pre, &mut store, ctx, entity..entity + 1, accepted(ctx, 1))
                    .map(|mut one| one.pop().unwrap_or_default())
            }
        };
        let fuel_consumed = fuel - store.get_fuel().unwrap_or(0);
        let cap = ctx.limits.max_output_bytes;
        let result = result.map_err(|e| classify(e, store.data(), &output, cap));
        UnitReport {
            memory_bytes: store.data().limiter.memory_bytes() as u64,
            result,
            fuel_consumed,
            stdout: output.stdout.contents().to_vec(),
            stderr: output.stderr.contents().to_vec(),
        }
    }

    /// The epoch tick at which an isolation unit starting now with `limits` must stop.
    pub fn unit_deadline_for(&self, limits: &RunLimits) -> u64 {
        self.deadline_tick(limits.unit_deadline)
    }
}

/// The error of a failed `run` call, before classification.
enum Failure {
    /// Instantiation or the call trapped / errored in the host.
    Wasm(wasmtime::Error),
    /// `run` returned `Err(text)`.
    Guest(String),
}

fn call_run(
    pre: &v0_1::QueryPre<GuestState>,
    store: &mut Store<GuestState>,
) -> Result<(), Failure> {
    let instance = pre.instantiate(&mut *store).map_err(Failure::Wasm)?;
    match instance.call_run(&mut *store) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(text)) => Err(Failure::Guest(text)),
        Err(e) => Err(Failure::Wasm(e)),
    }
}

/// Version 0.2: instantiates, pushes the rows of `entities` into `run`, and hands the cells it
/// returns to `take`, which checks them (see [`ContributionBounds::check_cells`]) and keeps
/// them. Cells that break a rule end the call as a contract violation.
///
/// [`ContributionBounds::check_cells`]: crate::output_gate::ContributionBounds::check_cells
fn call_cells<R>(
    pre: &v0_2::QueryPre<GuestState>,
    store: &mut Store<GuestState>,
    ctx: &RunContext,
    entities: std::ops::Range<u32>,
    take: impl FnOnce(CellColumns<'_>, BoundingStats) -> Result<R, String>,
) -> Result<R, Failure> {
    let instance = pre.instantiate(&mut *store).map_err(Failure::Wasm)?;
    let batch = entities_arg(ctx, entities);
    let cells = match instance.call_run(&mut *store, &batch) {
        Ok(Ok(cells)) => cells,
        Ok(Err(text)) => return Err(Failure::Guest(text)),
        Err(e) => return Err(Failure::Wasm(e)),
    };
    drop(batch);
    let columns = CellColumns {
        entities: &cells.entities,
        metrics: &cells.metrics,
        groups: &cells.groups,
        counts: &cells.counts,
        sums: &cells.sums,
    };
    let reported = BoundingStats {
        dropped_over_group_limit: cells.bounding.dropped_over_group_limit,
        dropped_over_contribution_limit: cells.bounding.dropped_over_contribution_limit,
        clamped: cells.bounding.clamped,
    };
    take(columns, reported).map_err(|why| {
        let failure = Failure::Wasm(wasmtime::format_err!("contract violation: {why}"));
        store.data_mut().stop = Some(Stop::Violation(why));
        failure
    })
}

/// Checked cells of `entities` entities, as each entity's bounded contributions.
fn accepted(
    ctx: &RunContext,
    entities: u32,
) -> impl FnOnce(CellColumns<'_>, BoundingStats) -> Result<Vec<EntityContributions>, String> + '_ {
    move |cells, reported| {
        ctx.bounds
            .accept_cells(&ctx.domain_sizes, entities, cells, reported)
    }
}

/// The argument of a version 0.2 `run`: the rows of `entities` in every granted table (the
/// entities' rows are contiguous, in entity order), and the metrics' domain sizes.
fn entities_arg(
    ctx: &RunContext,
    entities: std::ops::Range<u32>,
) -> v0_2::strongroom::query::types::Entities {
    use v0_2::strongroom::query::types::{Entities, TableRows};
    let count = entities.end - entities.start;
    let tables = if count == 0 {
        Vec::new()
    } else {
        ctx.grants
            .iter()
            .map(|grant| {
                let table = &ctx.dataset.tables[grant.table];
                let row_counts: Vec<u32> = entities
                    .clone()
                    .map(|e| table.entity_rows(e).len() as u32)
                    .collect();
                let rows = table.entity_rows(entities.start).start
                    ..table.entity_rows(entities.end - 1).end;
                TableRows {
                    row_counts,
                    columns: grant
                        .columns
                        .iter()
                        .map(|&(_, c)| {
                            let data = &table.guest_columns[c].data;
                            column_values!(v0_2, ColumnSlice::of(data, rows.clone()))
                        })
                        .collect(),
                }
            })
            .collect()
    };
    Entities {
        count,
        tables,
        domain_sizes: ctx.domain_sizes.clone(),
    }
}

fn classify(
    failure: Failure,
    state: &GuestState,
    output: &CapturedOutput,
    cap: usize,
) -> (Outcome, String) {
    let error = match failure {
        Failure::Guest(text) => {
            return (
                Outcome::GuestError,
                format!("run returned an error: {text}"),
            );
        }
        Failure::Wasm(e) => e,
    };
    let detail = format!("{error:?}");
    if let Some(stop) = &state.stop {
        return match stop {
            Stop::Violation(what) => (Outcome::ContractViolation(what.clone()), detail),
            Stop::ContributionLimit => (Outcome::ContributionLimit, detail),
        };
    }
    let outcome = match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::OutOfFuel,
        Some(Trap::Interrupt) => Outcome::Deadline,
        Some(Trap::StackOverflow) => Outcome::StackOverflow,
        _ if state.limiter.memory_refused => Outcome::MemoryLimit,
        _ if state.limiter.table_refused => Outcome::TableLimit,
        _ if output.full(cap) => Outcome::OutputLimit,
        Some(trap) => Outcome::Trap(trap.to_string()),
        None if detail.contains("resource limit exceeded") || detail.contains("count too high") => {
            Outcome::MemoryLimit
        }
        None => Outcome::Trap("host error".into()),
    };
    (outcome, detail)
}
