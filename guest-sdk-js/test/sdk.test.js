// The SDK's own tests, on the partner's machine (no room, no toolchain): declarations refuse
// what the room would, and one call's bounding gives the cells the room's rules give.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CATEGORY, Domain, FLOAT, ManifestError, Metric, Query, QueryError, Table, columns, rows, runEntities, startsOf,
} from "../index.js";
import { errorText } from "../world-text.js";

const tx = new Table("transactions", { mcc_group: CATEGORY, amount: FLOAT });
const call = (query, mcc, amount, rowCounts, sizes) =>
  runEntities(query, [[[mcc, amount], startsOf(rowCounts)]], sizes, rowCounts.length);

test("declaration mistakes are named", () => {
  const cases = [
    [() => new Table("t", {}), "read at least one column"],
    [() => new Table("t", { a: "decimal" }), 'type "decimal"'],
    [() => Metric.sum("s", [tx.column("amount")], 0, 1), "is a float column"],
    [() => Metric.sum("s", [tx.column("mcc_group")], 2, 1), "above upper bound"],
    [() => Metric.sum("s", [tx.column("mcc_group")], 0, Infinity), "finite"],
    [() => Metric.sum("s", Array(5).fill(tx.column("mcc_group")), 0, 1), "1 to 4 parts"],
    [() => Metric.sum("s", [tx.column("mcc_group")], 0, 1, { decimals: 10 }), "decimals"],
    [() => Metric.count("c", [tx.column("mcc_group")], { maxContributionsPerGroup: 0 }), "at least 1"],
    [() => new Query({ name: "q", version: "1", reads: [tx], metrics: [], maxGroupsPerEntity: 1, run() {} }), "at least one metric"],
    [() => new Query({ name: "q", version: "1", reads: [], metrics: [Metric.count("c", ["transactions.mcc_group"])], maxGroupsPerEntity: 1, run() {} }), "not a category column the query reads"],
    [() => new Query({ name: "q", version: "1", reads: [tx], metrics: [Metric.count("c", ["transactions.mcc_group"])], maxGroupsPerEntity: 1 }), "needs a run function"],
  ];
  for (const [make, says] of cases) {
    assert.throws(make, (e) => e instanceof ManifestError && e.message.includes(says), says);
  }
});

test("the manifest states every default", () => {
  const q = new Query({
    name: "q", version: "1", reads: [tx], maxGroupsPerEntity: 3, run() {},
    metrics: [Metric.count("c", [tx.column("mcc_group"), Domain.enumeration("band", ["a", "b"])])],
  });
  const text = q.toToml();
  for (const line of ['mode = "isolated"', "lower = 0.0", "upper = 1.0", "decimals = 2", "max_contributions_per_group = 1",
    'key = ["transactions.mcc_group", { enumeration = "band", members = ["a", "b"] }]']) {
    assert.ok(text.includes(line), `${line} in:\n${text}`);
  }
});

test("limits, clamping and order are the room's", () => {
  const spend = Metric.sum("spend", [tx.column("mcc_group")], 0, 100, { maxContributionsPerGroup: 2 });
  const buyers = Metric.distinct("buyers", [tx.column("mcc_group")]);
  const q = new Query({
    name: "q", version: "1", reads: [tx], metrics: [spend, buyers], maxGroupsPerEntity: 2,
    run() {
      for (const t of rows(tx)) {
        spend.add([t.mcc_group], t.amount);
        buyers.addOne([t.mcc_group]);
      }
    },
  });
  // As the Python SDK's test: group and contribution limits, a clamp, a half rounded away.
  const { cells, bounding } = call(q, [3, 3, 3, 1, 0, 2], [10, 250.004, 1, 0.5, 7, 0.005], [5, 1], [[4], [4]]);
  const got = cells.entities.map((e, i) => [e, cells.metrics[i], cells.groups[i], cells.counts[i], cells.sums[i]]);
  assert.deepEqual(got, [
    [0, 0, 1, 1, 50], [0, 0, 3, 2, 11000], [0, 1, 1, 1, 0], [0, 1, 3, 1, 0], [1, 0, 2, 1, 1], [1, 1, 2, 1, 0],
  ]);
  assert.deepEqual(bounding, [2, 1, 1]);
});

test("a failure names itself and ends the call", () => {
  const m = Metric.sum("spend", [tx.column("mcc_group")], 0, 1);
  let body = () => {
    for (const a of columns(tx).amount) m.add([9], a);
  };
  const q = new Query({ name: "q", version: "1", reads: [tx], metrics: [m], maxGroupsPerEntity: 2, run: () => body() });
  assert.throws(() => call(q, [0], [1], [1], [[4]]), (e) => e instanceof QueryError && e.message.includes("group key part 0 is 9, outside its public domain (4 entries)"));
  assert.throws(() => m.add([0], 1), /while run\(\) serves a customer/);
  body = () => m.add([0], NaN);
  assert.throws(() => call(q, [0], [1], [1], [[4]]), /not a number/);
  function check() {
    throw new RangeError("too large");
  }
  let thrown;
  try {
    check();
  } catch (e) {
    thrown = e;
  }
  assert.match(errorText(thrown), /^RangeError: too large/);
  assert.equal(errorText(new QueryError("plain")), "plain");
});
