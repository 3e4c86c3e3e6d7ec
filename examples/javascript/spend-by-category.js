// Example query 1 in JavaScript: card spend by merchant category group and customer age band.
//
// The same question as examples/spend-by-category (Rust), with the same manifest, so a room
// gives both exactly the same aggregates. For every customer, under the group (merchant category
// group, customer age band):
// - `spend`: the customer's total card spend in the group (clamped to [0, 3,000]);
// - `purchases`: one per purchase (at most 30 per customer and group);
// - `average_ticket`: the mean purchase amount (each clamped to [0, 300], at most 30 per
//   customer and group).

import { CATEGORY, FLOAT, Metric, Query, Table, rows } from "strongroom-guest";

const customers = new Table("customers", { age_band: CATEGORY });
const transactions = new Table("transactions", { mcc_group: CATEGORY, amount: FLOAT });

const BY_CATEGORY_AND_AGE = [transactions.column("mcc_group"), customers.column("age_band")];
const SPEND = Metric.sum("spend", BY_CATEGORY_AND_AGE, 0, 3000);
const PURCHASES = Metric.count("purchases", BY_CATEGORY_AND_AGE, { maxContributionsPerGroup: 30 });
const AVERAGE_TICKET = Metric.mean("average_ticket", BY_CATEGORY_AND_AGE, 0, 300, {
  maxContributionsPerGroup: 30,
});

export const query = new Query({
  name: "spend-by-category",
  version: "0.1.0",
  reads: [customers, transactions],
  metrics: [SPEND, PURCHASES, AVERAGE_TICKET],
  maxGroupsPerEntity: 10,
  run() {
    const [customer] = rows(customers);
    if (customer === undefined) return;
    const age = customer.age_band;
    // The customer's total per merchant category group, in first-seen order.
    const spend = new Map();
    for (const tx of rows(transactions)) {
      PURCHASES.addOne([tx.mcc_group, age]);
      AVERAGE_TICKET.add([tx.mcc_group, age], tx.amount);
      spend.set(tx.mcc_group, (spend.get(tx.mcc_group) ?? 0) + tx.amount);
    }
    for (const [group, total] of spend) SPEND.add([group, age], total);
  },
});
