//! Exact, bounded aggregation of contributions.
//!
//! Values become integers at each metric's declared precision (`decimals`) as they arrive, so
//! sums are exact and independent of the order of the data. Every contribution is attributed to
//! one entity; [`EntityContributions`] enforces that entity's bounds before it is merged.

use std::collections::HashMap;

use strongroom_contract::manifest::{FixedPoint, Manifest, Metric, MetricKind};

/// A group key: up to four indices into public domains; unused parts are `u32::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey(pub [u32; 4]);

impl GroupKey {
    /// Builds a key from its parts (at most four; checked by the caller).
    pub fn new(parts: &[u32]) -> GroupKey {
        let mut k = [u32::MAX; 4];
        for (slot, p) in k.iter_mut().zip(parts) {
            *slot = *p;
        }
        GroupKey(k)
    }

    /// The used parts.
    pub fn parts(&self, arity: usize) -> &[u32] {
        &self.0[..arity]
    }
}

/// A cell as a version 0.2 module returns it, before the host checked it
/// ([`ContributionBounds::accept_cells`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellClaim {
    /// The entity, numbered within the call.
    pub entity: u32,
    /// Index of the metric in the manifest.
    pub metric: u32,
    /// Dense index of the group: its key read as a number in the bases of the domain sizes.
    pub group: u64,
    /// Contributions kept.
    pub count: u32,
    /// Their fixed-point sum.
    pub sum: i64,
}

/// The cells a version 0.2 module returned, column by column as they crossed the boundary,
/// before the host checked them.
#[derive(Clone, Copy, Debug)]
pub struct CellColumns<'a> {
    /// Per cell, the entity, numbered within the call.
    pub entities: &'a [u32],
    /// Per cell, the metric's index in the manifest.
    pub metrics: &'a [u32],
    /// Per cell, the group's dense index.
    pub groups: &'a [u64],
    /// Per cell, the contributions kept.
    pub counts: &'a [u32],
    /// Per cell, their fixed-point sum.
    pub sums: &'a [i64],
}

impl CellColumns<'_> {
    /// Cells, once the lists are known to be equally long.
    fn len(&self) -> usize {
        self.entities.len()
    }

    fn claim(&self, i: usize) -> CellClaim {
        CellClaim {
            entity: self.entities[i],
            metric: self.metrics[i],
            group: self.groups[i],
            count: self.counts[i],
            sum: self.sums[i],
        }
    }
}

/// The key whose dense index in the bases `sizes` (first part most significant) is `group`, or
/// `None` when `group` is outside the domain.
fn decode_group(mut group: u64, sizes: &[u32]) -> Option<GroupKey> {
    let mut parts = [u32::MAX; 4];
    for (slot, &size) in parts[..sizes.len()].iter_mut().zip(sizes).rev() {
        if size == 0 {
            return None;
        }
        *slot = (group % u64::from(size)) as u32;
        group /= u64::from(size);
    }
    (group == 0).then_some(GroupKey(parts))
}

/// The key of a group [`ContributionBounds::check_cells`] found inside its domain.
fn checked_key(group: u64, sizes: &[u32]) -> GroupKey {
    decode_group(group, sizes).unwrap_or(GroupKey([u32::MAX; 4]))
}

/// The dense index of `key` in the bases `sizes`, the inverse of what the host checks cells with.
pub fn encode_group(key: &[u32], sizes: &[u32]) -> u64 {
    key.iter()
        .zip(sizes)
        .fold(0u64, |acc, (&k, &s)| acc * u64::from(s) + u64::from(k))
}

/// Fixed-point parameters of one metric.
#[derive(Clone, Debug)]
struct MetricBounds {
    kind: MetricKind,
    fixed: FixedPoint,
    max_contributions_per_group: u32,
}

fn bounds_of(m: &Metric) -> MetricBounds {
    MetricBounds {
        kind: m.kind,
        fixed: FixedPoint::new(m.lower, m.upper, m.decimals),
        max_contributions_per_group: m.max_contributions_per_group,
    }
}

/// What bounding removed or changed: shown to the bank, and to a partner in development runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BoundingStats {
    /// Contributions dropped because the entity already reached `max_groups_per_entity`.
    pub dropped_over_group_limit: u64,
    /// Contributions dropped because the entity already gave `max_contributions_per_group`.
    pub dropped_over_contribution_limit: u64,
    /// Values clamped into the metric's bounds.
    pub clamped: u64,
}

impl BoundingStats {
    fn merge(&mut self, other: &BoundingStats) {
        self.dropped_over_group_limit += other.dropped_over_group_limit;
        self.dropped_over_contribution_limit += other.dropped_over_contribution_limit;
        self.clamped += other.clamped;
    }
}

#[derive(Clone, Copy, Debug)]
struct Cell {
    metric: u16,
    key: GroupKey,
    contributions: u32,
    sum: i128,
}

/// One entity's contributions, bounded as they arrive.
#[derive(Clone, Debug, Default)]
pub struct EntityContributions {
    cells: Vec<Cell>,
    groups_per_metric: Vec<u32>,
    stats: BoundingStats,
}

/// The bounds that limit one entity's influence, from a module's manifest.
#[derive(Clone, Debug)]
pub struct ContributionBounds {
    metrics: Vec<MetricBounds>,
    max_groups: u32,
}

impl ContributionBounds {
    /// The bounds a manifest declares.
    pub fn new(manifest: &Manifest) -> ContributionBounds {
        ContributionBounds {
            metrics: manifest.metrics.iter().map(bounds_of).collect(),
            max_groups: manifest.max_groups_per_entity,
        }
    }

    /// Checks the cells a version 0.2 module returned for a call over `entities` entities.
    /// Nothing the module says is trusted: the five lists must be equally long, and every cell
    /// must name an entity of the call and a declared metric, a group inside the metric's domain
    /// (`domain_sizes`, per metric and key part), come after the cell before it in
    /// (entity, metric, group) order (so no group appears twice, or split in two to get past
    /// `max_contributions_per_group`), keep each entity to `max_groups_per_entity` cells per
    /// metric, count 1 to `max_contributions_per_group` contributions and sum within
    /// count x the metric's bounds (0 for a count). These are exactly what bounding one
    /// contribution at a time guarantees, so the sensitivities in docs/privacy.md hold as they
    /// are. The first cell that breaks a rule is named in the error.
    pub fn check_cells(
        &self,
        domain_sizes: &[Vec<u32>],
        entities: u32,
        cells: CellColumns<'_>,
    ) -> Result<(), String> {
        let n = cells.len();
        if [
            cells.metrics.len(),
            cells.groups.len(),
            cells.counts.len(),
            cells.sums.len(),
        ]
        .iter()
        .any(|&len| len != n)
        {
            return Err(
                "the cells' lists (entities, metrics, groups, counts, sums) differ in length"
                    .into(),
            );
        }
        let mut previous: Option<(u32, u32, u64)> = None;
        // Cells of the current (entity, metric): they are consecutive, as cells are sorted.
        let mut run = 0u32;
        for i in 0..n {
            let cell = cells.claim(i);
            let at = (cell.entity, cell.metric, cell.group);
            let refuse = |why: String| Err(format!("cell #{i} {at:?}: {why}"));
            match previous {
                Some(p) if p >= at => {
                    return refuse(
                        "cells must be sorted by (entity, metric, group) with no two alike".into(),
                    );
                }
                Some((entity, metric, _)) if (entity, metric) == (cell.entity, cell.metric) => {
                    run += 1
                }
                _ => run = 1,
            }
            previous = Some(at);
            if cell.entity >= entities {
                return refuse(format!("the call has {entities} entities"));
            }
            let metric = cell.metric as usize;
            let (Some(b), Some(sizes)) = (self.metrics.get(metric), domain_sizes.get(metric))
            else {
                return refuse("no such metric in the manifest".into());
            };
            if decode_group(cell.group, sizes).is_none() {
                return refuse(format!(
                    "the group is outside the metric's domain ({} groups)",
                    sizes.iter().map(|&s| u128::from(s)).product::<u128>()
                ));
            }
            if run > self.max_groups {
                return refuse(format!(
                    "more than max_groups_per_entity = {} cells for this entity and metric",
                    self.max_groups
                ));
            }
            if cell.count == 0 || cell.count > b.max_contributions_per_group {
                return refuse(format!(
                    "count must be 1 to max_contributions_per_group = {}",
                    b.max_contributions_per_group
                ));
            }
            let sum = i128::from(cell.sum);
            let (low, high) = match b.kind {
                MetricKind::Count => (0, 0),
                _ => (
                    i128::from(cell.count) * i128::from(b.fixed.lower),
                    i128::from(cell.count) * i128::from(b.fixed.upper),
                ),
            };
            if sum < low || sum > high {
                return refuse(format!(
                    "the sum must lie in [{low}, {high}] for {} contribution(s)",
                    cell.count
                ));
            }
        }
        Ok(())
    }

    /// Checks cells as [`ContributionBounds::check_cells`] does and gives each entity's bounded
    /// contributions, in entity order; `reported` (what the module says its bounding did)
    /// rides on the first entity. No cell is kept unless every cell passes.
    pub fn accept_cells(
        &self,
        domain_sizes: &[Vec<u32>],
        entities: u32,
        cells: CellColumns<'_>,
        reported: BoundingStats,
    ) -> Result<Vec<EntityContributions>, String> {
        self.check_cells(domain_sizes, entities, cells)?;
        let mut out: Vec<EntityContributions> = (0..entities)
            .map(|_| EntityContributions::default())
            .collect();
        if let Some(first) = out.first_mut() {
            first.stats = reported;
        }
        for i in 0..cells.len() {
            let cell = cells.claim(i);
            let metric = cell.metric as usize;
            let entity = &mut out[cell.entity as usize];
            if entity.groups_per_metric.len() < self.metrics.len() {
                entity.groups_per_metric.resize(self.metrics.len(), 0);
            }
            entity.groups_per_metric[metric] += 1;
            entity.cells.push(Cell {
                metric: metric as u16,
                key: checked_key(cell.group, &domain_sizes[metric]),
                contributions: cell.count,
                sum: i128::from(cell.sum),
            });
        }
        Ok(out)
    }

    /// Adds one contribution to an entity's pending contributions, applying the bounds.
    /// `metric` must be an index into the manifest's metrics (checked by the caller).
    pub fn add(&self, entity: &mut EntityContributions, metric: usize, key: GroupKey, value: f64) {
        entity.add(&self.metrics, self.max_groups, metric, key, value);
    }
}

impl EntityContributions {
    /// True when nothing was contributed.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    fn add(
        &mut self,
        bounds: &[MetricBounds],
        max_groups: u32,
        metric: usize,
        key: GroupKey,
        value: f64,
    ) {
        let b = &bounds[metric];
        if self.groups_per_metric.len() < bounds.len() {
            self.groups_per_metric.resize(bounds.len(), 0);
        }
        let m = metric as u16;
        let pos = self
            .cells
            .iter()
            .position(|c| c.metric == m && c.key == key);
        let cell = match pos {
            Some(p) => &mut self.cells[p],
            None => {
                if self.groups_per_metric[metric] >= max_groups {
                    self.stats.dropped_over_group_limit += 1;
                    return;
                }
                self.groups_per_metric[metric] += 1;
                self.cells.push(Cell {
                    metric: m,
                    key,
                    contributions: 0,
                    sum: 0,
                });
                let last = self.cells.len() - 1;
                &mut self.cells[last]
            }
        };
        if cell.contributions >= b.max_contributions_per_group {
            // A distinct metric counts the entity once, however often it says so.
            if b.kind != MetricKind::Distinct {
                self.stats.dropped_over_contribution_limit += 1;
            }
            return;
        }
        cell.contributions += 1;
        if !b.kind.counts_only() {
            // NaN is refused before it gets here (a contract violation); infinities clamp.
            let (clamped, was_clamped) = b.fixed.bound(value);
            self.stats.clamped += u64::from(was_clamped);
            cell.sum += i128::from(clamped);
        }
    }
}

/// One group's exact totals: what an aggregator holds per group, and what a partial carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accumulator {
    /// Distinct entities that contributed.
    pub entities: u64,
    /// Contributions kept after bounding.
    pub contributions: u64,
    /// Exact sum in fixed point.
    pub sum: i128,
}

/// Largest domain (in groups) whose cells a call sums in a dense array before hashing.
const DENSE_GROUPS: u64 = 4096;

/// Sums bounded contributions of many entities.
#[derive(Clone, Debug)]
pub struct Aggregator {
    /// Per metric, its groups. Keys lie inside their public domains (checked as they arrive);
    /// the hasher is seeded per process, so no module can choose keys that collide.
    groups: Vec<HashMap<GroupKey, Accumulator, foldhash::fast::RandomState>>,
    stats: BoundingStats,
    entities: u64,
}

impl Aggregator {
    /// An aggregator for a module's metrics.
    pub fn new(manifest: &Manifest) -> Aggregator {
        Aggregator {
            groups: manifest
                .metrics
                .iter()
                // Sized for the groups of a typical metric, so that the many small partials of
                // a run do not grow their tables row by row.
                .map(|_| {
                    HashMap::with_capacity_and_hasher(64, foldhash::fast::RandomState::default())
                })
                .collect(),
            stats: BoundingStats::default(),
            entities: 0,
        }
    }

    /// Merges one entity's bounded contributions.
    pub fn merge_entity(&mut self, entity: EntityContributions) {
        if !entity.cells.is_empty() {
            self.entities += 1;
        }
        for cell in &entity.cells {
            let acc = self.groups[usize::from(cell.metric)]
                .entry(cell.key)
                .or_default();
            acc.entities += 1;
            acc.contributions += u64::from(cell.contributions);
            acc.sum += cell.sum;
        }
        self.stats.merge(&entity.stats);
    }

    /// Merges cells that [`ContributionBounds::check_cells`] accepted for the same
    /// `domain_sizes`, with what the module reported its bounding did: what merging each entity
    /// of [`ContributionBounds::accept_cells`] gives, without building them.
    pub fn merge_cells(
        &mut self,
        domain_sizes: &[Vec<u32>],
        cells: CellColumns<'_>,
        reported: BoundingStats,
    ) {
        // A call's cells are summed first into one accumulator per group of each metric whose
        // domain is small (indexed by the cell's dense group, no hashing), then each group
        // touched goes into the metric's table once.
        let mut dense: Vec<Option<Vec<Accumulator>>> = domain_sizes
            .iter()
            .take(self.groups.len())
            .map(|sizes| {
                let groups = sizes
                    .iter()
                    .try_fold(1u64, |acc, &s| acc.checked_mul(u64::from(s)))?;
                (groups <= DENSE_GROUPS).then(|| vec![Accumulator::default(); groups as usize])
            })
            .collect();
        let mut previous_entity = None;
        for i in 0..cells.len() {
            let cell = cells.claim(i);
            if previous_entity != Some(cell.entity) {
                self.entities += 1;
                previous_entity = Some(cell.entity);
            }
            let metric = cell.metric as usize;
            let acc = match dense.get_mut(metric) {
                Some(Some(slots)) => &mut slots[cell.group as usize],
                _ => self.groups[metric]
                    .entry(checked_key(cell.group, &domain_sizes[metric]))
                    .or_default(),
            };
            acc.entities += 1;
            acc.contributions += u64::from(cell.count);
            acc.sum += i128::from(cell.sum);
        }
        for (metric, slots) in dense.into_iter().enumerate() {
            let Some(slots) = slots else { continue };
            for (group, touched) in slots.into_iter().enumerate() {
                if touched.entities == 0 {
                    continue;
                }
                let acc = self.groups[metric]
                    .entry(checked_key(group as u64, &domain_sizes[metric]))
                    .or_default();
                acc.entities += touched.entities;
                acc.contributions += touched.contributions;
                acc.sum += touched.sum;
            }
        }
        self.stats.merge(&reported);
    }

    /// Each metric's groups, sorted by key: the canonical form a partial carries.
    pub fn sorted_groups(&self) -> Vec<Vec<(GroupKey, Accumulator)>> {
        self.groups
            .iter()
            .map(|groups| {
                let mut sorted: Vec<(GroupKey, Accumulator)> =
                    groups.iter().map(|(k, a)| (*k, *a)).collect();
                sorted.sort_unstable_by_key(|(k, _)| *k);
                sorted
            })
            .collect()
    }

    /// What bounding did, over the entities merged so far.
    pub fn stats(&self) -> BoundingStats {
        self.stats
    }

    /// Entities that contributed anything.
    pub fn entities(&self) -> u64 {
        self.entities
    }

    /// An aggregator holding `groups` (one list per metric of the manifest it was made for),
    /// `stats` and `entities`: the inverse of [`Aggregator::sorted_groups`] and the two above.
    pub fn from_parts(
        groups: Vec<Vec<(GroupKey, Accumulator)>>,
        stats: BoundingStats,
        entities: u64,
    ) -> Aggregator {
        Aggregator {
            groups: groups
                .into_iter()
                .map(|g| {
                    let mut map = HashMap::with_capacity_and_hasher(
                        g.len(),
                        foldhash::fast::RandomState::default(),
                    );
                    map.extend(g);
                    map
                })
                .collect(),
            stats,
            entities,
        }
    }

    /// Adds what a module reported its own bounding did (version 0.2 cells): shown, never trusted.
    pub fn add_reported_stats(&mut self, stats: BoundingStats) {
        self.stats.merge(&stats);
    }

    /// Merges another aggregator over the same manifest (e.g. from another worker thread).
    pub fn merge(&mut self, other: Aggregator) {
        for (mine, theirs) in self.groups.iter_mut().zip(other.groups) {
            for (key, acc) in theirs {
                let m = mine.entry(key).or_default();
                m.entities += acc.entities;
                m.contributions += acc.contributions;
                m.sum += acc.sum;
            }
        }
        self.stats.merge(&other.stats);
        self.entities += other.entities;
    }

    /// The exact aggregates, groups sorted by key.
    pub fn finish(self, manifest: &Manifest) -> Aggregate {
        let metrics = manifest
            .metrics
            .iter()
            .zip(self.groups)
            .map(|(m, groups)| {
                let mut rows: Vec<GroupRow> = groups
                    .into_iter()
                    .map(|(key, acc)| GroupRow {
                        key: key.parts(m.key.len()).to_vec(),
                        entities: acc.entities,
                        contributions: acc.contributions,
                        sum_fixed: acc.sum,
                    })
                    .collect();
                rows.sort_by(|a, b| a.key.cmp(&b.key));
                MetricResult {
                    name: m.name.clone(),
                    kind: m.kind,
                    decimals: m.decimals,
                    rows,
                }
            })
            .collect();
        Aggregate {
            metrics,
            stats: self.stats,
            entities: self.entities,
        }
    }
}

/// One group of one metric.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroupRow {
    /// Indices into the key's domains.
    pub key: Vec<u32>,
    /// Distinct entities that contributed.
    pub entities: u64,
    /// Contributions kept after bounding.
    pub contributions: u64,
    /// Exact sum in fixed point (value × 10^decimals).
    pub sum_fixed: i128,
}

/// All groups of one metric.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MetricResult {
    /// Metric name.
    pub name: String,
    /// What it computes.
    pub kind: MetricKind,
    /// Fixed-point precision.
    pub decimals: u8,
    /// Groups, sorted by key.
    pub rows: Vec<GroupRow>,
}

impl MetricResult {
    /// The metric's value for a group, before any noise: sum, count, mean or distinct entities.
    pub fn value(&self, row: &GroupRow) -> f64 {
        let scale = 10f64.powi(i32::from(self.decimals));
        match self.kind {
            MetricKind::Count => row.contributions as f64,
            MetricKind::Distinct => row.entities as f64,
            MetricKind::Sum => row.sum_fixed as f64 / scale,
            MetricKind::Mean if row.contributions == 0 => 0.0,
            MetricKind::Mean => row.sum_fixed as f64 / scale / row.contributions as f64,
        }
    }
}

/// Exact aggregates of a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Aggregate {
    /// One result per declared metric, in manifest order.
    pub metrics: Vec<MetricResult>,
    /// What bounding did.
    pub stats: BoundingStats,
    /// Entities that contributed anything.
    pub entities: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_group_indices_read_keys_in_the_domains_bases() {
        let sizes = [10, 7, 3];
        let mut seen = 0u64;
        for a in 0..10 {
            for b in 0..7 {
                for c in 0..3 {
                    let group = encode_group(&[a, b, c], &sizes);
                    // Lexicographic order of keys is the order of their indices.
                    assert_eq!(group, seen);
                    seen += 1;
                    assert_eq!(decode_group(group, &sizes), Some(GroupKey::new(&[a, b, c])));
                }
            }
        }
        assert_eq!(decode_group(seen, &sizes), None);
        assert_eq!(decode_group(u64::MAX, &sizes), None);
        assert_eq!(decode_group(0, &[0]), None);
    }

    fn metric(name: &str, kind: MetricKind) -> Metric {
        Metric {
            name: name.into(),
            kind,
            decimals: 2,
            lower: -5.0,
            upper: 50.0,
            max_contributions_per_group: 4,
            key: Vec::new(),
        }
    }

    /// Cells merged straight into an aggregator (dense accumulators for a small domain, the
    /// hash table for a large one) sum to exactly what merging each accepted entity gives.
    #[test]
    fn merging_cells_equals_merging_each_entity() {
        let manifest = Manifest {
            name: "m".into(),
            version: "1".into(),
            mode: strongroom_contract::manifest::Mode::Isolated,
            max_groups_per_entity: 3,
            reads: Vec::new(),
            metrics: vec![
                metric("small", MetricKind::Count),
                metric("large", MetricKind::Sum),
            ],
        };
        // 70 groups, and 15,000 (over the dense limit).
        let domain_sizes = vec![vec![10, 7], vec![5_000, 3]];
        let bounds = ContributionBounds::new(&manifest);
        let (mut entities, mut metrics, mut groups, mut counts, mut sums) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut state = 7u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) % n
        };
        for entity in 0..200u32 {
            for (m, size) in [(0u32, 70u64), (1, 15_000)] {
                let mut picked: Vec<u64> = (0..next(4)).map(|_| next(size)).collect();
                picked.sort_unstable();
                picked.dedup();
                for group in picked {
                    let count = 1 + next(4) as u32;
                    entities.push(entity);
                    metrics.push(m);
                    groups.push(group);
                    counts.push(count);
                    sums.push(if m == 0 {
                        0
                    } else {
                        i64::from(count) * (next(5_501) as i64 - 500)
                    });
                }
            }
        }
        let cells = CellColumns {
            entities: &entities,
            metrics: &metrics,
            groups: &groups,
            counts: &counts,
            sums: &sums,
        };
        let reported = BoundingStats {
            dropped_over_group_limit: 3,
            dropped_over_contribution_limit: 5,
            clamped: 8,
        };
        bounds
            .check_cells(&domain_sizes, 200, cells)
            .expect("valid cells");
        let mut direct = Aggregator::new(&manifest);
        direct.merge_cells(&domain_sizes, cells, reported);
        let mut each = Aggregator::new(&manifest);
        for entity in bounds
            .accept_cells(&domain_sizes, 200, cells, reported)
            .expect("valid cells")
        {
            each.merge_entity(entity);
        }
        assert!(
            direct.sorted_groups()[1].len() > 100,
            "the large metric has many groups"
        );
        assert_eq!(direct.sorted_groups(), each.sorted_groups());
        assert_eq!(direct.stats(), each.stats());
        assert_eq!(direct.entities(), each.entities());
    }

    #[test]
    fn a_distinct_metric_counts_an_entity_once_without_calling_the_rest_dropped() {
        let mut distinct = metric("customers", MetricKind::Distinct);
        (
            distinct.lower,
            distinct.upper,
            distinct.max_contributions_per_group,
        ) = (0.0, 0.0, 1);
        let manifest = Manifest {
            name: "m".into(),
            version: "1".into(),
            mode: strongroom_contract::manifest::Mode::Isolated,
            max_groups_per_entity: 1,
            reads: Vec::new(),
            metrics: vec![distinct],
        };
        let bounds = ContributionBounds::new(&manifest);
        let mut entity = EntityContributions::default();
        for _ in 0..3 {
            bounds.add(&mut entity, 0, GroupKey::new(&[2]), 1.0);
        }
        let mut aggregator = Aggregator::new(&manifest);
        aggregator.merge_entity(entity);
        let groups = aggregator.sorted_groups();
        assert_eq!(groups[0].len(), 1);
        assert_eq!(
            groups[0][0].1,
            Accumulator {
                entities: 1,
                contributions: 1,
                sum: 0
            }
        );
        assert_eq!(aggregator.stats(), BoundingStats::default());
    }
}
