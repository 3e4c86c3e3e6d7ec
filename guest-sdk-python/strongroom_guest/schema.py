"""What a module may ask the room about the data: public dictionaries and the job's parameters
(never values). Calls into the room, so only inside a module."""

from __future__ import annotations

from .cells import QueryError

#: True while the build warms the interpreter (`warm.py`): the room is not there to ask.
WARMING = False


def _room(what: str):
    if WARMING:
        raise QueryError(f"{what}: the room answers only when the module runs")
    from wit_world.imports import schema
    return schema


def dictionary(table: str, column: str) -> list[str]:
    """The public dictionary of a category column the query reads: member `i` is what index `i`
    means."""
    return _room("dictionary").dictionary(table, column)


def parameters() -> dict[str, str]:
    """The job's parameters as the partner submitted them."""
    return dict(_room("parameters").parameters())


def parameter(name: str, default: str | None = None) -> str | None:
    """One of the job's parameters, or `default`."""
    return parameters().get(name, default)
