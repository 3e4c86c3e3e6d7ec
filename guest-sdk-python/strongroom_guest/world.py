"""The module's side of the contract (`wit/query.wit`, version 0.2): the export the room calls.

The build command generates an entry module that re-exports `WitWorld` from here for the
partner's query, which is what componentize-py binds to the world's `run` export. Only this file
and `schema.py` touch the generated bindings, so the rest of the package runs anywhere.
"""

from __future__ import annotations

import traceback

from componentize_py_types import Err
from wit_world.imports import types

from . import cells

_KINDS = {
    types.ColumnValues_Int, types.ColumnValues_Float, types.ColumnValues_Boolean,
    types.ColumnValues_Date, types.ColumnValues_Category,
}


def error_text(e: BaseException) -> str:
    """A failure as the bank reads it: the exception and where in the partner's code it was
    raised, on one line."""
    if isinstance(e, cells.QueryError):
        return str(e)
    text = "".join(traceback.format_exception_only(type(e), e)).strip()
    frames = traceback.extract_tb(e.__traceback__)
    # The innermost frame outside this package: the partner's line.
    mine = [f for f in frames if "/strongroom_guest/" not in f.filename.replace("\\", "/")]
    if mine:
        f = mine[-1]
        text += f" (at {f.filename.rsplit('/', 1)[-1]} line {f.lineno}, in {f.name})"
    return text


def make_world(query):
    """The class componentize-py exports for `query`."""
    if query.function is None:
        raise cells.QueryError(f"query '{query.name}' has no run function: decorate one with @query.run")

    class WitWorld:
        def run(self, batch: types.Entities) -> types.Cells:
            try:
                if batch.count == 0:
                    raise cells.QueryError("this module runs in isolated or batched mode; the room "
                                           "called it in table mode")
                if len(batch.tables) != len(query.reads):
                    raise cells.QueryError(f"the room sent {len(batch.tables)} tables for "
                                           f"{len(query.reads)} read")
                tables = []
                for t, rows in enumerate(batch.tables):
                    if len(rows.row_counts) != batch.count:
                        raise cells.QueryError(f"the room sent {len(rows.row_counts)} row counts for "
                                               f"table #{t}, for {batch.count} entities")
                    tables.append(([c.value for c in rows.columns], cells.starts_of(rows.row_counts)))
                out, bounding = cells.run_entities(query, tables, batch.domain_sizes, batch.count)
            except BaseException as e:  # the partner's exception (even SystemExit) is the error text
                raise Err(error_text(e)) from None
            entities, metrics, groups, counts, sums = out
            return types.Cells(entities, metrics, groups, counts, sums, types.Bounding(*bounding))

    return WitWorld
