// Example query 3 in JavaScript, the Messenger question: among the bank's customers who are also
// the partner's users, how are average monthly balances distributed, and where do they spend?
//
// The same question and manifest as examples/messenger-audience (Rust). The room matched the
// partner's sealed user list against the bank's identifiers in the host; this module sees only a
// per-customer boolean, `customers.in_partner_audience`. A customer outside the audience
// contributes nothing. A matched customer contributes:
// - `balance_band`: 1 under their average monthly balance band (one group);
// - `spend`: their year's card spend per merchant category group (each clamped to [0, 5,000]);
// - `spenders`: 1 per merchant category group they spent in.

import { BOOL, CATEGORY, Domain, FLOAT, Metric, Query, Table, rows } from "strongroom-guest";

const customers = new Table("customers", { in_partner_audience: BOOL, avg_monthly_balance: FLOAT });
const transactions = new Table("transactions", { mcc_group: CATEGORY, amount: FLOAT });

// Balance bands, a public enumeration declared in the manifest.
const BANDS = Domain.enumeration("balance_band", ["under $1k", "$1k-5k", "$5k-25k", "$25k-100k", "$100k and over"]);

const BALANCE_BAND = Metric.count("balance_band", [BANDS]);
const SPEND = Metric.sum("spend", [transactions.column("mcc_group")], 0, 5000);
const SPENDERS = Metric.count("spenders", [transactions.column("mcc_group")]);

/** The band of an average monthly balance. */
function band(balance) {
  const limits = [1000, 5000, 25000, 100000];
  const i = limits.findIndex((limit) => balance < limit);
  return i < 0 ? 4 : i;
}

export const query = new Query({
  name: "messenger-audience",
  version: "0.1.0",
  reads: [customers, transactions],
  metrics: [BALANCE_BAND, SPEND, SPENDERS],
  maxGroupsPerEntity: 10,
  run() {
    const [customer] = rows(customers);
    if (customer === undefined || !customer.in_partner_audience) return;
    BALANCE_BAND.addOne([band(customer.avg_monthly_balance)]);
    const spend = new Map();
    for (const tx of rows(transactions)) spend.set(tx.mcc_group, (spend.get(tx.mcc_group) ?? 0) + tx.amount);
    for (const [group, total] of spend) {
      SPEND.add([group], total);
      SPENDERS.addOne([group]);
    }
  },
});
