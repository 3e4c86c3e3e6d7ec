"""Example query 1 in Python: card spend by merchant category group and customer age band.

The same question as examples/spend-by-category (Rust), with the same manifest, so a room gives
both exactly the same aggregates. For every customer, under the group (merchant category group,
customer age band):
- `spend`: the customer's total card spend in the group (clamped to [0, 3,000]);
- `purchases`: one per purchase (at most 30 per customer and group);
- `average_ticket`: the mean purchase amount (each clamped to [0, 300], at most 30 per customer
  and group).
"""

from strongroom_guest import CATEGORY, Metric, Query, Table, rows

customers = Table("customers", age_band=CATEGORY)
transactions = Table("transactions", mcc_group=CATEGORY, amount=float)

BY_CATEGORY_AND_AGE = [transactions.mcc_group, customers.age_band]
SPEND = Metric.sum("spend", BY_CATEGORY_AND_AGE, 0.0, 3_000.0)
PURCHASES = Metric.count("purchases", BY_CATEGORY_AND_AGE, max_contributions_per_group=30)
AVERAGE_TICKET = Metric.mean("average_ticket", BY_CATEGORY_AND_AGE, 0.0, 300.0,
                             max_contributions_per_group=30)

query = Query(
    name="spend-by-category",
    version="0.1.0",
    reads=[customers, transactions],
    metrics=[SPEND, PURCHASES, AVERAGE_TICKET],
    max_groups_per_entity=10,
)


@query.run
def run():
    customer = next(iter(rows(customers)), None)
    if customer is None:
        return
    age = customer.age_band
    # The customer's total per merchant category group, in first-seen order.
    spend = {}
    for tx in rows(transactions):
        PURCHASES.add_one((tx.mcc_group, age))
        AVERAGE_TICKET.add((tx.mcc_group, age), tx.amount)
        spend[tx.mcc_group] = spend.get(tx.mcc_group, 0.0) + tx.amount
    for group, total in spend.items():
        SPEND.add((group, age), total)
