#!/usr/bin/env python3
"""Checks that the control plane's SQL runs on PostgreSQL, not only on SQLite.

Applies every migration in runtime/migrations/postgres/ to a fresh PostgreSQL database, then
finds every SQL statement the runtime sends (each string literal given to sqlx::query,
query_scalar or query_as, to a connection's prepare, prepare_cached, query_row or execute, or
bound as `let query = "..."`, in runtime/src/ and server/src/) and has PostgreSQL parse, plan and
type-check it against that schema with PREPARE, after turning `?` placeholders into
`$1, $2, ...` as the room's statement layer does. A statement that PostgreSQL cannot infer a
placeholder's type for is retried with that placeholder declared as text, as the driver would
send it. Session settings (SET ...) are not statements PREPARE takes and are left out.

The tests run the service suite itself on PostgreSQL (STRONGROOM_TEST_POSTGRES); this check also
covers statements no test reaches.

    python3 tests/reference/postgres_check.py ["host=/var/run/postgresql"]

Needs psycopg (pip install 'psycopg[binary]') and a PostgreSQL server. Exits 1 if any migration
or statement fails.
"""
import pathlib
import re
import sys

import psycopg

ROOT = pathlib.Path(__file__).resolve().parents[2]
CALL = re.compile(
    r"(?:(?:sqlx::(?:query|query_scalar|query_as)(?:::<[^>]*>)?|\.prepare_cached|\.prepare"
    r"|\.query_row|\.execute)\(\s*|let query = )(&format!\(\s*)?\""
)


def rust_string(text, start):
    """The Rust string literal starting just after the opening quote at `start`."""
    out, i = [], start
    while True:
        c = text[i]
        if c == "\\":
            n = text[i + 1]
            if n == "\n":  # line continuation: skip the newline and leading whitespace
                i += 2
                while text[i] in " \t":
                    i += 1
                continue
            out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(n, n))
            i += 2
            continue
        if c == '"':
            return "".join(out)
        out.append(c)
        i += 1


def consts(text):
    """`const NAME: &str = "...";` values, for statements built with format!."""
    found = {}
    for m in re.finditer(r'const (\w+): &str = "', text):
        found[m.group(1)] = rust_string(text, m.end())
    return found


def statements():
    paths = [p for d in ("runtime", "server") for p in (ROOT / d / "src").rglob("*.rs")]
    for path in sorted(paths):
        text = path.read_text()
        names = consts(text)
        for m in CALL.finditer(text):
            sql = rust_string(text, m.end())
            if m.group(1):  # format!: substitute the file's string constants
                sql = re.sub(r"\{(\w+)\}", lambda k: names.get(k.group(1), k.group(0)), sql)
            line = text.count("\n", 0, m.start()) + 1
            yield f"{path.relative_to(ROOT)}:{line}", sql


def numbered(sql):
    n = 0

    def next_param(_):
        nonlocal n
        n += 1
        return f"${n}"

    return re.sub(r"\?", next_param, sql), n


def main():
    dsn = sys.argv[1] if len(sys.argv) > 1 else "host=/var/run/postgresql"
    admin = psycopg.connect(dsn + " dbname=postgres", autocommit=True)
    admin.execute("DROP DATABASE IF EXISTS strongroom_sql_check")
    admin.execute("CREATE DATABASE strongroom_sql_check")
    db = psycopg.connect(dsn + " dbname=strongroom_sql_check", autocommit=True)
    failed = 0
    for migration in sorted((ROOT / "runtime" / "migrations" / "postgres").glob("*.sql")):
        sql = migration.read_text()
        try:
            db.execute(sql)
            print(f"ok    migration {migration.name}")
        except psycopg.Error as e:
            failed += 1
            print(f"FAIL  migration {migration.name}: {e}")
    count = 0
    for i, (where, sql) in enumerate(statements()):
        if re.match(r"\s*SET\b", sql):
            continue
        count += 1
        pg, params = numbered(sql)
        declared = ["unknown"] * params
        for _ in range(params + 1):
            types = f"({', '.join(declared)})" if params else ""
            try:
                db.execute(f"PREPARE s{i} {types} AS {pg}")
                db.execute(f"DEALLOCATE s{i}")
                print(f"ok    {where}")
                break
            except psycopg.Error as e:
                m = re.search(r"could not determine data type of parameter \$(\d+)", str(e))
                if m and declared[int(m.group(1)) - 1] == "unknown":
                    declared[int(m.group(1)) - 1] = "text"
                    continue
                failed += 1
                print(f"FAIL  {where}: {str(e).strip()}\n      {pg}")
                break
    print(f"{count} statements, {failed} failure(s)")
    if count < 40:
        print("too few statements found: the extractor no longer matches the code")
        failed += 1
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
