"""Example query 3 in Python, the Messenger question: among the bank's customers who are also the
partner's users, how are average monthly balances distributed, and where do they spend?

The same question and manifest as examples/messenger-audience (Rust). The room matched the
partner's sealed user list against the bank's identifiers in the host; this module sees only a
per-customer boolean, `customers.in_partner_audience`. A customer outside the audience
contributes nothing. A matched customer contributes:
- `balance_band`: 1 under their average monthly balance band (one group);
- `spend`: their year's card spend per merchant category group (each clamped to [0, 5,000]);
- `spenders`: 1 per merchant category group they spent in.
"""

from strongroom_guest import BOOL, CATEGORY, FLOAT, Domain, Metric, Query, Table, rows

customers = Table("customers", in_partner_audience=BOOL, avg_monthly_balance=FLOAT)
transactions = Table("transactions", mcc_group=CATEGORY, amount=FLOAT)

#: Balance bands, a public enumeration declared in the manifest.
BANDS = Domain.enumeration(
    "balance_band", ["under $1k", "$1k-5k", "$5k-25k", "$25k-100k", "$100k and over"])

BALANCE_BAND = Metric.count("balance_band", [BANDS])
SPEND = Metric.sum("spend", [transactions.mcc_group], 0.0, 5_000.0)
SPENDERS = Metric.count("spenders", [transactions.mcc_group])

query = Query(
    name="messenger-audience",
    version="0.1.0",
    reads=[customers, transactions],
    metrics=[BALANCE_BAND, SPEND, SPENDERS],
    max_groups_per_entity=10,
)


def band(balance: float) -> int:
    """The band of an average monthly balance."""
    for i, limit in enumerate((1_000.0, 5_000.0, 25_000.0, 100_000.0)):
        if balance < limit:
            return i
    return 4


@query.run
def run():
    customer = next(iter(rows(customers)), None)
    if customer is None or not customer.in_partner_audience:
        return
    BALANCE_BAND.add_one((band(customer.avg_monthly_balance),))
    spend = {}
    for tx in rows(transactions):
        spend[tx.mcc_group] = spend.get(tx.mcc_group, 0.0) + tx.amount
    for group, total in spend.items():
        SPEND.add((group,), total)
        SPENDERS.add_one((group,))
