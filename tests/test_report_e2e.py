"""Generated days of play -> replay -> report job over a period with history
before it, several currencies, more than 50 games and an operator's players
file -> the same numbers from the BigQuery SQL (run on DuckDB) and from the
plain-Python reports, and a dashboard that headless Chromium renders with
every chart drawn."""
import csv
import os
from html.parser import HTMLParser

import pytest
from PIL import Image

import schemas
from pipelines import game_sessions, session_report
from sessions.reports import REPORTS, REPORTS_BY_NAME, TOP_GAMES, Period, all_reports, read_players, session_facts
from tests.helpers import avro_records
from tests.test_report_pipeline import csv_text, read_text
from tools import report_sql
from tools.dashboard import BLUE, ORANGE, chromium, screenshot
from tools.generate_days import generate_days
from tools.generate_events import write
from transforms.report import csv_bytes

DAYS, EVENTS_PER_DAY = 10, 3000
FROM_DATE, TO_DATE = "2026-01-10", "2026-01-15"  # 4 days of history before, none after

pytestmark = pytest.mark.e2e


def players_csv(replay, path):
    """An operator's file for some of the players: every third registered on
    their first day of play, every second in a segment, the rest unknown."""
    first_days = {}
    for record in avro_records(replay, schemas.ENDED):
        day = record["gs_session_start_date"].date().isoformat()
        first_days[record["user_id"]] = min(day, first_days.get(record["user_id"], day))
    with open(path, "w", encoding="utf-8") as f:
        f.write("user_id,registered_at,segment\n")
        for n, (user, day) in enumerate(sorted(first_days.items())):
            segment = ("VIP", "Regular", "Casual")[n % 3] if n % 2 else ""
            f.write(f"{user},{day if n % 3 == 0 else ''},{segment}\n")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("generated")
    events = str(base / "days.jsonl.gz")
    write(events, generate_days(DAYS, EVENTS_PER_DAY, seed=21, arrivals=4, games_per_title=3))
    replay, report = str(base / "replay"), str(base / "report")
    assert game_sessions.main([f"--input={events}", f"--output_dir={replay}", "--output_format=avro"]) == 0
    players = players_csv(replay, base / "players.csv")
    assert session_report.main([f"--input_dir={replay}", f"--output_dir={report}", f"--from_date={FROM_DATE}",
                                f"--to_date={TO_DATE}", f"--players={players}"]) == 0
    return replay, report, str(players)


def report_rows(report_dir, name):
    with open(os.path.join(report_dir, f"{name}.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def currencies(report):
    return {r["currency"] for r in report_rows(report, "bet_amounts")}


def period_sessions(replay):
    return [r for r in avro_records(replay, schemas.ENDED)
            if FROM_DATE <= r["gs_session_start_date"].date().isoformat() <= TO_DATE]


def test_the_data_covers_history_currencies_new_and_returning_players_and_over_50_games(run):
    replay, report, _ = run
    period = report_rows(report, "period")[0]
    assert (period["from_date"], period["to_date"], period["history_days"]) == (FROM_DATE, TO_DATE, "4")
    currencies = {r["currency"] or "" for r in period_sessions(replay)}
    assert len(currencies) >= 4 and "ETH" in currencies and "" in currencies  # crypto, and sessions without one
    assert int(period["history_sessions"]) > 0 and int(period["currencies"]) == len(currencies)
    assert {r["currency"] for r in report_rows(report, "bet_amounts")} == currencies
    new_users = report_rows(report, "new_users")
    per_user = report_rows(report, "sessions_per_user")
    assert len(per_user) == 6
    assert any(0 < int(new["new_users"]) < int(all_["users_with_sessions"]) for new, all_ in zip(new_users, per_user))
    games = {g for r in period_sessions(replay) for g in r["gs_all_game_ids"]}
    assert len(games) > TOP_GAMES
    top = report_rows(report, "top_games")
    assert [int(r["rank"]) for r in top] == list(range(1, TOP_GAMES + 1))
    assert any(float(r["stickiness_pct"]) > 0 for r in top)
    tiers = [r["value_tier"] for r in report_rows(report, "value_tiers")[:4]]
    assert tiers == ["Casual", "Regular", "VIP", "Unsegmented"]


@pytest.mark.parametrize("name", [r.name for r in REPORTS])
def test_the_bigquery_sql_gives_the_job_s_numbers(run, name):
    replay, report, players = run
    with open(players, encoding="utf-8") as f:
        profiles = read_players(f.read().splitlines(), players)[1]
    rows = report_sql.query(report_sql.connect(replay, profiles), name, FROM_DATE, TO_DATE)
    assert rows, f"{name}: the SQL returned nothing"
    assert csv_text(name, rows) == read_text(os.path.join(report, f"{name}.csv"))


def replayed_sessions(replay):
    changes = {}
    for record in avro_records(replay, schemas.CHANGED):
        changes.setdefault(record["gs_gameplay_session_id"], []).append(record)
    return [session_facts(r, changes.get(r["gs_gameplay_session_id"], [])) for r in avro_records(replay, schemas.ENDED)]


def _plain_python_reports(replay, players, limit=TOP_GAMES):
    with open(players, encoding="utf-8") as f:
        profiles = read_players(f.read().splitlines(), players)[1]
    return all_reports(replayed_sessions(replay), Period(FROM_DATE, TO_DATE), profiles, limit)


def test_the_plain_python_reports_give_the_job_s_numbers_and_game_time_adds_up(run):
    replay, report, players = run
    rows = _plain_python_reports(replay, players)
    for r in REPORTS:
        assert csv_bytes(r, rows[r.name]).decode() == read_text(os.path.join(report, f"{r.name}.csv")), r.name
    # Every game, not only the top 50: game time adds up to session time, but for floored milliseconds.
    games = _plain_python_reports(replay, players, limit=10_000)["top_games"]
    assert len(games) > TOP_GAMES
    play_seconds = sum(g["play_seconds"] for g in games)
    session_seconds = sum(int(d["session_seconds"]) for d in report_rows(report, "sessions_per_user"))
    in_period = {r["gs_gameplay_session_id"] for r in period_sessions(replay)}
    switches = sum(1 for r in avro_records(replay, schemas.CHANGED) if r["gs_gameplay_session_id"] in in_period)
    assert session_seconds - switches <= play_seconds <= session_seconds
    assert play_seconds < session_seconds  # the bound is not vacuous: some milliseconds were floored


# ---------------------------------------------------------------- the dashboard in a browser

class _Dom(HTMLParser):
    """Chart sections, their marks (bars and points) and the games table rows."""

    def __init__(self):
        super().__init__()
        self.charts = {}  # data-chart -> list of mark attribute dicts
        self.game_rows = 0
        self.period = ""
        self._chart = None
        self._in_period = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "data-chart" in attrs:
            self._chart = attrs["data-chart"]
            self.charts[self._chart] = []
        elif "mark" in attrs.get("class", "").split():
            self.charts[self._chart].append({"tag": tag, **attrs})
        elif tag == "tr" and attrs.get("class") == "game":
            self.game_rows += 1
        self._in_period = tag == "p" and attrs.get("class") == "period"

    def handle_data(self, data):
        if self._in_period:
            self.period += data


def test_chromium_renders_every_chart_with_its_data(run, tmp_path):
    _, report, _ = run
    page = "file://" + os.path.join(report, "dashboard.html")
    dom = _Dom()
    dom.feed(chromium(["--dump-dom", page], str(tmp_path / "profile")).stdout)

    days = [r["day"] for r in report_rows(report, "session_length")]
    users = [float(r["users_with_sessions"]) for r in report_rows(report, "session_length")]
    expected_series = {"session_length": 3, "sessions_per_user": 2, "bets_per_session": 1,
                       **{f"bet_amounts_{c or 'none'}": 2 for c in currencies(report)}, "games_per_session": 1,
                       "new_users": 2,
                       "value_tiers_casual_regular": 4, "value_tiers_vip_unsegmented": 4, "top_games": 0}
    assert set(dom.charts) == set(expected_series)
    for chart, series in expected_series.items():
        marks = dom.charts[chart]
        assert len(marks) == series * len(days), chart
        assert {m["data-day"] for m in marks} == (set(days) if series else set()), chart
        for mark in marks:
            if mark["tag"] == "rect":  # a bar as tall as its value, up to the plot's height
                assert (float(mark["height"]) > 0) == (float(mark["data-value"]) > 0), (chart, mark)
            else:
                assert 0 < float(mark["cy"]) < 290, (chart, mark)
    bars = [m for m in dom.charts["session_length"] if m["tag"] == "rect"]
    assert [float(m["data-value"]) for m in bars] == users
    eth = {r["day"]: float(r["avg_bet_amount"]) for r in report_rows(report, "bet_amounts") if r["currency"] == "ETH"}
    assert {m["data-day"]: float(m["data-value"]) for m in dom.charts["bet_amounts_ETH"]
            if m["data-series"] == "Average bet (ETH)"} == {day: eth.get(day, 0.0) for day in days}
    assert 0 < max(eth.values()) < 0.1  # ETH bets are small: shown in ETH, not rounded to 0.00
    assert dom.game_rows == TOP_GAMES
    assert {m["data-series"].split(":")[0] for m in dom.charts["value_tiers_vip_unsegmented"]} == {
        "VIP", "Unsegmented"}
    assert f"{FROM_DATE} to {TO_DATE} (6 days)" in dom.period and "history before it: 4 days" in dom.period


def test_chromium_screenshot_shows_the_charts_and_ends_with_the_page(run, tmp_path):
    _, report, _ = run
    shot = tmp_path / "dashboard.png"
    width, height = screenshot(os.path.join(report, "dashboard.html"), str(shot))
    image = Image.open(shot).convert("RGB")
    assert image.size == (width, height) and width == 1400 and 2000 < height < 8000
    colours = image.getcolors(maxcolors=1 << 20)

    def pixels(hex_colour):  # the palette may move a colour by a few steps
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        return sum(n for n, c in colours if max(abs(a - b) for a, b in zip(c, rgb)) <= 12)

    assert pixels(BLUE) > 20_000, "the blue bars are missing"
    assert pixels(ORANGE) > 1_000, "the orange lines are missing"
    print(f"screenshot: {shot}")


@pytest.mark.parametrize("name", ["value_tiers", "new_users", "period"])
def test_without_the_players_file_sql_and_python_agree_on_stake_tiers_per_currency_and_new_users(run, name):
    replay, _, _ = run
    expected = all_reports(replayed_sessions(replay), Period(FROM_DATE, TO_DATE))[name]
    assert {r["value_tier"] for r in expected if int(r.get("users_with_sessions", 0))} >= (
        {"Top", "High", "Low"} if name == "value_tiers" else set())
    rows = report_sql.query(report_sql.connect(replay), name, FROM_DATE, TO_DATE)
    assert csv_text(name, rows) == csv_bytes(REPORTS_BY_NAME[name], expected).decode()
