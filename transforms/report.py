"""Beam wiring of the sessions dashboard's reports (`sessions.reports` holds
the definitions): read our own ended and changed Avro files, compute every
report, write each as one tidy CSV and one Avro file.

Plain transforms only (CoGroupByKey, GroupByKey, side inputs), so the same
graph runs on the DirectRunner, Flink and Dataflow. Reports are small (a row
per day, or per game), so each is gathered into one element and written as a
single sorted file, atomically, like the session tables.
"""
import csv
import hashlib
import io
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, List, Optional, Tuple

import apache_beam as beam
import fastavro
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

import schemas
from sessions.reports import (CENT, REPORTS, REPORTS_BY_NAME, TOP_GAMES, TOP_GAMES_REPORT, Column, Player, Report,
                              SessionFacts, ValueTiers, day_rows, game_row, game_sessions, session_facts, sort_key,
                              top_games)
from transforms.write import write_atomically

NAMESPACE = "session_report"

# (report name, row)
ReportRow = Tuple[str, dict]


def table_files(input_dir: str, table: str) -> str:
    """The glob of a table's Avro files in a replay's output folder."""
    return FileSystems.join(input_dir, table, "**", "*.avro")


class ReadSessionTables(beam.PTransform):
    """-> {ENDED: records, CHANGED: records}. `changed_files` is None when the
    replay wrote no changed file at all (nobody ever switched games)."""

    def __init__(self, ended_files: str, changed_files: Optional[str]):
        super().__init__()
        self._ended_files = ended_files
        self._changed_files = changed_files

    def expand(self, pipeline):
        ended = pipeline | "ReadEnded" >> beam.io.ReadFromAvro(self._ended_files)
        if self._changed_files:
            changed = pipeline | "ReadChanged" >> beam.io.ReadFromAvro(self._changed_files)
        else:
            changed = pipeline | "NoChanged" >> beam.Create([])
        return {schemas.ENDED: ended, schemas.CHANGED: changed}


class _JoinSession(beam.DoFn):
    def setup(self):
        self._sessions = Metrics.counter(NAMESPACE, "sessions")
        self._open_sessions = Metrics.counter(NAMESPACE, "switches_without_ended_session")

    def process(self, keyed) -> Iterable[SessionFacts]:
        _, tables = keyed
        ended, changes = list(tables[schemas.ENDED]), list(tables[schemas.CHANGED])
        if not ended:
            # The session was still open when the replay's files were written.
            self._open_sessions.inc(len(changes))
            return
        for record in ended:
            self._sessions.inc()
            yield session_facts(record, changes)


def _by_session(record: dict) -> Tuple[str, dict]:
    return record["gs_gameplay_session_id"], record


class SessionReports(beam.PTransform):
    """{ENDED: records, CHANGED: records} -> (report name, row) of every report."""

    def __init__(self, top_games_limit: int = TOP_GAMES):
        super().__init__()
        self._limit = top_games_limit

    def expand(self, tables):
        sessions = (
            {table: records | f"{table}BySession" >> beam.Map(_by_session) for table, records in tables.items()}
            | "JoinSessions" >> beam.CoGroupByKey()
            | "SessionFacts" >> beam.ParDo(_JoinSession()))
        players = (
            sessions
            | "ByPlayer" >> beam.Map(lambda s: (s.user_id, s))
            | "PlayerSessions" >> beam.GroupByKey()
            | "Players" >> beam.MapTuple(lambda user, facts: Player(user, tuple(sorted(facts, key=_session_order)))))
        # Tiers rank every player against all others: one global step, and a
        # side input of three numbers.
        tiers = (
            players
            | "PeriodStakes" >> beam.Map(lambda p: p.stake)
            | "AllStakes" >> beam.combiners.ToList()
            | "Tiers" >> beam.Map(ValueTiers.from_stakes))
        day_report_rows = (
            players
            | "UserDays" >> beam.FlatMap(lambda p, t: p.days(t), beam.pvalue.AsSingleton(tiers))
            | "ByDay" >> beam.Map(lambda u: (u.day, u))
            | "DayPlayers" >> beam.GroupByKey()
            | "DayRows" >> beam.FlatMapTuple(day_rows))
        game_rows = (
            sessions
            | "GameSessions" >> beam.FlatMap(game_sessions)
            | "ByGame" >> beam.GroupByKey()
            | "GameRows" >> beam.MapTuple(game_row)
            | "AllGames" >> beam.combiners.ToList()
            | "TopGames" >> beam.FlatMap(lambda rows: [(TOP_GAMES_REPORT.name, r) for r in top_games(rows, self._limit)]))
        return (day_report_rows, game_rows) | "AllReports" >> beam.Flatten()


def _session_order(session: SessionFacts) -> tuple:
    return session.day, session.session_id


# ---------------------------------------------------------------- files

def output_value(column: Column, value):
    """Money and averages are kept exact until here, then rounded half-up to cents."""
    if column.kind == "amount":
        return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    return value


_AVRO_TYPES = {
    "day": {"type": "int", "logicalType": "date"},
    "text": "string",
    "count": "long",
    # BigQuery NUMERIC, as the session tables' amounts.
    "amount": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 9},
}


def avro_schema(report: Report) -> dict:
    return fastavro.parse_schema({
        "type": "record", "name": report.name, "namespace": "gamesessions.reports", "doc": report.title,
        "fields": [{"name": c.name, "type": _AVRO_TYPES[c.kind], "doc": c.doc} for c in report.columns]})


def csv_bytes(report: Report, rows: List[dict]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(report.column_names)
    for row in rows:
        writer.writerow([output_value(c, row[c.name]) for c in report.columns])
    return text.getvalue().encode("utf-8")


def avro_bytes(report: Report, rows: List[dict], sync_marker: bytes) -> bytes:
    records = [{c.name: date.fromisoformat(row[c.name]) if c.kind == "day" else output_value(c, row[c.name])
                for c in report.columns} for row in rows]
    buffer = io.BytesIO()
    fastavro.writer(buffer, avro_schema(report), records, codec="deflate", sync_marker=sync_marker)
    return buffer.getvalue()


class _WriteReport(beam.DoFn):
    def __init__(self, output_dir: str):
        self._output_dir = output_dir

    def setup(self):
        self._rows = Metrics.counter(NAMESPACE, "report_rows")

    def process(self, keyed) -> Iterable[str]:
        name, grouped = keyed
        report = REPORTS_BY_NAME[name]
        rows = sorted(grouped["rows"], key=sort_key)
        self._rows.inc(len(rows))
        body = csv_bytes(report, rows)
        # Same rows, same bytes: a retried bundle rewrites identical files.
        marker = hashlib.sha256(body).digest()[:16]
        for fmt, data in (("csv", body), ("avro", avro_bytes(report, rows, marker))):
            path = FileSystems.join(self._output_dir, f"{name}.{fmt}")
            write_atomically(path, data)
            yield path


class WriteReports(beam.PTransform):
    """(report name, row) -> OUTPUT_DIR/<report>.csv and .avro, one sorted file
    each; every report is written, with a header only when it has no rows."""

    def __init__(self, output_dir: str):
        super().__init__()
        self._output_dir = output_dir

    def expand(self, rows):
        names = rows.pipeline | "ReportNames" >> beam.Create([(r.name, None) for r in REPORTS])
        return (
            {"rows": rows, "report": names}
            | "GroupReports" >> beam.CoGroupByKey()
            | "WriteReport" >> beam.ParDo(_WriteReport(self._output_dir)))
