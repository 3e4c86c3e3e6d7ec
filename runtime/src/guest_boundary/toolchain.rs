//! The toolchain a module says built it, and what follows from it: the limits that fit its
//! runtime, and the leftover export it is known to carry.
//!
//! A language runtime in WebAssembly (CPython through componentize-py, SpiderMonkey through
//! componentize-js) is far larger and slower per customer than a Rust module, so one set of
//! limits cannot fit both: the Rust one would refuse every Python module, the Python one would let
//! a runaway Rust module spin 20 times longer before it is stopped. The room reads the toolchain
//! from the module itself: componentize-py's pre-initialisation export, or the producers section
//! componentize-js writes. A module can claim any toolchain, so a profile's limits are what the
//! room grants **any** module, and each is sized for the room, not for trust in the claim; the
//! bank may lower or raise fuel and the unit deadline per policy (`[limits]`).

use std::time::Duration;

use super::limits::RunLimits;

/// The toolchain a module was built with, as far as the module says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Toolchain {
    /// `cargo build --target wasm32-wasip2` with the Rust SDK (or any Rust component).
    Rust,
    /// componentize-py (CPython): the Python SDK's build command.
    Python,
    /// componentize-js (SpiderMonkey): the JavaScript SDK's build command.
    JavaScript,
    /// Anything else: the Rust limits.
    Other,
}

/// componentize-py's pre-initialisation interface: exported by every component it builds,
/// called once while it builds, never by the room.
pub const COMPONENTIZE_PY_EXPORT: &str = "exports";
/// The one function of [`COMPONENTIZE_PY_EXPORT`].
pub const COMPONENTIZE_PY_INIT: &str = "init";

impl Toolchain {
    /// A short name, as `module inspect` and the module review show it.
    pub fn name(self) -> &'static str {
        match self {
            Toolchain::Rust => "rust",
            Toolchain::Python => "python (componentize-py)",
            Toolchain::JavaScript => "javascript (componentize-js)",
            Toolchain::Other => "other",
        }
    }

    /// The toolchain from what vetting found: whether the component exports componentize-py's
    /// pre-initialisation interface (exactly its one function), and the `processed-by` and
    /// `language` entries of every producers section.
    pub fn detect(
        componentize_py_export: bool,
        processed_by: &[String],
        languages: &[String],
    ) -> Toolchain {
        if componentize_py_export {
            Toolchain::Python
        } else if processed_by.iter().any(|p| {
            p.eq_ignore_ascii_case("componentizejs") || p.eq_ignore_ascii_case("componentize-js")
        }) {
            Toolchain::JavaScript
        } else if languages.iter().any(|l| l == "Rust") || processed_by.iter().any(|p| p == "rustc")
        {
            Toolchain::Rust
        } else {
            Toolchain::Other
        }
    }

    /// The default limits for a module of this toolchain, before the policy's `[limits]`.
    ///
    /// Measured per customer of the demo bank (about 20 card transactions each): a Python module
    /// spends about 15 times the fuel of the Rust one, a JavaScript module about 90 times. Fuel
    /// is what stops a unit deterministically (the unit deadline is the backstop, and depends
    /// on the machine), so each profile gives fuel for about the same number of transactions
    /// per customer as the Rust default and a deadline that fuel reaches first.
    pub fn limits(self) -> RunLimits {
        let base = RunLimits::default();
        match self {
            Toolchain::Rust | Toolchain::Other => base,
            Toolchain::Python => RunLimits {
                fuel_per_entity: 400_000_000,
                unit_deadline: Duration::from_secs(5),
                ..base
            },
            Toolchain::JavaScript => RunLimits {
                fuel_per_entity: 2_000_000_000,
                unit_deadline: Duration::from_secs(10),
                ..base
            },
        }
    }
}

impl std::fmt::Display for Toolchain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_toolchain_is_read_from_the_module() {
        assert_eq!(
            Toolchain::detect(true, &s(&["wit-component"]), &s(&["Rust"])),
            Toolchain::Python
        );
        assert_eq!(
            Toolchain::detect(
                false,
                &s(&["wit-component", "ComponentizeJS"]),
                &s(&["Rust"])
            ),
            Toolchain::JavaScript
        );
        assert_eq!(
            Toolchain::detect(false, &s(&["rustc"]), &[]),
            Toolchain::Rust
        );
        assert_eq!(
            Toolchain::detect(false, &s(&["clang"]), &s(&["C11"])),
            Toolchain::Other
        );
    }

    #[test]
    fn every_profile_lets_fuel_stop_a_unit_before_its_deadline_would() {
        // About 1 ns per unit of fuel on the slowest path measured (a debug host is slower
        // still, which only makes the deadline later relative to fuel).
        for t in [
            Toolchain::Rust,
            Toolchain::Python,
            Toolchain::JavaScript,
            Toolchain::Other,
        ] {
            let l = t.limits();
            assert!(
                Duration::from_nanos(l.fuel_per_entity / 2) <= l.unit_deadline,
                "{t}: {} fuel against {:?}",
                l.fuel_per_entity,
                l.unit_deadline
            );
        }
    }
}
