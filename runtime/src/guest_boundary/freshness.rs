//! Proof, at start, that an instance slot comes back fresh.
//!
//! Isolated mode runs each customer in a new instance, and the pooling allocator hands the next
//! instance the same memory and table slot. Slots are reset in place: wasmtime rewrites the pages
//! an instance dirtied, found with Linux's `PAGEMAP_SCAN`. That rests on two assumptions nobody
//! checks: that a dirty page is always reported as written (a dirty page the kernel swapped out
//! is not: wasmtime pull request #14357), and that the kernel's pagemap flags mean what the
//! allocator expects. If either fails, the next customer's instance reads the previous
//! customer's memory.
//!
//! So the engine is tested before it runs anything: a built-in module fills every byte of its
//! memory (grown past its initial size and past the resident part) and every element of its
//! table with a canary; the next instance, in the same slot (same memory address), must see the
//! pristine image: its data segment, zeros elsewhere, the initial size, a null table. With swap
//! enabled the page-scan reset is not trusted at all. When the test fails, or swap is on, the
//! room falls back to a reset that does not read page flags (the resident part rewritten in full,
//! the rest decommitted); if that fails too, isolated mode refuses to start and says why.

use wasmtime::{Engine, Instance, Module, Store, TypedFunc};

/// The built-in module: 40 pages (more than the resident part), a data segment, a 64-element
/// table; `scribble` grows memory by 8 pages and fills all of it and the table with canaries.
const CANARY_MODULE: &str = r#"
(module
  (memory (export "memory") 40)
  (table (export "table") 64 funcref)
  (func $canary)
  (elem declare func $canary)
  (data (i32.const 0) "strongroom pristine image")
  (func (export "scribble")
    (drop (memory.grow (i32.const 8)))
    (memory.fill (i32.const 0) (i32.const 0xa5)
      (i32.mul (memory.size) (i32.const 65536)))
    (table.fill (i32.const 0) (ref.func $canary) (i32.const 64)))
  (func (export "table_entries_set") (result i32)
    (local $i i32) (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const 64)))
        (if (i32.eqz (ref.is_null (table.get (local.get $i))))
          (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $n)))
"#;

const IMAGE: &[u8] = b"strongroom pristine image";
const PAGES: usize = 40;

/// How instance memory is reset between isolation units, as proven at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryReset {
    /// Dirty pages found by `PAGEMAP_SCAN` (or, where the kernel lacks it, the resident part
    /// rewritten in full) and the rest decommitted; the self-test passed.
    PageScan,
    /// The resident part rewritten in full and the rest decommitted, without reading page
    /// flags, because of the reason given; the self-test passed in this mode.
    Fallback(String),
}

impl std::fmt::Display for MemoryReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryReset::PageScan => {
                write!(f, "fresh-memory self-test passed (reset by page scan)")
            }
            MemoryReset::Fallback(why) => write!(
                f,
                "fresh-memory self-test passed (reset without page flags, because {why})"
            ),
        }
    }
}

/// What one instance found in its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// Where its memory lives (the slot).
    pub address: usize,
    /// Bytes that differ from the pristine image.
    pub stale_bytes: usize,
    /// Pages beyond the initial size.
    pub extra_pages: usize,
    /// Table elements that are not null.
    pub stale_elements: u32,
}

impl SlotState {
    /// Whether the instance saw exactly the pristine image.
    pub fn is_fresh(&self) -> bool {
        self.stale_bytes == 0 && self.extra_pages == 0 && self.stale_elements == 0
    }
}

/// One instance of the canary module, for inspecting and scribbling.
pub struct Probe {
    store: Store<()>,
    instance: Instance,
}

impl Probe {
    /// A new instance of `module` (from [`canary_module`]).
    pub fn new(engine: &Engine, module: &Module) -> wasmtime::Result<Probe> {
        let mut store = Store::new(engine, ());
        // Only an engine that meters fuel has any to set.
        let _ = store.set_fuel(u64::MAX / 2);
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = Instance::new(&mut store, module, &[])?;
        Ok(Probe { store, instance })
    }

    /// What the instance sees in its memory and table.
    pub fn inspect(&mut self) -> wasmtime::Result<SlotState> {
        let memory = self
            .instance
            .get_memory(&mut self.store, "memory")
            .ok_or_else(|| wasmtime::Error::msg("the canary module has no memory"))?;
        let address = memory.data_ptr(&self.store) as usize;
        let data = memory.data(&self.store);
        let stale_bytes = data
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b != IMAGE.get(i).copied().unwrap_or(0))
            .count();
        let extra_pages = (data.len() / 65536).saturating_sub(PAGES);
        let count: TypedFunc<(), i32> = self
            .instance
            .get_typed_func(&mut self.store, "table_entries_set")?;
        let stale_elements = count.call(&mut self.store, ())? as u32;
        Ok(SlotState {
            address,
            stale_bytes,
            extra_pages,
            stale_elements,
        })
    }

    /// Fills all of memory (grown by 8 pages) and the table with canaries.
    pub fn scribble(&mut self) -> wasmtime::Result<()> {
        let scribble: TypedFunc<(), ()> =
            self.instance.get_typed_func(&mut self.store, "scribble")?;
        scribble.call(&mut self.store, ())
    }
}

/// Why the pool could not be shown to hand out fresh instances.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FreshnessError(pub String);

impl From<String> for FreshnessError {
    fn from(message: String) -> Self {
        FreshnessError(message)
    }
}

impl From<&str> for FreshnessError {
    fn from(message: &str) -> Self {
        FreshnessError(message.to_string())
    }
}

/// The built-in canary module, compiled for `engine`.
pub fn canary_module(engine: &Engine) -> wasmtime::Result<Module> {
    let bytes = wat::parse_str(CANARY_MODULE)?;
    Module::new(engine, bytes)
}

/// Scribbles in a slot, then checks that the next instances see the pristine image. Several
/// rounds, each checked to land in the slot the previous one dirtied.
pub fn self_test(engine: &Engine) -> Result<(), FreshnessError> {
    let module = canary_module(engine).map_err(|e| format!("the canary module: {e:#}"))?;
    let mut previous: Option<usize> = None;
    let mut reused = 0;
    for _ in 0..4 {
        let mut probe = Probe::new(engine, &module).map_err(|e| format!("instantiating: {e:#}"))?;
        let seen = probe.inspect().map_err(|e| format!("inspecting: {e:#}"))?;
        if previous == Some(seen.address) {
            reused += 1;
        }
        if !seen.is_fresh() {
            return Err(format!(
                "an instance saw its slot's previous contents ({} stale bytes, {} extra pages, {} stale table elements)",
                seen.stale_bytes, seen.extra_pages, seen.stale_elements
            ).into());
        }
        probe.scribble().map_err(|e| format!("scribbling: {e:#}"))?;
        previous = Some(seen.address);
    }
    if reused == 0 {
        return Err("the pool never handed a dirtied slot to the next instance, so the reset could not be observed".into());
    }
    Ok(())
}

/// Whether the machine has swap enabled (`/proc/swaps` lists a device or file).
pub fn swap_enabled() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .is_ok_and(|t| t.lines().skip(1).any(|l| !l.trim().is_empty()))
}
