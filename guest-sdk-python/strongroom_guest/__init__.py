"""strongroom-guest: write a Strongroom query module in Python.

A module declares what it reads and what it releases, and a function that runs for each
customer (in a fresh instance, isolated mode; or for batches of customers, once the bank has
approved the module)::

    from strongroom_guest import CATEGORY, Metric, Query, Table, rows

    transactions = Table("transactions", mcc_group=CATEGORY, amount=float)
    SPEND = Metric.sum("spend", [transactions.mcc_group], 0.0, 5_000.0,
                       max_contributions_per_group=50)
    query = Query(name="spend-by-mcc", version="0.1.0", reads=[transactions],
                  metrics=[SPEND], max_groups_per_entity=10)

    @query.run
    def run():
        for tx in rows(transactions):
            SPEND.add((tx.mcc_group,), tx.amount)

`strongroom-guest build query.py -o query.wasm` builds the component with componentize-py and
embeds the manifest; docs/guest-python.md walks through it from install to a result.
"""

from .cells import QueryError, columns, rows
from .manifest import (
    BOOL, CATEGORY, DATE, FLOAT, INT, Domain, Enumeration, ManifestError, Metric, Query, Table,
)
from .schema import dictionary, parameter, parameters

__all__ = [
    "BOOL", "CATEGORY", "DATE", "FLOAT", "INT", "Domain", "Enumeration", "ManifestError", "Metric",
    "Query", "QueryError", "Table", "columns", "dictionary", "parameter", "parameters", "rows",
]
