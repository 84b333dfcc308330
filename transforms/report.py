"""Beam wiring of the sessions dashboard's reports (`sessions.reports` holds
the definitions): read our own ended and changed Avro files, compute every
report, write each as one tidy CSV and one Avro file.

Plain transforms only (CoGroupByKey, GroupByKey, side inputs), so the same
graph runs on the DirectRunner, Flink and Dataflow. Reports are small (a row
per day, tier, currency or game), so each is gathered into one element and
written as a single sorted file, atomically, like the session tables.
"""
import csv
import hashlib
import io
from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
import fastavro
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

import schemas
from sessions.reports import (CENT, MONEY_PLACES, PERIOD, REPORTS, REPORTS_BY_NAME, TOP_GAMES, TOP_GAMES_REPORT,
                              Column, DayCensus, Period, Player, Players, PlayersFile, Report, Segmentation,
                              SessionFacts, day_rows, epoch_ms, game_row, game_sessions, past_stakes, period_row,
                              session_facts, sort_key, top_games)
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


# What the reports read of each record. Avro gives amounts as Decimal and
# times as datetime, which Beam's default coder pickles one by one; as strings
# and epoch ms the records cross the shuffle several times faster.
_ENDED_FIELDS = ("user_id", "gs_gameplay_session_id", "gs_all_game_ids", "gs_bets_count", "gs_total_bet_amount",
                 "gs_session_start_date", "gs_session_end_date", "gs_session_length_seconds", "currency")
_CHANGED_FIELDS = ("user_id", "gs_gameplay_session_id", "gs_game_old_id", "gs_game_new_id", "gs_game_name",
                   "gs_session_start_date", "gs_session_end_date", "gs_session_length_seconds")


def _slim(record: dict, fields: Tuple[str, ...]) -> Tuple[str, dict]:
    """(user_id, the fields the reports read, as plain values); `currency` is
    None in records written before sessions carried one."""
    values = {}
    for name in fields:
        value = record.get(name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = epoch_ms(value)
        values[name] = value
    return record["user_id"], values


class _PlayerSessions(beam.DoFn):
    """A player's ended and changed records and profile -> (Player, profile)."""

    def setup(self):
        self._sessions = Metrics.counter(NAMESPACE, "sessions")
        self._open_sessions = Metrics.counter(NAMESPACE, "switches_without_ended_session")

    def process(self, keyed) -> Iterable[tuple]:
        user, joined = keyed
        changes: Dict[str, List[dict]] = defaultdict(list)
        for change in joined[schemas.CHANGED]:
            changes[change["gs_gameplay_session_id"]].append(change)
        sessions = []
        for record in joined[schemas.ENDED]:
            sessions.append(session_facts(record, changes.pop(record["gs_gameplay_session_id"], ())))
        # What is left are switches of sessions still open when the replay's files were written.
        self._open_sessions.inc(sum(len(c) for c in changes.values()))
        self._sessions.inc(len(sessions))
        if sessions:
            profiles = list(joined[PROFILES])
            yield Player(user, tuple(sorted(sessions, key=_session_order))), (profiles[0] if profiles else None)


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


def _day_currencies(player: Player) -> Iterable[tuple]:
    return Counter((s.day, s.currency) for s in player.sessions).items()


class SessionReports(beam.PTransform):
    """{ENDED: records, CHANGED: records, PROFILES: (user_id, PlayerProfile),
    the last optional} -> (report name, row) of every report."""

    def __init__(self, period: Period = Period(), top_games_limit: int = TOP_GAMES,
                 players: Players = Players()):
        super().__init__()
        self._period = period
        self._limit = top_games_limit
        self._players = players

    def expand(self, tables):
        asked, limit, players_info = self._period, self._limit, self._players
        pipeline = tables[schemas.ENDED].pipeline
        keyed = {
            schemas.ENDED: tables[schemas.ENDED] | "SlimEnded" >> beam.Map(_slim, _ENDED_FIELDS),
            schemas.CHANGED: tables[schemas.CHANGED] | "SlimChanged" >> beam.Map(_slim, _CHANGED_FIELDS),
            PROFILES: tables.get(PROFILES) or pipeline | "NoProfiles" >> beam.Create([]),
        }
        # One shuffle by player: everything after it is per player, per day or per game.
        players = keyed | "ByPlayer" >> beam.CoGroupByKey() | "Players" >> beam.ParDo(_PlayerSessions())
        census = (
            players
            | "DayCurrency" >> beam.FlatMap(lambda joined: _day_currencies(joined[0]))
            | "SessionsPerDayCurrency" >> beam.CombinePerKey(sum)
            | "ByDay" >> beam.MapTuple(lambda key, n: (key[0], (key[1], n)))
            | "DayCurrencies" >> beam.GroupByKey()
            | "Census" >> beam.MapTuple(_census)
            | "WholeCensus" >> beam.combiners.ToList())
        period_rows = census | "PeriodRow" >> beam.FlatMap(
            lambda days: [(PERIOD.name, row) for row in period_row(asked, days, players_info)])
        # The asked period's open ends are the input's first and last day, which
        # filter nothing; only the stake windows need to know the last day, or
        # they would reach 30 days past the input.
        period = census | "Period" >> beam.Map(lambda days: asked.resolve(d.day for d in days))
        user_days = players | "UserDays" >> beam.FlatMap(
            lambda joined: [(u.day, u) for u in joined[0].days(asked, joined[1])])
        past = (
            players
            | "DailyStakes" >> beam.FlatMap(lambda joined: [(joined[0].user_id, joined[0].daily_stakes())])
            | "PastStakes" >> beam.FlatMap(lambda daily, p: [(s[0], s) for s in past_stakes(*daily, p)],
                                           beam.pvalue.AsSingleton(period)))
        segmentation = Segmentation(players_info)
        day_report_rows = (
            {"users": user_days, "past": past}
            | "JoinDays" >> beam.CoGroupByKey()
            | "DayRows" >> beam.FlatMapTuple(lambda day, joined: day_rows(day, joined["users"], joined["past"],
                                                                           segmentation)))
        game_rows = (
            players
            | "GameSessions" >> beam.FlatMap(
                lambda joined: [play for s in joined[0].sessions if s.day in asked for play in game_sessions(s)])
            | "ByGame" >> beam.GroupByKey()
            | "GameRows" >> beam.MapTuple(game_row)
            | "AllGames" >> beam.combiners.ToList()
            | "TopGames" >> beam.FlatMap(lambda rows: [(TOP_GAMES_REPORT.name, r) for r in top_games(rows, limit)]))
        return (period_rows, day_report_rows, game_rows) | "AllReports" >> beam.Flatten()


def _session_order(session: SessionFacts) -> tuple:
    return session.day, session.session_id


# ---------------------------------------------------------------- files

def output_value(column: Column, value):
    """Averages are kept exact until here, then rounded half-up: to cents, or
    for money to the amounts' 18 places."""
    if column.kind == "amount":
        return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    if column.kind == "money":
        return Decimal(value).quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)
    return value


def csv_cell(column: Column, value) -> str:
    """Money without the trailing zeros of its 18 places, but with cents: 2.50, 0.000123."""
    value = output_value(column, value)
    if isinstance(value, date):
        return value.isoformat()
    if column.kind == "money":
        text = f"{value.normalize():f}"
        whole, _, places = text.partition(".")
        return f"{whole}.{places.ljust(2, '0')}"
    return "" if value is None else str(value)


_AVRO_TYPES = {
    "day": {"type": "int", "logicalType": "date"},
    "text": "string",
    "currency": ["null", "string"],
    "count": "long",
    # BigQuery NUMERIC, for the 2-place averages.
    "amount": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 9},
    # BigQuery BIGNUMERIC, as the session tables' amounts.
    "money": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 18},
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
        writer.writerow([csv_cell(c, row[c.name]) for c in report.columns])
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
