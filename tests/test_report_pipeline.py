"""The report job end to end on a small hand-made replay output whose every
number is worked out below, and the BigQuery SQL on the same files (DuckDB):
sessions over midnight, a return to a game inside a session, a day without
new users, empty tiers, a switch of a session that has not ended."""
import csv
import io
import os
import subprocess
import sys
from datetime import date, datetime, timezone
from decimal import Decimal

import fastavro
import pytest

import schemas
from pipelines.session_report import main
from sessions.reports import REPORTS, REPORTS_BY_NAME, ValueTiers
from tools import report_sql
from transforms.report import output_value

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


def ended(session, user, start, end, games, bets, stake):
    return {"user_id": user, "gs_gameplay_session_id": session, "gs_all_game_ids": games,
            **_amounts(bets, stake), **_times(start, end, 300)}


def changed(session, user, start, end, old, new, name):
    return {"user_id": user, "gs_gameplay_session_id": session, "gs_game_session_id": f"{session}_{start}_{name}",
            "gs_game_name": name, "gs_game_old_id": old, "gs_game_new_id": new, **_amounts(1, "1"),
            **_times(start, end, 0)}


S3_START = DAY7_MS - 500  # 23:59:59.500: counts on the 6th, ends on the 7th
ENDED = [
    ended("s1", "u1", DAY6_MS + 10 * HOUR, DAY6_MS + 10 * HOUR + 600 * SECOND, ["A", "B"], 10, "10"),
    ended("s2", "u1", DAY6_MS + 12 * HOUR, DAY6_MS + 12 * HOUR + 100 * SECOND, ["B"], 5, "5.05"),
    ended("s3", "u2", S3_START, S3_START + 200 * SECOND, ["A", "B"], 20, "2"),
    ended("s4", "u2", DAY7_MS + 9 * HOUR, DAY7_MS + 9 * HOUR + 300 * SECOND, ["C"], 30, "100"),
    ended("s5", "u3", DAY7_MS + 10 * HOUR, DAY7_MS + 10 * HOUR, ["A"], 1, "0.10"),
]
CHANGED = [
    changed("s1", "u1", DAY6_MS + 10 * HOUR, DAY6_MS + 10 * HOUR + 240 * SECOND, "A", "B", "Game A"),
    changed("s3", "u2", S3_START, DAY7_MS + MINUTE, "A", "B", "Game A"),  # 60.5 s -> 60
    changed("s3", "u2", DAY7_MS + MINUTE, DAY7_MS + 2 * MINUTE, "B", "A", "Game B"),  # then A for 79.5 s -> 79
    # A session still open when the files were written: not reported, its name not used.
    changed("s9", "u4", DAY7_MS + 11 * HOUR, DAY7_MS + 11 * HOUR + MINUTE, "A", "C", "Aaa Open"),
]

# Tiers by period stake: u2 102 (Top), u1 15.05 (Medium: 1 player ahead < 50% of 3), u3 0.10 (Low).
EXPECTED = {
    "session_length": """day,users_with_sessions,sessions,median_user_session_seconds,median_session_length_seconds
2026-01-06,2,3,450.00,200.00
2026-01-07,2,2,150.00,150.00
""",
    "sessions_per_user": """day,users_with_sessions,sessions,session_seconds,avg_sessions_per_user,avg_session_seconds_per_user
2026-01-06,2,3,900,1.50,450.00
2026-01-07,2,2,300,1.00,150.00
""",
    "bets_per_session": """day,sessions,bets,stake,avg_stake_per_session,avg_bets_per_session
2026-01-06,3,35,17.05,5.68,11.67
2026-01-07,2,31,100.10,50.05,15.50
""",
    "games_per_session": """day,sessions,session_games,avg_unique_games_per_session
2026-01-06,3,5,1.67
2026-01-07,2,2,1.00
""",
    "new_users": """day,new_users,sessions,session_seconds,avg_sessions_per_new_user,avg_session_seconds_per_new_user
2026-01-06,2,3,900,1.50,450.00
2026-01-07,1,1,0,1.00,0.00
""",
    "value_tiers": """day,value_tier,users_with_sessions,sessions,avg_sessions_per_user
2026-01-06,Top,1,1,1.00
2026-01-06,High,0,0,0.00
2026-01-06,Medium,1,2,2.00
2026-01-06,Low,0,0,0.00
2026-01-07,Top,1,1,1.00
2026-01-07,High,0,0,0.00
2026-01-07,Medium,0,0,0.00
2026-01-07,Low,1,1,1.00
""",
    # A: 240 s (s1) + 60 + 79 s (s3) + 0 s (s5); B: 360 s (s1 after the switch) + 100 s (s2) + 60 s (s3).
    "top_games": """rank,game_id,game_name,players,player_days,sessions,play_seconds,sessions_per_user,\
duration_per_user_seconds,returning_players,stickiness_pct
1,A,Game A,3,3,3,379,1.00,126.33,0,0.00
2,B,Game B,2,2,3,520,1.50,260.00,1,50.00
3,C,C,1,1,1,300,1.00,300.00,0,0.00
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
        writer.writerow([row[c.name].isoformat() if isinstance(row[c.name], date) else output_value(c, row[c.name])
                         for c in report.columns])
    return out.getvalue()


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory):
    return write_replay_output(tmp_path_factory.mktemp("replay"), ENDED, CHANGED)


@pytest.fixture(scope="module")
def report_dir(replay_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("report"))
    assert main([f"--input_dir={replay_dir}", f"--output_dir={out}", "--runner=DirectRunner"]) == 0
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


@pytest.mark.parametrize("name", EXPECTED)
def test_the_bigquery_sql_gives_the_same_numbers(replay_dir, name):
    assert csv_text(name, report_sql.query(report_sql.connect(replay_dir), name)) == EXPECTED[name]


@pytest.mark.parametrize("stakes, per_tier", [
    (list(range(1, 21)), {"Top": 1, "High": 3, "Medium": 6, "Low": 10}),
    ([5, 5] + [1] * 18, {"Top": 2, "High": 18, "Medium": 0, "Low": 0}),  # equal stakes share a tier
])
def test_the_sql_cuts_value_tiers_as_the_job_does(tmp_path, stakes, per_tier):
    start = DAY6_MS + HOUR
    sessions = [ended(f"s{i}", f"u{i:02d}", start, start + MINUTE, ["A"], 1, str(stake))
                for i, stake in enumerate(stakes)]
    rows = report_sql.query(report_sql.connect(write_replay_output(tmp_path, sessions, [])), "value_tiers")
    assert {r["value_tier"]: r["users_with_sessions"] for r in rows} == per_tier
    tiers = ValueTiers.from_stakes(Decimal(s) for s in stakes)
    assert {t: sum(1 for s in stakes if tiers.tier(Decimal(s)) == t) for t in per_tier} == per_tier


@pytest.mark.e2e  # runs the Beam job
def test_the_dashboard_is_rendered_at_the_end_of_the_run(report_dir):
    page = read_text(os.path.join(report_dir, "dashboard.html"))
    assert "Game A" in page and "2026-01-06 to 2026-01-07 (2 days)" in page
    assert "Aaa Open" not in page


@pytest.mark.e2e  # runs the Beam job
def test_top_games_keeps_as_many_games_as_asked(replay_dir, tmp_path):
    assert main([f"--input_dir={replay_dir}", f"--output_dir={tmp_path}", "--top_games=2"]) == 0
    assert read_text(tmp_path / "top_games.csv") == "".join(EXPECTED["top_games"].splitlines(True)[:3])


@pytest.mark.e2e  # runs the Beam job
def test_without_any_changed_file_every_session_is_all_on_its_one_game(tmp_path):
    single_game = [r for r in ENDED if len(r["gs_all_game_ids"]) == 1]
    replay = write_replay_output(tmp_path / "replay", single_game, [])
    assert main([f"--input_dir={replay}", f"--output_dir={tmp_path / 'report'}"]) == 0
    assert read_text(tmp_path / "report" / "top_games.csv").splitlines()[1:] == [
        "1,A,A,1,1,1,0,1.00,0.00,0,0.00", "2,B,B,1,1,1,100,1.00,100.00,0,0.00", "3,C,C,1,1,1,300,1.00,300.00,0,0.00"]


@pytest.mark.parametrize("args, message", [
    ([], "--input_dir=DIR is required"),
    (["--input_dir=X"], "--output_dir=DIR is required"),
    (["--input_dir=X", "--output_dir=Y", "--top_games=0"], "--top_games must be a positive number"),
    (["--input_dir=/nonexistent", "--output_dir=Y"], "no /nonexistent/gs_game_session_ended/**/*.avro"),
])
def test_bad_options_are_one_line_errors_with_exit_status_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"session_report: error: {message}") and err.count("\n") == 1


def test_help_lists_the_report_options():
    result = subprocess.run([sys.executable, "-m", "pipelines.session_report", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in ("--input_dir", "--output_dir", "--top_games"):
        assert option in result.stdout


def test_every_report_is_checked():
    assert set(EXPECTED) == {r.name for r in REPORTS}
