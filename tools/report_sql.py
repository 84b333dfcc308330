"""Runs the BigQuery SQL in reports/sql/ on a replay's Avro files, locally,
in DuckDB, with the same table names and columns as in BigQuery: to check the
SQL gives the report job's numbers without a BigQuery project. And checks that
the same text is BigQuery SQL: sqlglot parses it with BigQuery's grammar and
must know every function it calls as a BigQuery function.

    python -m tools.report_sql INPUT_DIR [REPORT ...] [--from_date=D] [--to_date=D] [--players=FILE]

The SQL files stay valid BigQuery; `to_duckdb` rewrites the few spots where
DuckDB reads the same text differently (TRANSLATIONS, each with its reason),
and `connect` defines the BigQuery functions DuckDB lacks (FUNCTIONS).
"""
import argparse
import csv
import glob
import os
import re
import sys
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import duckdb
import fastavro
import pyarrow as pa
import sqlglot
from sqlglot import exp

import schemas
from sessions.reports import REPORTS, REPORTS_BY_NAME, PlayerProfile, parse_day, read_players

SQL_DIR = Path(__file__).resolve().parent.parent / "reports" / "sql"
PARAMETERS = ("from_date", "to_date")
PLAYERS = "players"  # the operator's players: user_id, registered_at, segment

# (BigQuery pattern, DuckDB replacement, why)
TRANSLATIONS: Tuple[Tuple[str, str, str], ...] = (
    (r"\bBIGNUMERIC\b", "DECIMAL(38, 18)",
     "DuckDB's widest decimal; the amounts' 18 places fit, as long as a sum stays below 1e20"),
    (r"\bNUMERIC\b", "DECIMAL(38, 9)",
     "BigQuery's NUMERIC is DECIMAL(38, 9); DuckDB's bare NUMERIC is DECIMAL(18, 3)"),
    (r"\bSAFE_DIVIDE\(", "safe_divide(",
     "DuckDB divides decimals in DOUBLE, which misrounds halves (2.03 / 2 -> 1.01); "
     "safe_divide is the exact UDF below, NULL on a zero divisor as in BigQuery"),
    (r"\bPERCENTILE_CONT\(", "quantile_cont(",
     "same arguments, same window form, same interpolation"),
    (r"\bUNIX_MILLIS\(", "epoch_ms(",
     "same function, another name"),
    (r"@(\w+)", r"$\1",
     "query parameters: @name in BigQuery, $name in DuckDB"),
)

# BigQuery functions DuckDB does not have, defined as DuckDB macros: (name, macro)
FUNCTIONS: Tuple[Tuple[str, str], ...] = (
    ("unix_date", "CREATE MACRO unix_date(d) AS CAST(d - DATE '1970-01-01' AS BIGINT)"),
)

_DUCKDB_TYPES = {"STRING": "VARCHAR", "INTEGER": "BIGINT", "BIGNUMERIC": "DECIMAL(38, 18)", "TIMESTAMP": "TIMESTAMP"}
_ARROW_TYPES = {"STRING": pa.string(), "INTEGER": pa.int64(), "BIGNUMERIC": pa.decimal128(38, 18),
                "TIMESTAMP": pa.timestamp("ms")}
_SCALE = Decimal("1e-18")


def to_duckdb(sql: str) -> str:
    for pattern, replacement, _ in TRANSLATIONS:
        sql = re.sub(pattern, replacement, sql)
    return sql


def report_sql(name: str) -> str:
    if name not in REPORTS_BY_NAME:
        raise ValueError(f"no report {name!r}; known: {', '.join(REPORTS_BY_NAME)}")
    return (SQL_DIR / f"{name}.sql").read_text()


def bigquery_problems(sql: str) -> List[str]:
    """What keeps `sql` from being BigQuery SQL as far as sqlglot's BigQuery
    grammar can tell: a parse error, a function BigQuery does not have (such
    as a DuckDB one), a parameter or table the reports do not provide."""
    try:
        tree = sqlglot.parse_one(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.ParseError as e:
        return [f"does not parse as BigQuery SQL: {e}"]
    problems = [f"{f.name}() is not a BigQuery function" for f in tree.find_all(exp.Anonymous)]
    problems += [f"unknown parameter @{p.name}" for p in tree.find_all(exp.Parameter)
                 if p.name not in PARAMETERS]
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    tables = set(schemas.EVENT_TYPES) | {PLAYERS} | ctes
    problems += [f"unknown table {t.name}" for t in tree.find_all(exp.Table) if t.name and t.name not in tables]
    return problems


def _safe_divide(numerator: Decimal, divisor: Decimal):
    """BigQuery division: exact, rounded half away from zero (to 18 places here)."""
    if numerator is None or divisor is None or divisor == 0:
        return None
    with localcontext() as context:
        context.prec = 80
        return (numerator / divisor).quantize(_SCALE, rounding=ROUND_HALF_UP)


def connect(input_dir: str, players: Iterable[PlayerProfile] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the replay's Avro tables and the
    operator's players (an empty table without them), ready for `query`."""
    connection = duckdb.connect()
    decimal = duckdb.sqltype("DECIMAL(38, 18)")
    connection.create_function("safe_divide", _safe_divide, [decimal, decimal], decimal, null_handling="special")
    for _, macro in FUNCTIONS:
        connection.execute(macro)
    for table in schemas.EVENT_TYPES:
        _load(connection, table, sorted(glob.glob(os.path.join(input_dir, table, "**", "*.avro"), recursive=True)))
    connection.execute(f"CREATE TABLE {PLAYERS} (user_id VARCHAR, registered_at TIMESTAMP, segment VARCHAR)")
    rows = [(p.user_id, _midnight(p.registered_day), p.segment) for p in players]
    if rows:
        connection.executemany(f"INSERT INTO {PLAYERS} VALUES (?, ?, ?)", rows)
    return connection


def _midnight(day: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(day) if day else None


def _load(connection, table: str, files: List[str]) -> None:
    fields = schemas.bigquery_schema(table)
    columns = ", ".join(
        f'{f["name"]} {_DUCKDB_TYPES[f["type"]]}{"[]" if f["mode"] == "REPEATED" else ""}' for f in fields)
    connection.execute(f"CREATE TABLE {table} ({columns})")
    records = []
    for path in files:
        with open(path, "rb") as f:
            records.extend(fastavro.reader(f))
    arrow_schema = pa.schema([
        (f["name"], pa.list_(_ARROW_TYPES[f["type"]]) if f["mode"] == "REPEATED" else _ARROW_TYPES[f["type"]])
        for f in fields])
    connection.register("avro_records", pa.Table.from_pylist(records, schema=arrow_schema))
    connection.execute(f"INSERT INTO {table} SELECT * FROM avro_records")
    connection.unregister("avro_records")


def query(connection, name: str, from_date: Optional[str] = None, to_date: Optional[str] = None) -> List[Dict]:
    """A report's rows as dicts: DATE, int, Decimal and str values. The dates
    are the job's --from_date and --to_date (None: the table's first or last day)."""
    sql = to_duckdb(report_sql(name))
    values = {"from_date": from_date, "to_date": to_date}
    result = connection.execute(sql, {p: date.fromisoformat(v) if v else None for p, v in values.items()
                                      if f"${p}" in sql})
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row)) for row in result.fetchall()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_dir", help="a replay's output folder with Avro files")
    parser.add_argument("reports", nargs="*", help="report names (default: all)")
    parser.add_argument("--from_date", help="as the report job's")
    parser.add_argument("--to_date", help="as the report job's")
    parser.add_argument("--players", help="as the report job's: loaded into the players table")
    args = parser.parse_args(argv)
    unknown = [name for name in args.reports if name not in REPORTS_BY_NAME]
    if unknown:
        parser.error(f"no report {', '.join(unknown)}; known: {', '.join(REPORTS_BY_NAME)}")
    try:
        dates = [parse_day(v, f"--{n}") if v else None for n, v in (("from_date", args.from_date),
                                                                      ("to_date", args.to_date))]
        players = []
        if args.players:
            with open(args.players, encoding="utf-8") as f:
                players = read_players(f.read().splitlines(), args.players)[1]
    except (OSError, ValueError) as e:
        parser.error(str(e))
    connection = connect(args.input_dir, players)
    for name in args.reports or [r.name for r in REPORTS]:
        problems = bigquery_problems(report_sql(name))
        if problems:
            print(f"# {name}: not BigQuery SQL: {'; '.join(problems)}", file=sys.stderr)
        rows = query(connection, name, *dates)
        print(f"# {name}")
        writer = csv.DictWriter(sys.stdout, fieldnames=REPORTS_BY_NAME[name].column_names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
