"""The SDK's own tests, on the partner's machine (no room, no toolchain): declarations refuse
what the room would, and one call's bounding gives the cells the room's rules give."""

import math
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strongroom_guest import (  # noqa: E402
    CATEGORY, FLOAT, Domain, ManifestError, Metric, Query, QueryError, Table, columns, rows,
)
from strongroom_guest import cells  # noqa: E402

tx = Table("transactions", mcc_group=CATEGORY, amount=FLOAT)


def call(query, mcc, amount, row_counts, sizes):
    """Runs `query` over one call: the transactions table as given, per-entity row counts."""
    tables = [([mcc, amount], cells.starts_of(row_counts))]
    return cells.run_entities(query, tables, sizes, len(row_counts))


class Declarations(unittest.TestCase):
    def test_mistakes_are_named(self):
        for make, says in [
            (lambda: Table("t"), "read at least one column"),
            (lambda: Table("t", a="decimal"), "type 'decimal'"),
            (lambda: Metric.sum("s", [tx.amount], 0, 1), "is a float column"),
            (lambda: Metric.sum("s", [tx.mcc_group], 2, 1), "above upper bound"),
            (lambda: Metric.sum("s", [tx.mcc_group], 0, math.inf), "finite"),
            (lambda: Metric.sum("s", [tx.mcc_group] * 5, 0, 1), "1 to 4 parts"),
            (lambda: Metric.sum("s", [tx.mcc_group], 0, 1, decimals=10), "decimals"),
            (lambda: Metric.count("c", [tx.mcc_group], max_contributions_per_group=0), "at least 1"),
            (lambda: Query(name="q", version="1", reads=[tx], metrics=[], max_groups_per_entity=1),
             "at least one metric"),
            (lambda: Query(name="q", version="1", reads=[], max_groups_per_entity=1,
                           metrics=[Metric.count("c", [tx.mcc_group])]), "not a category column the query reads"),
            (lambda: Query(name="q", version="1", reads=[tx, tx], max_groups_per_entity=1,
                           metrics=[Metric.count("c", [tx.mcc_group])]), "listed twice"),
        ]:
            with self.assertRaises(ManifestError) as e:
                make()
            self.assertIn(says, str(e.exception))

    def test_any_column_name_is_an_attribute(self):
        t = Table("t", **{"class": int, "a-b": float, "1st": bool})
        self.assertEqual(t.Row._fields, ("class_", "a_b", "c1st"))
        self.assertIn('{ name = "class", type = "int" }',
                      Query(name="q", version="1", reads=[t], max_groups_per_entity=1,
                            metrics=[Metric.count("c", [Domain.enumeration("e", ["x"])])]).to_toml())
        with self.assertRaises(ManifestError):
            Table("t", **{"a-b": int, "a_b": int})

    def test_the_manifest_states_every_default(self):
        q = Query(name="q", version="1", reads=[tx], max_groups_per_entity=3,
                  metrics=[Metric.count("c", [tx.mcc_group, Domain.enumeration("band", ["a", "b"])])])
        text = q.to_toml()
        for line in ['mode = "isolated"', "lower = 0.0", "upper = 1.0", "decimals = 2",
                     "max_contributions_per_group = 1",
                     'key = ["transactions.mcc_group", { enumeration = "band", members = ["a", "b"] }]']:
            self.assertIn(line, text)


class Bounding(unittest.TestCase):
    def test_limits_clamping_and_order(self):
        spend = Metric.sum("spend", [tx.mcc_group], 0.0, 100.0, max_contributions_per_group=2)
        buyers = Metric.distinct("buyers", [tx.mcc_group])
        q = Query(name="q", version="1", reads=[tx], metrics=[spend, buyers], max_groups_per_entity=2)

        @q.run
        def run():
            for t in rows(tx):
                spend.add((t.mcc_group,), t.amount)
                buyers.add_one((t.mcc_group,))

        # Entity 0: groups 3, 3, 3 (third over the contribution limit), 1, then 0 (over the
        # group limit); 250.004 clamps to 100. Entity 1: one row, 0.005 rounds half away to 1.
        out, bounding = call(q, [3, 3, 3, 1, 0, 2], [10.0, 250.004, 1.0, 0.5, 7.0, 0.005],
                             [5, 1], [[4], [4]])
        entities, metrics, groups, counts, sums = out
        self.assertEqual(list(zip(entities, metrics, groups, counts, sums)), [
            (0, 0, 1, 1, 50), (0, 0, 3, 2, 11000), (0, 1, 1, 1, 0), (0, 1, 3, 1, 0),
            (1, 0, 2, 1, 1), (1, 1, 2, 1, 0),
        ])
        # Over the group limit: spend and buyers each drop group 0; over the contribution
        # limit: spend's third row only (distinct counts once, silently); one clamp.
        self.assertEqual(bounding, (2, 1, 1))

    def test_a_failure_names_itself(self):
        m = Metric.sum("spend", [tx.mcc_group], 0.0, 1.0)
        q = Query(name="q", version="1", reads=[tx], metrics=[m], max_groups_per_entity=2)

        @q.run
        def run():
            for t in columns(tx).amount:
                m.add((9,), t)

        with self.assertRaises(QueryError) as e:
            call(q, [0], [1.0], [1], [[4]])
        self.assertIn("group key part 0 is 9, outside its public domain (4 entries)", str(e.exception))
        self.assertIsNone(cells.CURRENT, "the call is over")
        q.function = lambda: m.add((0,), math.nan)
        with self.assertRaises(QueryError) as e:
            call(q, [0], [1.0], [1], [[4]])
        self.assertIn("not a number", str(e.exception))


if __name__ == "__main__":
    unittest.main()
