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
from sessions.reports import (CENT, PERIOD, REPORTS, REPORTS_BY_NAME, TOP_GAMES, TOP_GAMES_REPORT, Column, DayCensus,
                              Period, Player, Players, PlayersFile, Report, Segmentation, SessionFacts, day_rows,
                              game_row, game_sessions, period_row, session_facts, sort_key, top_games)
from transforms.write import write_atomically

NAMESPACE = "session_report"
# The key of the operator's player profiles among SessionReports' inputs.
PROFILES = "players"

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


class ReadPlayers(beam.PTransform):
    """A --players file (already checked by the launcher) -> (user_id, PlayerProfile)."""

    def __init__(self, players_file: PlayersFile):
        super().__init__()
        self._file = players_file

    def expand(self, pipeline):
        players_file = self._file
        return (pipeline
                | "ReadLines" >> beam.io.ReadFromText(players_file.path, skip_header_lines=int(players_file.is_csv))
                | "Profiles" >> beam.FlatMap(lambda line: [p for p in [players_file.profile(line)] if p])
                | "ByPlayer" >> beam.Map(lambda p: (p.user_id, p)))


def _census(day: str, currencies) -> DayCensus:
    currencies = list(currencies)
    return DayCensus(day, sum(n for _, n in currencies), frozenset(c for c, _ in currencies))


def _players(user: str, joined) -> Iterable[tuple]:
    """(Player, their profile or None); profiles of players without sessions are not needed."""
    sessions, profiles = list(joined["sessions"]), list(joined["profile"])
    if sessions:
        yield Player(user, tuple(sorted(sessions, key=_session_order))), (profiles[0] if profiles else None)


class SessionReports(beam.PTransform):
    """{ENDED: records, CHANGED: records} (and the operator's player profiles)
    -> (report name, row) of every report."""

    def __init__(self, period: Period = Period(), top_games_limit: int = TOP_GAMES,
                 players: Players = Players()):
        super().__init__()
        self._period = period
        self._limit = top_games_limit
        self._players = players

    def expand(self, tables):
        tables = dict(tables)
        profiles = tables.pop(PROFILES, None)
        asked, limit, players_info = self._period, self._limit, self._players
        sessions = (
            {table: records | f"{table}BySession" >> beam.Map(_by_session) for table, records in tables.items()}
            | "JoinSessions" >> beam.CoGroupByKey()
            | "SessionFacts" >> beam.ParDo(_JoinSession()))
        if profiles is None:
            profiles = sessions.pipeline | "NoProfiles" >> beam.Create([])
        census = (
            sessions
            | "DayCurrency" >> beam.Map(lambda s: ((s.day, s.currency), 1))
            | "SessionsPerDayCurrency" >> beam.CombinePerKey(sum)
            | "ByDay" >> beam.MapTuple(lambda key, n: (key[0], (key[1], n)))
            | "DayCurrencies" >> beam.GroupByKey()
            | "Census" >> beam.MapTuple(_census)
            | "WholeCensus" >> beam.combiners.ToList())
        # The open ends of the period are the input's first and last day.
        period = census | "Period" >> beam.Map(lambda days: asked.resolve(d.day for d in days))
        period_rows = census | "PeriodRow" >> beam.FlatMap(
            lambda days: [(PERIOD.name, row) for row in period_row(asked, days, players_info)])
        players = (
            {"sessions": sessions | "BySessionPlayer" >> beam.Map(lambda s: (s.user_id, s)), "profile": profiles}
            | "JoinPlayers" >> beam.CoGroupByKey()
            | "Players" >> beam.FlatMapTuple(_players))
        user_days = players | "UserDays" >> beam.FlatMap(
            lambda player, p: [(u.day, u) for u in player[0].days(p, player[1])], beam.pvalue.AsSingleton(period))
        past_stakes = players | "PastStakes" >> beam.FlatMap(
            lambda player, p: [(s[0], s) for s in player[0].past_stakes(p)], beam.pvalue.AsSingleton(period))
        segmentation = Segmentation(players_info)
        day_report_rows = (
            {"users": user_days, "past": past_stakes}
            | "JoinDays" >> beam.CoGroupByKey()
            | "DayRows" >> beam.FlatMapTuple(lambda day, joined: day_rows(day, joined["users"], joined["past"],
                                                                           segmentation)))
        game_rows = (
            sessions
            | "GameSessions" >> beam.FlatMap(lambda s, p: game_sessions(s) if s.day in p else [],
                                             beam.pvalue.AsSingleton(period))
            | "ByGame" >> beam.GroupByKey()
            | "GameRows" >> beam.MapTuple(game_row)
            | "AllGames" >> beam.combiners.ToList()
            | "TopGames" >> beam.FlatMap(lambda rows: [(TOP_GAMES_REPORT.name, r) for r in top_games(rows, limit)]))
        return (period_rows, day_report_rows, game_rows) | "AllReports" >> beam.Flatten()


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
    "currency": ["null", "string"],
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
