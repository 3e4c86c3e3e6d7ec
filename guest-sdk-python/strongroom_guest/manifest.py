"""The manifest as a partner declares it in Python: tables and the columns read from them,
metrics with their group keys, bounds and limits, and the query that ties them together.

The room reads the manifest from the module itself, as a custom section encoded by the one
encoder of the format (`strongroom module embed-manifest`, docs/formats/manifest.md): the build
command writes these declarations as that command's TOML. Defaults are the format's: 2 decimals,
one contribution per group, a count bounded by [0, 1] (its values are ignored).
"""

from __future__ import annotations

import keyword
import math
import re

from . import cells as _cells

#: Column types, as a module declares them. Python's own `int`, `float` and `bool` work too.
INT = "int"
FLOAT = "float"
BOOL = "bool"
DATE = "date"
CATEGORY = "category"

_TYPES = {int: INT, float: FLOAT, bool: BOOL, INT: INT, FLOAT: FLOAT, BOOL: BOOL,
          "boolean": BOOL, DATE: DATE, CATEGORY: CATEGORY}
_KINDS = ("sum", "count", "mean", "distinct")
_MAX_DECIMALS = 9
_MAX_KEY_PARTS = 4


class ManifestError(ValueError):
    """A declaration the room would refuse, named before anything is built."""


class Column:
    """One column of a declared table: `transactions.mcc_group`. A category column can be a
    metric's group key part (its domain is the column's public dictionary)."""

    __slots__ = ("table", "name", "type", "index")

    def __init__(self, table: str, name: str, type_: str, index: int):
        self.table = table
        self.name = name
        self.type = type_
        self.index = index

    def __repr__(self) -> str:
        return f"{self.table}.{self.name}"


class Table:
    """The columns a module reads from one table, each with its type, in the order given::

        transactions = Table("transactions", mcc_group=CATEGORY, amount=float)

    `rows(transactions)` then gives the current customer's rows, each with `.mcc_group` and
    `.amount`; `transactions.mcc_group` names the column as a group key part.
    """

    def __init__(self, name: str, **columns):
        if not name:
            raise ManifestError("a table needs a name")
        if not columns:
            raise ManifestError(f"table '{name}': read at least one column")
        self.name = name
        self.columns: list[Column] = []
        for i, (column, ty) in enumerate(columns.items()):
            if ty not in _TYPES:
                raise ManifestError(
                    f"table '{name}', column '{column}': type {ty!r} is not one of "
                    "int, float, bool, date, category")
            c = Column(name, column, _TYPES[ty], i)
            self.columns.append(c)
        # Rows as tuples with a name per column: cheap to make, read as attributes.
        from collections import namedtuple
        fields = [_identifier(c.name) for c in self.columns]
        if len(set(fields)) != len(fields):
            raise ManifestError(f"table '{name}': two columns have the same attribute name ({fields})")
        self.Row = namedtuple(f"{_identifier(name)}_row", fields)

    def __getattr__(self, column: str) -> Column:
        for c in self.__dict__.get("columns", ()):
            if c.name == column:
                return c
        raise AttributeError(f"table '{self.__dict__.get('name')}' does not read a column '{column}'")

    def __repr__(self) -> str:
        return f"Table({self.name!r})"


def _identifier(name: str) -> str:
    """An attribute name for a column: Python's keywords get a trailing underscore
    (`row.class_`), other characters become underscores, and a name that cannot start one
    gets a `c` in front (`row.c1st`)."""
    ident = re.sub(r"\W", "_", name)
    if not ident or not (ident[0].isalpha()):
        ident = "c" + ident
    return ident + "_" if keyword.iskeyword(ident) else ident


class Enumeration:
    """A group key part whose members the manifest lists itself (public by declaration)."""

    __slots__ = ("name", "members")

    def __init__(self, name: str, members):
        members = list(members)
        if not name:
            raise ManifestError("an enumeration needs a name")
        if not members:
            raise ManifestError(f"enumeration '{name}' needs at least one member")
        self.name = name
        self.members = members

    def index(self, member: str) -> int:
        """The index of `member`, the key part a contribution carries."""
        return self.members.index(member)


class Domain:
    """Group key parts: a category column's public dictionary, or an enumeration."""

    @staticmethod
    def column(table: str, column: str) -> tuple[str, str]:
        return (table, column)

    @staticmethod
    def enumeration(name: str, members) -> Enumeration:
        return Enumeration(name, members)

    #: The months of the year, January first (as the Rust SDK's `Domain::MONTHS`).
    MONTHS = None  # set below


Domain.MONTHS = Enumeration("month", ["January", "February", "March", "April", "May", "June",
                                      "July", "August", "September", "October", "November",
                                      "December"])


class Metric:
    """A released number per group: `Metric.sum`, `.count`, `.mean` or `.distinct`.

    `key` lists the group key's parts (1 to 4): category columns (`transactions.mcc_group`, or
    `("transactions", "mcc_group")`) and enumerations. A contribution names its group by one
    index per part: `SPEND.add((mcc_group, age_band), amount)`.
    """

    def __init__(self, name, kind, key, lower, upper, decimals=2, max_contributions_per_group=1):
        if not name:
            raise ManifestError("a metric needs a name")
        if kind not in _KINDS:
            raise ManifestError(f"metric '{name}': kind {kind!r} is not one of {', '.join(_KINDS)}")
        key = list(key) if isinstance(key, (list, tuple)) and not _is_pair(key) else [key]
        if not 1 <= len(key) <= _MAX_KEY_PARTS:
            raise ManifestError(f"metric '{name}': a group key has 1 to {_MAX_KEY_PARTS} parts, got {len(key)}")
        self.key = [_domain(name, part) for part in key]
        for bound in (lower, upper):
            if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound):
                raise ManifestError(f"metric '{name}': bounds must be finite numbers, got {bound!r}")
        if lower > upper:
            raise ManifestError(f"metric '{name}': lower bound {lower} is above upper bound {upper}")
        if not isinstance(decimals, int) or not 0 <= decimals <= _MAX_DECIMALS:
            raise ManifestError(f"metric '{name}': decimals must be 0 to {_MAX_DECIMALS}, got {decimals!r}")
        if not isinstance(max_contributions_per_group, int) or not 1 <= max_contributions_per_group < 2**32:
            raise ManifestError(f"metric '{name}': max_contributions_per_group must be at least 1, "
                                f"got {max_contributions_per_group!r}")
        self.name = name
        self.kind = kind
        self.lower = float(lower)
        self.upper = float(upper)
        self.decimals = decimals
        self.max_contributions_per_group = max_contributions_per_group
        #: Set when a `Query` lists the metric: its index in the manifest.
        self.index = None

    @staticmethod
    def sum(name, key, lower, upper, *, decimals=2, max_contributions_per_group=1):
        """The sum of values per group, each clamped to [lower, upper]."""
        return Metric(name, "sum", key, lower, upper, decimals, max_contributions_per_group)

    @staticmethod
    def count(name, key, *, max_contributions_per_group=1):
        """How many contributions per group (their values are ignored)."""
        return Metric(name, "count", key, 0.0, 1.0, 2, max_contributions_per_group)

    @staticmethod
    def mean(name, key, lower, upper, *, decimals=2, max_contributions_per_group=1):
        """The mean of values per group, each clamped to [lower, upper]."""
        return Metric(name, "mean", key, lower, upper, decimals, max_contributions_per_group)

    @staticmethod
    def distinct(name, key):
        """How many customers per group: a customer counts once, however often it says so."""
        return Metric(name, "distinct", key, 0.0, 0.0, 2, 1)

    def add(self, key, value=1.0):
        """Contributes `value` to the group `key` (one index per key part) for the current
        customer; bounded here exactly as the room bounds it."""
        _cells.add(self, key, value)

    def add_one(self, key):
        """Contributes one to a count under `key`."""
        _cells.add(self, key, 1.0)

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {self.kind})"


def _is_pair(key) -> bool:
    return isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)


def _domain(metric: str, part):
    if isinstance(part, Column):
        if part.type != CATEGORY:
            raise ManifestError(f"metric '{metric}': key part {part} is a {part.type} column; "
                                "only category columns have a public domain")
        return (part.table, part.name)
    if isinstance(part, Enumeration):
        return part
    if isinstance(part, str) and part.count(".") == 1:
        table, column = part.split(".")
        return (table, column)
    if _is_pair(part):
        return part
    raise ManifestError(f"metric '{metric}': key part {part!r} is neither a category column nor "
                        "an enumeration")


class Query:
    """The whole manifest and the function that runs for each customer::

        query = Query(name="spend-by-category", version="0.1.0", reads=[customers, transactions],
                      metrics=[SPEND], max_groups_per_entity=10)

        @query.run
        def run():
            ...
    """

    def __init__(self, *, name, version, reads, metrics, max_groups_per_entity, mode="isolated"):
        if not name or not version:
            raise ManifestError("a query needs a name and a version")
        if mode not in ("isolated", "table"):
            raise ManifestError(f"mode {mode!r} is not one of isolated, table")
        if mode == "table":
            raise ManifestError("table mode is written with the Rust SDK (docs/guest-sdk.md); "
                                "Python modules run in isolated mode (and batched, once the bank approves)")
        if not isinstance(max_groups_per_entity, int) or not 1 <= max_groups_per_entity < 2**32:
            raise ManifestError(f"max_groups_per_entity must be at least 1, got {max_groups_per_entity!r}")
        if not metrics:
            raise ManifestError("a query declares at least one metric")
        self.name = name
        self.version = version
        self.mode = mode
        self.reads = list(reads)
        self.metrics = list(metrics)
        self.max_groups_per_entity = max_groups_per_entity
        seen = set()
        for t in self.reads:
            if t.name in seen:
                raise ManifestError(f"table '{t.name}' is listed twice in reads")
            seen.add(t.name)
        names = set()
        for i, m in enumerate(self.metrics):
            if m.name in names:
                raise ManifestError(f"metric '{m.name}' is declared twice")
            names.add(m.name)
            if m.index is not None and m.index != i:
                raise ManifestError(f"metric '{m.name}' is listed by two queries at different places")
            m.index = i
            for part in m.key:
                if isinstance(part, tuple):
                    table, column = part
                    t = next((t for t in self.reads if t.name == table), None)
                    c = next((c for c in (t.columns if t else []) if c.name == column), None)
                    if c is None or c.type != CATEGORY:
                        raise ManifestError(f"metric '{m.name}': key part {table}.{column} is not a "
                                            "category column the query reads")
        self.function = None

    def run(self, function):
        """Decorator: the function that runs for each customer."""
        self.function = function
        return function

    def to_toml(self) -> str:
        """The manifest as `strongroom module embed-manifest` reads it."""
        out = [f"name = {_toml_str(self.name)}", f"version = {_toml_str(self.version)}",
               f"mode = {_toml_str(self.mode)}", f"max_groups_per_entity = {self.max_groups_per_entity}"]
        for t in self.reads:
            out.append("")
            out.append("[[reads]]")
            out.append(f"table = {_toml_str(t.name)}")
            cols = ", ".join(f"{{ name = {_toml_str(c.name)}, type = {_toml_str(c.type)} }}" for c in t.columns)
            out.append(f"columns = [{cols}]")
        for m in self.metrics:
            out.append("")
            out.append("[[metrics]]")
            out.append(f"name = {_toml_str(m.name)}")
            out.append(f"kind = {_toml_str(m.kind)}")
            parts = []
            for part in m.key:
                if isinstance(part, Enumeration):
                    members = ", ".join(_toml_str(x) for x in part.members)
                    parts.append(f"{{ enumeration = {_toml_str(part.name)}, members = [{members}] }}")
                else:
                    parts.append(_toml_str(f"{part[0]}.{part[1]}"))
            out.append(f"key = [{', '.join(parts)}]")
            out.append(f"lower = {m.lower!r}")
            out.append(f"upper = {m.upper!r}")
            out.append(f"decimals = {m.decimals}")
            out.append(f"max_contributions_per_group = {m.max_contributions_per_group}")
        return "\n".join(out) + "\n"


def _toml_str(s: str) -> str:
    escaped = []
    for ch in s:
        if ch == '"':
            escaped.append('\\"')
        elif ch == "\\":
            escaped.append("\\\\")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            escaped.append(f"\\u{ord(ch):04x}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'
