"""Warming the interpreter while the module is built.

componentize-py snapshots the interpreter after it imports the query, and the room starts every
customer's fresh instance (isolated mode) from that snapshot. Code that has never run is slow the
first time (CPython specialises its bytecode as it runs, and allocates its caches lazily), and in
a fresh instance every time is the first time. So the build runs `run()` a few times on made-up
rows before the snapshot, and the snapshot holds the warm paths.

A query must not keep state from one customer to the next (isolated mode gives each a fresh
instance, from this snapshot). The build refuses a query whose `run()` changed its module's
globals while warming, naming them, rather than let that state into the snapshot.
"""

from __future__ import annotations

from . import cells, schema
from .manifest import Enumeration

#: Made-up customers, and rows each, per warming round.
CUSTOMERS = 4
ROWS = 24
ROUNDS = 8

_VALUES = {
    "int": lambda i: i % 7,
    "float": lambda i: 12.5 * (i % 9) + 0.25,
    "bool": lambda i: i % 2 == 0,
    "date": lambda i: 19_700 + i,
    "category": lambda i: i % 2,
}


class StateChanged(Exception):
    """`run()` changed module-level state while warming."""


def _fingerprint(module) -> dict:
    out = {}
    for name, value in vars(module).items():
        if name.startswith("__"):
            continue
        try:
            size = len(value)
        except Exception:
            size = None
        out[name] = (id(value), size)
    return out


def warm(query, module) -> None:
    """Runs `query` on made-up rows; raises `StateChanged` if `module`'s globals changed."""
    tables = []
    for t in query.reads:
        rows = ROWS if len(tables) else 1
        columns = [[_VALUES[c.type](i) for i in range(rows * CUSTOMERS)] for c in t.columns]
        tables.append((columns, cells.starts_of([rows] * CUSTOMERS)))
    sizes = [[len(p.members) if isinstance(p, Enumeration) else 2 for p in m.key]
             for m in query.metrics]
    before = _fingerprint(module)
    schema.WARMING = True
    try:
        for _ in range(ROUNDS):
            try:
                cells.run_entities(query, tables, sizes, CUSTOMERS)
            except Exception:
                pass  # made-up rows may not suit the query; what ran is warm all the same
    finally:
        schema.WARMING = False
    after = _fingerprint(module)
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    if changed:
        raise StateChanged(
            f"run() changed module-level state ({', '.join(changed)}); a query keeps no state "
            "between customers (build with --no-warm to skip warming)")
