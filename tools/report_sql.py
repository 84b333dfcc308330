"""Runs the dashboard's BigQuery SQL (reports/sql/<report>.sql) locally on
DuckDB, over a replay's Avro output loaded into tables of the same names and
columns as in BigQuery: to check the SQL gives the report job's numbers
without a BigQuery project.

    python -m tools.report_sql INPUT_DIR [REPORT ...]     # prints CSV

The SQL files stay valid BigQuery; `to_duckdb` rewrites the few spots where
DuckDB reads the same text differently (TRANSLATIONS, each with its reason).
"""
import argparse
import csv
import glob
import os
import re
import sys
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Dict, List, Tuple

import duckdb
import fastavro
import pyarrow as pa

import schemas
from sessions.reports import REPORTS, REPORTS_BY_NAME

SQL_DIR = Path(__file__).resolve().parent.parent / "reports" / "sql"

# (BigQuery pattern, DuckDB replacement, why)
TRANSLATIONS: Tuple[Tuple[str, str, str], ...] = (
    (r"\bNUMERIC\b", "DECIMAL(38, 9)",
     "BigQuery's NUMERIC is DECIMAL(38, 9); DuckDB's bare NUMERIC is DECIMAL(18, 3)"),
    (r"\bSAFE_DIVIDE\(", "safe_divide(",
     "DuckDB divides decimals in DOUBLE, which misrounds halves (2.03 / 2 -> 1.01); "
     "safe_divide is the exact UDF below, NULL on a zero divisor as in BigQuery"),
    (r"\bPERCENTILE_CONT\(", "quantile_cont(",
     "same arguments, same window form, same interpolation"),
    (r"\bUNIX_MILLIS\(", "epoch_ms(",
     "same function, another name"),
)

_DUCKDB_TYPES = {"STRING": "VARCHAR", "INTEGER": "BIGINT", "NUMERIC": "DECIMAL(38, 9)", "TIMESTAMP": "TIMESTAMP"}
_ARROW_TYPES = {"STRING": pa.string(), "INTEGER": pa.int64(), "NUMERIC": pa.decimal128(38, 9),
                "TIMESTAMP": pa.timestamp("ms")}
_NANO = Decimal("1e-9")


def to_duckdb(sql: str) -> str:
    for pattern, replacement, _ in TRANSLATIONS:
        sql = re.sub(pattern, replacement, sql)
    return sql


def report_sql(name: str) -> str:
    if name not in REPORTS_BY_NAME:
        raise ValueError(f"no report {name!r}; known: {', '.join(REPORTS_BY_NAME)}")
    return (SQL_DIR / f"{name}.sql").read_text()


def _safe_divide(numerator: Decimal, divisor: Decimal):
    """BigQuery NUMERIC division: exact, rounded half away from zero to 9 places."""
    if numerator is None or divisor is None or divisor == 0:
        return None
    with localcontext() as context:
        context.prec = 80
        return (numerator / divisor).quantize(_NANO, rounding=ROUND_HALF_UP)


def connect(input_dir: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the replay's Avro tables, ready for `query`."""
    connection = duckdb.connect()
    numeric = duckdb.sqltype("DECIMAL(38, 9)")
    connection.create_function("safe_divide", _safe_divide, [numeric, numeric], numeric, null_handling="special")
    for table in schemas.EVENT_TYPES:
        _load(connection, table, sorted(glob.glob(os.path.join(input_dir, table, "**", "*.avro"), recursive=True)))
    return connection


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


def query(connection, name: str) -> List[Dict]:
    """A report's rows as dicts: DATE, int, Decimal and str values."""
    result = connection.execute(to_duckdb(report_sql(name)))
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row)) for row in result.fetchall()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_dir", help="a replay's output folder with Avro files")
    parser.add_argument("reports", nargs="*", help="report names (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.reports if name not in REPORTS_BY_NAME]
    if unknown:
        parser.error(f"no report {', '.join(unknown)}; known: {', '.join(REPORTS_BY_NAME)}")
    connection = connect(args.input_dir)
    for name in args.reports or [r.name for r in REPORTS]:
        rows = query(connection, name)
        print(f"# {name}")
        writer = csv.DictWriter(sys.stdout, fieldnames=REPORTS_BY_NAME[name].column_names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
