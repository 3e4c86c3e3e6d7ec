//! Typed outcomes of a run. The partner sees only [`Outcome::code`]; the details (trap text,
//! guest error text, violation) are for the bank's eyes.

use std::fmt;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every `run` call returned Ok.
    Completed,
    /// Ran out of fuel.
    OutOfFuel,
    /// Hit the wall-clock deadline.
    Deadline,
    /// Tried to grow linear memory past the limit (or a memory/instance/table count limit).
    MemoryLimit,
    /// Tried to grow tables past the limit.
    TableLimit,
    /// Overflowed the wasm stack.
    StackOverflow,
    /// Wrote more to stdout/stderr than the limit allows.
    OutputLimit,
    /// Made more contributions than the limit allows.
    ContributionLimit,
    /// Any other trap, by kind (e.g. "unreachable", "memory out of bounds").
    Trap(String),
    /// `run` returned an error (its text is in the details).
    GuestError,
    /// Broke the contract: read a column it was not granted, a group key outside its domain, ...
    ContractViolation(String),
}

impl Outcome {
    /// The coarse, stable code a partner may see.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::Deadline => "deadline",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::TableLimit => "table_limit",
            Outcome::StackOverflow => "stack_overflow",
            Outcome::OutputLimit => "output_limit",
            Outcome::ContributionLimit => "contribution_limit",
            Outcome::Trap(_) => "trap",
            Outcome::GuestError => "guest_error",
            Outcome::ContractViolation(_) => "contract_violation",
        }
    }

    /// True for [`Outcome::Completed`].
    pub fn is_completed(&self) -> bool {
        matches!(self, Outcome::Completed)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Trap(kind) => write!(f, "trap ({kind})"),
            Outcome::ContractViolation(what) => write!(f, "contract violation: {what}"),
            other => f.write_str(other.code()),
        }
    }
}
