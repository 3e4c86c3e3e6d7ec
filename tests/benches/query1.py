"""Query 1 on the plaintext, for the versus_duckdb benchmark: what a bank's engineer would run
instead of Strongroom, with the engines from PyPI (DuckDB, DataFusion, Polars).

    python3 query1.py prep DIR                  CSV -> Parquet and a DuckDB database (timed apart)
    python3 query1.py ENGINE VARIANT DIR THREADS one query in this fresh process

ENGINE: duckdb-parquet, duckdb-native, datafusion, polars. VARIANT:
- same: the module's bounds in SQL, so the answer is Strongroom's exact aggregate bit for bit:
  per customer and (merchant category group, age band), spend summed and clamped to [0, 3000],
  only the customer's first 30 purchases in the group (in file order) counted, each ticket clamped
  to [0, 300]; everything in integer cents, each amount rounded half away from zero;
- plain: what an analyst with the plaintext would write without per-customer limits.

Prints one JSON line: seconds (the query alone, from the files on disk to the rows in Python),
peak_mib (this process's peak resident memory), groups, and for `same` the rows.
"""

import json
import resource
import sys
import time

SAME = """
WITH ranked AS (
  SELECT t.customer_id, t.mcc_group, c.age_band,
         CAST(round(t.amount * 100) AS BIGINT) AS cents,
         row_number() OVER (PARTITION BY t.customer_id, t.mcc_group ORDER BY t.seq) AS rn
  FROM {t} t JOIN {c} c ON t.customer_id = c.customer_id
), per AS (
  SELECT mcc_group, age_band, customer_id,
         least(greatest(sum(cents), 0), 300000) AS spend,
         sum(CASE WHEN rn <= 30 THEN 1 ELSE 0 END) AS purchases,
         sum(CASE WHEN rn <= 30 THEN least(greatest(cents, 0), 30000) ELSE 0 END) AS tickets
  FROM ranked GROUP BY mcc_group, age_band, customer_id
)
SELECT mcc_group, age_band, count(*) AS customers, sum(spend) AS spend,
       sum(purchases) AS purchases, sum(tickets) AS tickets
FROM per GROUP BY mcc_group, age_band
"""

PLAIN = """
SELECT t.mcc_group, c.age_band, sum(t.amount) AS spend, count(*) AS purchases,
       avg(t.amount) AS average_ticket
FROM {t} t JOIN {c} c ON t.customer_id = c.customer_id
GROUP BY t.mcc_group, c.age_band
"""



def peak_mib():
    """This process's peak resident memory: VmHWM, which belongs to the process's own image (a
    fresh one at exec), where ru_maxrss also keeps the peak of the process before its exec, i.e.
    of the parent that forked it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def prep(d):
    import duckdb

    out = {}
    con = duckdb.connect()
    start = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{d}/customers.csv')) TO '{d}/customers.parquet' (FORMAT PARQUET)"
    )
    # `seq` keeps the file order, which "the first 30 purchases" refers to.
    con.execute(
        f"COPY (SELECT *, row_number() OVER () AS seq FROM read_csv('{d}/transactions.csv')) "
        f"TO '{d}/transactions.parquet' (FORMAT PARQUET)"
    )
    out["parquet_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    db = duckdb.connect(f"{d}/bank.duckdb")
    db.execute(f"CREATE TABLE customers AS SELECT * FROM '{d}/customers.parquet'")
    db.execute(f"CREATE TABLE transactions AS SELECT * FROM '{d}/transactions.parquet'")
    db.close()
    out["duckdb_seconds"] = time.perf_counter() - start
    out["version"] = duckdb.__version__
    print(json.dumps(out))


def same_rows(rows):
    return sorted([str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])] for r in rows)


def query(engine, variant, d, threads):
    sql = SAME if variant == "same" else PLAIN
    parquet = {"t": f"'{d}/transactions.parquet'", "c": f"'{d}/customers.parquet'"}
    start = time.perf_counter()
    if engine in ("duckdb-parquet", "duckdb-native"):
        import duckdb

        version = duckdb.__version__
        if engine == "duckdb-native":
            con = duckdb.connect(f"{d}/bank.duckdb", read_only=True)
            names = {"t": "transactions", "c": "customers"}
        else:
            con = duckdb.connect()
            names = parquet
        con.execute(f"SET threads = {threads}")
        rows = con.execute(sql.format(**names)).fetchall()
    elif engine == "datafusion":
        import datafusion

        version = datafusion.__version__
        config = datafusion.SessionConfig().with_target_partitions(threads)
        ctx = datafusion.SessionContext(config)
        ctx.register_parquet("transactions", f"{d}/transactions.parquet")
        ctx.register_parquet("customers", f"{d}/customers.parquet")
        table = ctx.sql(sql.format(t="transactions", c="customers")).to_arrow_table()
        rows = list(zip(*[table.column(i).to_pylist() for i in range(table.num_columns)]))
    elif engine == "polars":
        import polars as pl

        version = pl.__version__
        t = pl.scan_parquet(f"{d}/transactions.parquet")
        c = pl.scan_parquet(f"{d}/customers.parquet")
        j = t.join(c, on="customer_id")
        if variant == "same":
            cents = (pl.col("amount") * 100).round(0, mode="half_away_from_zero").cast(pl.Int64)
            first = pl.col("seq").rank("ordinal").over(["customer_id", "mcc_group"]) <= 30
            per = (
                j.with_columns(cents=cents, first=first)
                .group_by(["mcc_group", "age_band", "customer_id"])
                .agg(
                    spend=pl.col("cents").sum().clip(0, 300000),
                    purchases=pl.col("first").sum(),
                    tickets=pl.col("cents").clip(0, 30000).filter(pl.col("first")).sum(),
                )
            )
            out = per.group_by(["mcc_group", "age_band"]).agg(
                customers=pl.len(),
                spend=pl.col("spend").sum(),
                purchases=pl.col("purchases").sum(),
                tickets=pl.col("tickets").sum(),
            )
        else:
            out = j.group_by(["mcc_group", "age_band"]).agg(
                spend=pl.col("amount").sum(),
                purchases=pl.len(),
                average_ticket=pl.col("amount").mean(),
            )
        rows = out.collect().rows()
    else:
        raise SystemExit(f"unknown engine {engine}")
    seconds = time.perf_counter() - start
    report = {
        "seconds": seconds,
        "peak_mib": peak_mib(),
        "groups": len(rows),
        "version": version,
    }
    if variant == "same":
        report["rows"] = same_rows(rows)
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1] == "prep":
        prep(sys.argv[2])
    else:
        query(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
