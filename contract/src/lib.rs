//! # strongroom-contract: what a room and a query module agree on
//!
//! One crate shared by the host and every guest SDK, as extism shares its manifest crate:
//!
//! - `wit/0.2/query.wit` (and `wit/0.1/query.wit`, still accepted): the WIT world
//!   `strongroom:query/query`, the whole interface between a module
//!   and the room; [`guest`] (feature `guest`) and [`host`] (feature `host`) are its bindings,
//!   generated here so both sides read the same file;
//! - [`manifest`]: the `strongroom-manifest` custom section, with its one encoder (for the SDK,
//!   at compile time) and its one decoder (for the host, trusting nothing);
//! - [`toolchain`] (feature `build`): building modules for the world's target, `wasm32-wasip2`,
//!   from a Cargo workspace (the CLI's `dev build` and demo, and the tests' build script), and
//!   [`guest_languages`]: query modules in Python and JavaScript, built with this repository's
//!   SDKs and the registries' toolchains (the tests and benchmarks).
//!
//! The crate has no I/O and, without features, no dependency beyond `thiserror`.
#![deny(unsafe_code)]

pub mod manifest;

#[cfg(feature = "guest")]
pub mod guest;

#[cfg(feature = "host")]
pub mod host;

#[cfg(feature = "build")]
pub mod toolchain;

#[cfg(feature = "build")]
pub mod guest_languages;
