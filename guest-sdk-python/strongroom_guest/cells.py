"""One call of the contract: the rows the room pushed for a batch of customers, and each
customer's contributions bounded here into cells.

Bounding follows the room's rules to the letter (the room checks every cell against them, and
the Rust SDK bounds the same way): a value is scaled to the metric's decimals, rounded half away
from zero and clamped to its bounds; a customer keeps the first `max_contributions_per_group`
contributions to a group and the first `max_groups_per_entity` groups of a metric, in the order
it made them. A Python module therefore gives exactly the Rust module's aggregates.

Pure Python with no import from the room: the same code runs on a partner's machine in tests.
"""

from __future__ import annotations

import math

_INF = math.inf


class QueryError(Exception):
    """Raise it to fail the current customer with this text (shown to the bank only)."""


def round_half_away_from_zero(x: float) -> float:
    """`x` rounded to the nearest integer, halves away from zero: the room's definition
    (`strongroom-contract`), written the same way so that both agree bit for bit."""
    whole = float(math.trunc(x))
    if abs(x - whole) >= 0.5:
        return whole + math.copysign(1.0, x)
    return whole


class FixedPoint:
    """Bounds `[lower, upper]` at `decimals` places, as the room defines them."""

    __slots__ = ("scale", "lower", "upper", "lower_f", "upper_f")

    def __init__(self, lower: float, upper: float, decimals: int):
        scale = 1.0
        for _ in range(decimals):  # as Rust's powi: exact for 0..=9 places
            scale *= 10.0
        self.scale = scale
        self.lower = _as_i64(round_half_away_from_zero(lower * scale))
        self.upper = _as_i64(round_half_away_from_zero(upper * scale))
        self.lower_f = float(self.lower)
        self.upper_f = float(self.upper)

    def bound(self, value: float):
        """`value` in fixed point, bounded, and whether clamping changed it."""
        y = value * self.scale
        if y == _INF:
            return self.upper, True
        if y == -_INF:
            return self.lower, True
        fixed = round_half_away_from_zero(y)
        if fixed < self.lower_f:
            return self.lower, True
        if fixed > self.upper_f:
            return self.upper, True
        return int(fixed), False


def _as_i64(x: float) -> int:
    """Rust's `as i64` for a whole float: saturating."""
    if x != x:
        return 0
    if x >= 9.223372036854775807e18:
        return 2**63 - 1
    if x <= -9.223372036854775808e18:
        return -(2**63)
    return int(x)


class _MetricState:
    __slots__ = ("metric", "fixed", "max_per_group", "sizes", "groups", "counts_only",
                 "distinct", "max_groups")

    def __init__(self, metric, sizes, max_groups):
        self.metric = metric
        self.fixed = FixedPoint(metric.lower, metric.upper, metric.decimals)
        self.max_per_group = metric.max_contributions_per_group
        self.sizes = sizes
        # The current customer's groups: dense index -> [count, fixed-point sum], in the order
        # it first contributed to them.
        self.groups = {}
        self.counts_only = metric.kind in ("count", "distinct")
        self.distinct = metric.kind == "distinct"
        self.max_groups = max_groups


class Call:
    """What one call holds: per table its columns and where each customer's rows start, the
    metrics' states, and the bounding counters."""

    def __init__(self, query, tables, domain_sizes):
        self.query = query
        # Per table read: (columns as lists, starts per entity).
        self.tables = tables
        self.entity = 0
        self.metrics = [
            _MetricState(m, list(domain_sizes[i]) if i < len(domain_sizes) else [],
                         query.max_groups_per_entity)
            for i, m in enumerate(query.metrics)
        ]
        self.dropped_over_group_limit = 0
        self.dropped_over_contribution_limit = 0
        self.clamped = 0

    def emit(self, entity, out):
        """The current customer's cells, sorted by (metric, group), leaving it none."""
        entities, metrics, groups, counts, sums = out
        for m, state in enumerate(self.metrics):
            if not state.groups:
                continue
            for group in sorted(state.groups):
                count, total = state.groups[group]
                entities.append(entity)
                metrics.append(m)
                groups.append(group)
                counts.append(count)
                sums.append(total)
            state.groups = {}


#: The call being served, if any.
CURRENT: Call | None = None


def add(metric, key, value):
    call = CURRENT
    if call is None:
        raise QueryError(f"metric '{metric.name}': contributions are made while run() serves a customer")
    if value != value:
        raise QueryError(f"metric '{metric.name}': contributed a value that is not a number")
    index = metric.index
    if index is None or index >= len(call.metrics) or call.metrics[index].metric is not metric:
        raise QueryError(f"metric '{metric.name}' is not listed in the query's metrics")
    state = call.metrics[index]
    sizes = state.sizes
    if isinstance(key, int):
        key = (key,)
    if len(key) != len(sizes):
        raise QueryError(f"metric '{metric.name}' has a group key of {len(sizes)} part(s), got {len(key)}")
    group = 0
    for part, (k, size) in enumerate(zip(key, sizes)):
        if not 0 <= k < size:
            raise QueryError(f"metric '{metric.name}': group key part {part} is {k}, outside its "
                             f"public domain ({size} entries)")
        group = group * size + k
    g = state.groups.get(group)
    if g is None:
        if len(state.groups) >= state.max_groups:
            call.dropped_over_group_limit += 1
            return
        g = state.groups[group] = [0, 0]
    if g[0] >= state.max_per_group:
        # A distinct metric counts the customer once, however often it says so.
        if not state.distinct:
            call.dropped_over_contribution_limit += 1
        return
    g[0] += 1
    if not state.counts_only:
        fixed, was_clamped = state.fixed.bound(float(value))
        if was_clamped:
            call.clamped += 1
        g[1] += fixed


def rows(table):
    """The current customer's rows of `table`, each with one attribute per declared column."""
    call = CURRENT
    if call is None:
        raise QueryError(f"rows({table.name}): rows are read while run() serves a customer")
    for i, t in enumerate(call.query.reads):
        if t is table or t.name == table.name:
            columns, starts = call.tables[i]
            a, b = starts[call.entity], starts[call.entity + 1]
            make = t.Row._make
            return [make(values) for values in zip(*(c[a:b] for c in columns))]
    raise QueryError(f"rows({table.name}): the query does not read table '{table.name}'")


def columns(table):
    """The current customer's rows of `table` as one list per declared column (in the order
    declared): the fastest way through many rows."""
    call = CURRENT
    if call is None:
        raise QueryError(f"columns({table.name}): rows are read while run() serves a customer")
    for i, t in enumerate(call.query.reads):
        if t is table or t.name == table.name:
            cols, starts = call.tables[i]
            a, b = starts[call.entity], starts[call.entity + 1]
            return t.Row._make(c[a:b] for c in cols)
    raise QueryError(f"columns({table.name}): the query does not read table '{table.name}'")


def run_entities(query, tables, domain_sizes, count):
    """Runs the query once per customer of a call and returns the cells as five lists plus the
    bounding counters. The first customer whose run fails fails the call (the room then runs
    each customer of the call on its own, so only that one loses its contributions)."""
    global CURRENT
    call = Call(query, tables, domain_sizes)
    out = ([], [], [], [], [])
    CURRENT = call
    try:
        for entity in range(count):
            call.entity = entity
            query.function()
            call.emit(entity, out)
    finally:
        CURRENT = None
    return out, (call.dropped_over_group_limit, call.dropped_over_contribution_limit, call.clamped)


def starts_of(row_counts):
    """Where each customer's rows start, plus the end."""
    at = [0]
    total = 0
    for n in row_counts:
        total += n
        at.append(total)
    return at
