"""Runs SQL in DuckDB for the SQL corpus test (tests/sql_queries.rs).

Reads a JSON request on stdin: {"tables": {"name": "file.csv", ...}, "queries": ["SQL", ...]}.
Each table is loaded in file order with a row number `rn` (the room keeps each customer's rows in
file order too). Prints {"results": [[[cell, ...], ...], ...]}: every cell as text, so labels,
integers and NULLs compare exactly.
"""

import json
import sys

import duckdb


def main() -> None:
    request = json.load(sys.stdin)
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("SET preserve_insertion_order = true")
    for name, path in request["tables"].items():
        con.execute(
            f"CREATE TABLE {name} AS SELECT row_number() OVER () AS rn, * "
            f"FROM read_csv('{path}', header = true, auto_detect = true)"
        )
    results = []
    for query in request["queries"]:
        rows = con.execute(query).fetchall()
        results.append([[None if v is None else str(v) for v in row] for row in rows])
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
