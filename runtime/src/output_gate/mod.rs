//! The output gate: the only way anything computed from the data leaves the room.
//!
//! A guest never writes results; it contributes values to metrics it declared. This module
//! aggregates them in the host with exact fixed-point arithmetic and bounds each entity's
//! influence (at most `max_groups_per_entity` groups per metric, at most
//! `max_contributions_per_group` values per group, each value clamped to the metric's bounds).
//! Thresholds, noise and the privacy budget build on these aggregates.

pub mod aggregate;

pub use aggregate::{
    Aggregate, Aggregator, BoundingStats, ContributionBounds, EntityContributions, GroupKey,
    GroupRow, MetricResult,
};
