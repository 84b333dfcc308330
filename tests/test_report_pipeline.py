"""The report job end to end on a small hand-made replay output whose every
number is worked out below, and the BigQuery SQL on the same files (DuckDB):
sessions over midnight, a return to a game inside a session, a day without
new users, empty tiers, a switch of a session that has not ended; a period
with a session of history before it and one after it, two currencies, and an
operator's players file."""
import csv
import gzip
import io
import json
import os
import subprocess
import sys
from datetime import date, datetime, timezone
from decimal import Decimal

import fastavro
import pytest

import schemas
from pipelines.session_report import main
from sessions.reports import REPORTS, REPORTS_BY_NAME, Period, ValueTiers, all_reports, read_players, session_facts
from tools import report_sql
from transforms.report import csv_bytes, csv_cell

DAY6 = datetime(2026, 1, 6, tzinfo=timezone.utc)
DAY6_MS = 1_767_657_600_000
DAY7_MS = DAY6_MS + 86_400_000
HOUR, MINUTE, SECOND = 3_600_000, 60_000, 1000
ZERO = Decimal(0)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _amounts(bets: int, stake: str) -> dict:
    return {"gs_bets_count": bets, "gs_total_bet_amount": Decimal(stake), "gs_avg_bet_amount": ZERO,
            "gs_max_bet_amount": ZERO, "gs_wins_count": 0, "gs_total_win_amount": ZERO, "gs_avg_win_amount": ZERO,
            "gs_max_win_amount": ZERO, "bets_rollback_count": 0, "wins_rollback_count": 0,
            "total_rollback_bet_amount": ZERO, "total_rollback_win_amount": ZERO}


def _times(start: int, end: int, delay: int) -> dict:
    return {"gs_session_start_date": _moment(start), "gs_session_end_date": _moment(end),
            "gs_session_length_seconds": (end - start) // 1000, "gs_event_delay_seconds": delay}


def ended(session, user, start, end, games, bets, stake, currency=None):
    return {"user_id": user, "gs_gameplay_session_id": session, "gs_all_game_ids": games,
            **_amounts(bets, stake), **_times(start, end, 300), "gs_end_reason": "inactivity",
            "gs_game_switches_count": 0, "gs_last_game_id": games[-1], "currency": currency}


def changed(session, user, start, end, old, new, name):
    return {"user_id": user, "gs_gameplay_session_id": session, "gs_game_session_id": f"{session}_{start}_{name}",
            "gs_game_name": name, "gs_game_old_id": old, "gs_game_new_id": new, **_amounts(1, "1"),
            **_times(start, end, 0), "gs_end_reason": "inactivity", "gs_game_switches_count": 1,
            "gs_last_game_id": old, "currency": None}


DAY2_MS, DAY8_MS = DAY6_MS - 4 * 86_400_000, DAY7_MS + 86_400_000
S3_START = DAY7_MS - 500  # 23:59:59.500: counts on the 6th, ends on the 7th
ENDED = [
    ended("s0", "u1", DAY2_MS + 10 * HOUR, DAY2_MS + 10 * HOUR + 100 * SECOND, ["A"], 5, "50", "EUR"),  # history
    ended("s1", "u1", DAY6_MS + 10 * HOUR, DAY6_MS + 10 * HOUR + 600 * SECOND, ["A", "B"], 10, "10", "EUR"),
    ended("s2", "u1", DAY6_MS + 12 * HOUR, DAY6_MS + 12 * HOUR + 100 * SECOND, ["B"], 5, "5.05", "EUR"),
    ended("s3", "u2", S3_START, S3_START + 200 * SECOND, ["A", "B"], 20, "2", "BRL"),
    ended("s4", "u2", DAY7_MS + 9 * HOUR, DAY7_MS + 9 * HOUR + 300 * SECOND, ["B"], 30, "100", "BRL"),
    ended("s5", "u3", DAY7_MS + 10 * HOUR, DAY7_MS + 10 * HOUR, ["A"], 1, "0.10", "EUR"),
    ended("s6", "u4", DAY8_MS + 10 * HOUR, DAY8_MS + 10 * HOUR + 50 * SECOND, ["D"], 1, "1", "USD"),  # after
]
CHANGED = [
    changed("s1", "u1", DAY6_MS + 10 * HOUR, DAY6_MS + 10 * HOUR + 240 * SECOND, "A", "B", "Game A"),
    changed("s3", "u2", S3_START, DAY7_MS + MINUTE, "A", "B", "Game A"),  # 60.5 s -> 60
    changed("s3", "u2", DAY7_MS + MINUTE, DAY7_MS + 2 * MINUTE, "B", "A", "Game B"),  # then A for 79.5 s -> 79
    # A session still open when the files were written: not reported, its name not used.
    changed("s9", "u4", DAY7_MS + 11 * HOUR, DAY7_MS + 11 * HOUR + MINUTE, "A", "C", "Aaa Open"),
]
PERIOD = ["--from_date=2026-01-06", "--to_date=2026-01-07"]

# The period 6-7 January: s0 (2 January) is history, s6 (8 January) comes after and is never read.
EXPECTED = {
    "period": """from_date,to_date,history_from,history_days,history_sessions,sessions,currencies,\
registered_players,segments
2026-01-06,2026-01-07,2026-01-02,4,1,5,2,0,0
""",
    "session_length": """day,users_with_sessions,sessions,median_user_session_seconds,median_session_length_seconds
2026-01-06,2,3,450.00,200.00
2026-01-07,2,2,150.00,150.00
""",
    "sessions_per_user": """day,users_with_sessions,sessions,session_seconds,avg_sessions_per_user,avg_session_seconds_per_user
2026-01-06,2,3,900,1.50,450.00
2026-01-07,2,2,300,1.00,150.00
""",
    "bets_per_session": """day,sessions,bets,avg_bets_per_session
2026-01-06,3,35,11.67
2026-01-07,2,31,15.50
""",
    # EUR on the 6th: 15.05 over 15 bets = 1.00333... a bet, over 2 sessions = 7.525; money keeps 18 places.
    "bet_amounts": """day,currency,sessions,bets,stake,avg_bet_amount,avg_stake_per_session
2026-01-06,BRL,1,20,2.00,0.10,2.00
2026-01-06,EUR,2,15,15.05,1.003333333333333333,7.525
2026-01-07,BRL,1,30,100.00,3.333333333333333333,100.00
2026-01-07,EUR,1,1,0.10,0.10,0.10
""",
    "games_per_session": """day,sessions,session_games,avg_unique_games_per_session
2026-01-06,3,5,1.67
2026-01-07,2,2,1.00
""",
    # u1 played on the 2nd (history): not new on the 6th. u2 is new on the 6th, u3 on the 7th.
    "new_users": """day,new_users,sessions,session_seconds,avg_sessions_per_new_user,avg_session_seconds_per_new_user
2026-01-06,1,1,200,1.00,200.00
2026-01-07,1,1,0,1.00,0.00
""",
    # The 6th: only u1 staked in the 30 days before (50 EUR on the 2nd): Top; u2 nothing yet: Low.
    # The 7th: u2 staked 2 BRL on the 6th, the only BRL player: Top; u3 nothing before: Low.
    "value_tiers": """day,value_tier,tier_rank,users_with_sessions,sessions,avg_sessions_per_user
2026-01-06,Top,1,1,2,2.00
2026-01-06,High,2,0,0,0.00
2026-01-06,Medium,3,0,0,0.00
2026-01-06,Low,4,1,1,1.00
2026-01-07,Top,1,1,1,1.00
2026-01-07,High,2,0,0,0.00
2026-01-07,Medium,3,0,0,0.00
2026-01-07,Low,4,1,1,1.00
""",
    # A: 240 s (s1) + 60 + 79 s (s3) + 0 s (s5); B: 360 s (s1 after the switch) + 100 s (s2) + 60 s (s3)
    # + 300 s (s4). Stickiness: u1's two sessions of B on the 6th are one visit; u2 came back on the 7th.
    "top_games": """rank,game_id,game_name,players,player_days,sessions,play_seconds,sessions_per_user,\
duration_per_user_seconds,returning_players,stickiness_pct
1,A,Game A,3,3,3,379,1.00,126.33,0,0.00
2,B,Game B,2,3,4,820,1.33,273.33,1,50.00
""",
}

# The operator's file: u2 registered on the 5th (UTC), so is not new on the 6th though first seen then; u3 is not
# in the file, so its first session decides; u9 never played. Segments replace the stake tiers.
PLAYERS_CSV = """segment,user_id,registered_at
VIP,u1,2026-01-01
Casual,u2,2026-01-06T01:30:00+02:00
VIP,u9,
"""
EXPECTED_WITH_PLAYERS = {
    "period": EXPECTED["period"].replace(",0,0\n", ",2,2\n"),
    "new_users": """day,new_users,sessions,session_seconds,avg_sessions_per_new_user,avg_session_seconds_per_new_user
2026-01-06,0,0,0,0.00,0.00
2026-01-07,1,1,0,1.00,0.00
""",
    "value_tiers": """day,value_tier,tier_rank,users_with_sessions,sessions,avg_sessions_per_user
2026-01-06,Casual,1,1,1,1.00
2026-01-06,VIP,2,1,2,2.00
2026-01-06,Unsegmented,3,0,0,0.00
2026-01-07,Casual,1,1,1,1.00
2026-01-07,VIP,2,0,0,0.00
2026-01-07,Unsegmented,3,1,1,1.00
""",
}


def write_replay_output(folder, ended_records, changed_records):
    """Avro files as the replay writes them: one per dt= partition of the session start."""
    for table, records in ((schemas.ENDED, ended_records), (schemas.CHANGED, changed_records)):
        by_day = {}
        for record in records:
            by_day.setdefault(record["gs_session_start_date"].date().isoformat(), []).append(record)
        for day, day_records in by_day.items():
            os.makedirs(os.path.join(folder, table, f"dt={day}"), exist_ok=True)
            with open(os.path.join(folder, table, f"dt={day}", "part-0.avro"), "wb") as f:
                fastavro.writer(f, schemas.avro_schema(table), day_records)
    return str(folder)


def csv_text(report_name, rows):
    """Rows (from the SQL) written the way the job writes its CSV."""
    report = REPORTS_BY_NAME[report_name]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report.column_names)
    for row in rows:
        writer.writerow([csv_cell(c, row[c.name]) for c in report.columns])
    return out.getvalue()


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory):
    return write_replay_output(tmp_path_factory.mktemp("replay"), ENDED, CHANGED)


@pytest.fixture(scope="module")
def players_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("players") / "players.csv"
    path.write_text(PLAYERS_CSV)
    return str(path)


@pytest.fixture(scope="module")
def report_dir(replay_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("report"))
    assert main([f"--input_dir={replay_dir}", f"--output_dir={out}", "--runner=DirectRunner", *PERIOD]) == 0
    return out


@pytest.fixture(scope="module")
def players_report_dir(replay_dir, players_file, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("report"))
    assert main([f"--input_dir={replay_dir}", f"--output_dir={out}", *PERIOD, f"--players={players_file}"]) == 0
    return out


@pytest.mark.e2e  # runs the Beam job
@pytest.mark.parametrize("name", EXPECTED)
def test_the_job_writes_each_report_as_worked_out(report_dir, name):
    assert read_text(os.path.join(report_dir, f"{name}.csv")) == EXPECTED[name]


@pytest.mark.e2e  # runs the Beam job
@pytest.mark.parametrize("name", EXPECTED)
def test_the_avro_file_holds_the_csv_rows_with_typed_values(report_dir, name):
    with open(os.path.join(report_dir, f"{name}.avro"), "rb") as f:
        reader = fastavro.reader(f)
        records = list(reader)
        assert reader.writer_schema["name"] == f"gamesessions.reports.{name}"
    assert csv_text(name, records) == EXPECTED[name]
    if "day" in records[0]:
        assert isinstance(records[0]["day"], date)


@pytest.mark.e2e  # runs the Beam job
@pytest.mark.parametrize("name", EXPECTED_WITH_PLAYERS)
def test_the_operator_s_registration_dates_and_segments_decide(players_report_dir, name):
    assert read_text(os.path.join(players_report_dir, f"{name}.csv")) == EXPECTED_WITH_PLAYERS[name]


@pytest.mark.parametrize("name", EXPECTED)
def test_the_bigquery_sql_gives_the_same_numbers(replay_dir, name):
    rows = report_sql.query(report_sql.connect(replay_dir), name, "2026-01-06", "2026-01-07")
    assert csv_text(name, rows) == EXPECTED[name]


@pytest.mark.parametrize("name", EXPECTED_WITH_PLAYERS)
def test_the_bigquery_sql_reads_the_players_table_as_the_job_reads_the_file(replay_dir, players_file, name):
    with open(players_file) as f:
        players = read_players(f.read().splitlines(), players_file)[1]
    rows = report_sql.query(report_sql.connect(replay_dir, players), name, "2026-01-06", "2026-01-07")
    assert csv_text(name, rows) == EXPECTED_WITH_PLAYERS[name]


def test_the_plain_python_reports_give_the_same_numbers():
    facts = [session_facts(r, [c for c in CHANGED if c["gs_gameplay_session_id"] == r["gs_gameplay_session_id"]])
             for r in ENDED]
    rows = all_reports(facts, Period("2026-01-06", "2026-01-07"))
    for name, expected in EXPECTED.items():
        assert csv_bytes(REPORTS_BY_NAME[name], rows[name]).decode() == expected, name


@pytest.mark.e2e  # runs the Beam job
def test_without_a_period_the_whole_input_is_reported_and_there_is_no_history(replay_dir, tmp_path):
    assert main([f"--input_dir={replay_dir}", f"--output_dir={tmp_path}"]) == 0
    assert read_text(tmp_path / "period.csv").splitlines()[1] == "2026-01-02,2026-01-08,2026-01-02,0,0,7,3,0,0"
    connection = report_sql.connect(replay_dir)
    for report in REPORTS:
        assert csv_text(report.name, report_sql.query(connection, report.name)) == read_text(
            tmp_path / f"{report.name}.csv"), report.name


@pytest.mark.e2e  # runs the Beam job
def test_outputs_written_before_sessions_had_a_currency_still_report(tmp_path):
    added = ("gs_end_reason", "gs_game_switches_count", "gs_last_game_id", "currency")
    old = [{k: v for k, v in r.items() if k not in added} for r in ENDED]
    replay = tmp_path / "replay"
    for record in old:
        folder = replay / schemas.ENDED / f"dt={record['gs_session_start_date'].date()}"
        folder.mkdir(parents=True, exist_ok=True)
        schema = json.loads(schemas.avsc_path(schemas.ENDED).read_text())
        schema["fields"] = [f for f in schema["fields"] if f["name"] not in added]
        with open(folder / f"{record['gs_gameplay_session_id']}.avro", "wb") as f:
            fastavro.writer(f, fastavro.parse_schema(schema), [record])
    assert main([f"--input_dir={replay}", f"--output_dir={tmp_path / 'report'}", *PERIOD]) == 0
    assert read_text(tmp_path / "report" / "bet_amounts.csv").splitlines()[1:] == [
        "2026-01-06,,3,35,17.05,0.487142857142857143,5.683333333333333333",
        "2026-01-07,,2,31,100.10,3.229032258064516129,50.05"]
    rows = report_sql.query(report_sql.connect(str(replay)), "bet_amounts", "2026-01-06", "2026-01-07")
    assert csv_text("bet_amounts", rows) == read_text(tmp_path / "report" / "bet_amounts.csv")


@pytest.mark.parametrize("stakes, per_tier", [
    (list(range(1, 21)), {"Top": 1, "High": 3, "Medium": 6, "Low": 10}),
    ([5, 5] + [1] * 18, {"Top": 2, "High": 18, "Medium": 0, "Low": 0}),  # equal stakes share a tier
])
def test_the_sql_cuts_value_tiers_as_the_job_does(tmp_path, stakes, per_tier):
    # Each player stakes on the 6th, and plays again on the 7th: ranked there on the 6th's stakes.
    sessions = [ended(f"s{i}{day}", f"u{i:02d}", start, start + MINUTE, ["A"], 1, str(stake), "EUR")
                for i, stake in enumerate(stakes) for day, start in ((6, DAY6_MS + HOUR), (7, DAY7_MS + HOUR))]
    rows = report_sql.query(report_sql.connect(write_replay_output(tmp_path, sessions, [])), "value_tiers",
                            "2026-01-07", "2026-01-07")
    assert {r["value_tier"]: r["users_with_sessions"] for r in rows} == per_tier
    tiers = ValueTiers.from_stakes(Decimal(s) for s in stakes)
    assert {t: sum(1 for s in stakes if tiers.tier(Decimal(s)) == t) for t in per_tier} == per_tier


@pytest.mark.e2e  # runs the Beam job
def test_the_dashboard_is_rendered_at_the_end_of_the_run(report_dir):
    page = read_text(os.path.join(report_dir, "dashboard.html"))
    assert "Game A" in page and "2026-01-06 to 2026-01-07 (2 days)" in page
    assert "history before it: 4 days from 2026-01-02, 1 session, not reported" in page
    assert "Only 4 days of history before the period" in page
    assert "Aaa Open" not in page


@pytest.mark.e2e  # runs the Beam job
def test_top_games_keeps_as_many_games_as_asked(replay_dir, tmp_path):
    assert main([f"--input_dir={replay_dir}", f"--output_dir={tmp_path}", "--top_games=1", *PERIOD]) == 0
    assert read_text(tmp_path / "top_games.csv") == "".join(EXPECTED["top_games"].splitlines(True)[:2])


@pytest.mark.e2e  # runs the Beam job
def test_without_any_changed_file_every_session_is_all_on_its_one_game(tmp_path):
    single_game = [r for r in ENDED if len(r["gs_all_game_ids"]) == 1]
    replay = write_replay_output(tmp_path / "replay", single_game, [])
    assert main([f"--input_dir={replay}", f"--output_dir={tmp_path / 'report'}", *PERIOD]) == 0
    assert read_text(tmp_path / "report" / "top_games.csv").splitlines()[1:] == [
        "1,B,B,2,2,2,400,1.00,200.00,0,0.00", "2,A,A,1,1,1,0,1.00,0.00,0,0.00"]


@pytest.mark.parametrize("args, message", [
    ([], "--input_dir=DIR is required"),
    (["--input_dir=X"], "--output_dir=DIR is required"),
    (["--input_dir=X", "--output_dir=Y", "--top_games=0"], "--top_games must be a positive number"),
    (["--input_dir=/nonexistent", "--output_dir=Y"], "no /nonexistent/gs_game_session_ended/**/*.avro"),
    (["--input_dir=X", "--output_dir=Y", "--from_date=2026-1-6"], "--from_date must be a date as YYYY-MM-DD"),
    (["--input_dir=X", "--output_dir=Y", "--to_date=06/01/2026"], "--to_date must be a date as YYYY-MM-DD"),
    (["--input_dir=X", "--output_dir=Y", "--from_date=2026-01-08", "--to_date=2026-01-07"],
     "--from_date 2026-01-08 is after --to_date 2026-01-07"),
    (["--input_dir=X", "--output_dir=Y", "--players=/nonexistent.csv"], "--players=/nonexistent.csv: no such file"),
    (["--input_dir=X", "--output_dir=Y", "--players=players.xlsx"], "--players=players.xlsx: name it .csv or .jsonl"),
])
def test_bad_options_are_one_line_errors_with_exit_status_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"session_report: error: {message}") and err.count("\n") == 1


def test_help_lists_the_report_options():
    result = subprocess.run([sys.executable, "-m", "pipelines.session_report", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in ("--input_dir", "--output_dir", "--top_games", "--from_date", "--to_date", "--players"):
        assert option in result.stdout


def test_every_report_is_checked():
    assert set(EXPECTED) == {r.name for r in REPORTS}


@pytest.mark.e2e  # runs the Beam job
def test_a_gzipped_jsonl_players_file_reads_as_the_csv(replay_dir, tmp_path):
    # u2 registered at 2026-01-05 23:30 UTC in epoch ms; other keys and blank lines are ignored.
    players = tmp_path / "players.jsonl.gz"
    with gzip.open(players, "wt", encoding="utf-8") as f:
        f.write('{"user_id": "u1", "segment": "VIP", "registered_at": "2026-01-01", "email": "x@y"}\n\n'
                '{"user_id": "u2", "segment": "Casual", "registered_at": 1767655800000}\n'
                '{"user_id": "u9", "segment": "VIP"}\n')
    out = tmp_path / "report"
    assert main([f"--input_dir={replay_dir}", f"--output_dir={out}", *PERIOD, f"--players={players}"]) == 0
    for name, text in EXPECTED_WITH_PLAYERS.items():
        assert read_text(out / f"{name}.csv") == text, name
