//! The virtual WASI a guest gets: every interface its toolchain may import, none of them reaching
//! outside.
//!
//! - stdio: stdout and stderr captured into bounded buffers for the bank's eyes; stdin empty;
//! - an empty environment and no arguments; exit; streams and errors;
//! - clocks frozen at the Unix epoch; a subscription to the monotonic clock is a pollable that is
//!   ready at once (the frozen clock has nothing to wait for), so no guest makes the host sleep;
//! - randomness from a ChaCha20 generator seeded with the run's recorded seed;
//! - filesystem with no preopened directory: every path operation needs a descriptor, and no
//!   descriptor can ever exist;
//! - sockets that deny every call: creating a TCP or UDP socket and resolving a name are refused
//!   (`access-denied`) before any operating-system socket is made, and every other call needs a
//!   socket.
//!
//! Not linked at all, so refused at vetting: HTTP, and anything not listed in
//! `vetting::ALLOWED_IMPORTS`.

use std::time::Duration;

use super::run_keys::RunKeys;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets, sync};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
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

/// A pollable that is always ready: what a subscription to the frozen clock returns.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// The monotonic clock, frozen: `now` is 0 and every subscription is ready at once. (wasmtime's
/// own subscriptions wait for real time on the host, out of reach of fuel.)
struct FrozenTime;

impl HasData for FrozenTime {
    type Data<'a> = FrozenTimeView<'a>;
}

struct FrozenTimeView<'a>(&'a mut ResourceTable);

impl FrozenTimeView<'_> {
    fn ready(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.0.push(Ready)?;
        subscribe(self.0, ready)
    }
}

impl clocks::monotonic_clock::Host for FrozenTimeView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(FrozenMonotonicClock.now())
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(FrozenMonotonicClock.resolution())
    }
    fn subscribe_instant(&mut self, _when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready()
    }
    fn subscribe_duration(&mut self, _duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready()
    }
}

/// Links the allowed WASI interfaces, and nothing else, into `linker`.
pub fn add_to_linker<T: WasiView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let l = linker;
    wasmtime_wasi::p2::bindings::io::error::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    sync::io::streams::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    // Pollables come from streams on in-memory pipes and from the frozen clock: always ready.
    sync::io::poll::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, FrozenTime>(l, |t| FrozenTimeView(t.ctx().table))?;
    // No preopened directory is ever configured (`context`), so no descriptor can exist.
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    // TCP, UDP and name lookups are not allowed in `context`: creation is refused before any
    // socket exists, and every other call needs a socket.
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::network::add_to_linker::<T, WasiSockets>(l, &Default::default(), T::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sync::sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sync::sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sync::sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
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
