//! The output gate: the only way anything computed from the data leaves the room.
//!
//! A guest never writes results; it contributes values to metrics it declared. This module
//! aggregates them in the host with exact fixed-point arithmetic and bounds each entity's
//! influence (at most `max_groups_per_entity` groups per metric, at most
//! `max_contributions_per_group` values per group, each value clamped to the metric's bounds).
//! Then the release (`release.rs`) noises every group of the declared domains with exact discrete
//! samplers (`sampling.rs`) at the scale the job's cost and the bounds imply (`mechanism.rs`),
//! suppresses groups below the policy's threshold, and gives every released number its 95%
//! interval, post-processed into where the exact value can be (`accuracy.rs`); the ledger
//! (`ledger.rs`) makes sure the cost was charged first. `forecast.rs` runs the same release many
//! times on a partner's own sample, to show the accuracy before any budget is spent. Receipts (`strongroom_verify::receipt`) bind the result to the run.

pub mod accuracy;
pub mod aggregate;
pub mod forecast;
pub mod ledger;
pub mod mechanism;
pub mod release;
pub mod sampling;

pub use aggregate::{
    Accumulator, Aggregate, Aggregator, BoundingStats, CellClaim, CellColumns, ContributionBounds,
    EntityContributions, GroupKey, GroupRow, MetricResult, encode_group,
};
