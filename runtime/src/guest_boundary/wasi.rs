//! The virtual WASI a guest gets: deny by default.
//!
//! Linked: stdio (stdout/stderr captured into bounded buffers for the bank's eyes, stdin empty),
//! an empty environment and no arguments, exit, streams and errors, clocks frozen at the Unix
//! epoch, and randomness from a ChaCha20 generator seeded with the run's recorded seed. Not linked
//! at all: filesystem, sockets, HTTP; clock subscriptions are refused by vetting.

use std::time::Duration;

use super::run_keys::RunKeys;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{cli, clocks, random, sync};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiView};

struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

struct FrozenMonotonicClock;

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Captured output of a guest.
#[derive(Clone)]
pub struct CapturedOutput {
    /// What the guest wrote to stdout (bounded).
    pub stdout: MemoryOutputPipe,
    /// What the guest wrote to stderr (bounded).
    pub stderr: MemoryOutputPipe,
}

impl CapturedOutput {
    /// True if either stream reached its cap.
    pub fn full(&self, cap: usize) -> bool {
        self.stdout.contents().len() >= cap || self.stderr.contents().len() >= cap
    }
}

/// Empty, bounded stdout and stderr for one instance.
pub fn output(output_cap: usize) -> CapturedOutput {
    CapturedOutput {
        stdout: MemoryOutputPipe::new(output_cap),
        stderr: MemoryOutputPipe::new(output_cap),
    }
}

/// A fresh virtual WASI context writing to `output`.
pub fn context(keys: &RunKeys, output: &CapturedOutput) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(output.stdout.clone())
        .stderr(output.stderr.clone())
        .wall_clock(FrozenWallClock)
        .monotonic_clock(FrozenMonotonicClock)
        .secure_random(ChaCha20Rng::from_seed(keys.guest_random))
        .insecure_random(ChaCha20Rng::from_seed(keys.guest_random))
        .insecure_random_seed(keys.guest_insecure_seed)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.build()
}

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links the allowed WASI interfaces, and nothing else, into `linker`.
pub fn add_to_linker<T: WasiView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let l = linker;
    wasmtime_wasi::p2::bindings::io::error::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    sync::io::streams::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    // Pollables can only come from streams on in-memory pipes (always ready): vetting refuses
    // the clock subscriptions that would make the host wait for real time.
    sync::io::poll::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    Ok(())
}
