"""Generated days of play -> replay -> report job -> the same numbers from the
BigQuery SQL (run on DuckDB), and a dashboard that headless Chromium renders
with every chart drawn."""
import csv
import os
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

import schemas
from pipelines import game_sessions, session_report
from sessions.reports import REPORTS, TIERS
from tests.helpers import avro_records
from tests.test_report_pipeline import csv_text, read_text
from tools import report_sql
from tools.dashboard import BLUE, ORANGE
from tools.generate_days import generate_days
from tools.generate_events import write

DAYS, EVENTS_PER_DAY = 6, 4000
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("generated")
    events = str(base / "days.jsonl.gz")
    write(events, generate_days(DAYS, EVENTS_PER_DAY, seed=21))
    replay, report = str(base / "replay"), str(base / "report")
    assert game_sessions.main([f"--input={events}", f"--output_dir={replay}", "--output_format=avro"]) == 0
    assert session_report.main([f"--input_dir={replay}", f"--output_dir={report}"]) == 0
    return replay, report


def report_rows(report_dir, name):
    with open(os.path.join(report_dir, f"{name}.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_data_spans_several_days_with_new_and_returning_players(run):
    _, report = run
    new_users = report_rows(report, "new_users")
    per_user = report_rows(report, "sessions_per_user")
    assert len(per_user) == DAYS
    later_days = zip(new_users[1:], per_user[1:])
    assert any(0 < int(new["new_users"]) < int(all_["users_with_sessions"]) for new, all_ in later_days)
    assert any(float(r["stickiness_pct"]) > 0 for r in report_rows(report, "top_games"))


@pytest.mark.parametrize("name", [r.name for r in REPORTS])
def test_the_bigquery_sql_gives_the_job_s_numbers(run, name):
    replay, report = run
    rows = report_sql.query(report_sql.connect(replay), name)
    assert rows, f"{name}: the SQL returned nothing"
    assert csv_text(name, rows) == read_text(os.path.join(report, f"{name}.csv"))


def test_game_time_adds_up_to_session_time_but_for_floored_milliseconds(run):
    replay, report = run
    games = report_rows(report, "top_games")
    assert len(games) < 50  # every game is in the table, so totals can be compared
    play_seconds = sum(int(g["play_seconds"]) for g in games)
    session_seconds = sum(int(d["session_seconds"]) for d in report_rows(report, "sessions_per_user"))
    switches = len(avro_records(replay, schemas.CHANGED))  # each floors one more segment
    assert session_seconds - switches <= play_seconds <= session_seconds
    assert play_seconds < session_seconds  # the bound is not vacuous: some milliseconds were floored


# ---------------------------------------------------------------- the dashboard in a browser

class _Dom(HTMLParser):
    """Chart sections, their marks (bars and points) and the games table rows."""

    def __init__(self):
        super().__init__()
        self.charts = {}  # data-chart -> list of mark attribute dicts
        self.game_rows = 0
        self._chart = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "data-chart" in attrs:
            self._chart = attrs["data-chart"]
            self.charts[self._chart] = []
        elif "mark" in attrs.get("class", "").split():
            self.charts[self._chart].append({"tag": tag, **attrs})
        elif tag == "tr" and attrs.get("class") == "game":
            self.game_rows += 1


def chromium(*args, profile):
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: `make chromium` installs it"
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def test_chromium_renders_every_chart_with_its_data(run, tmp_path):
    _, report = run
    page = "file://" + os.path.join(report, "dashboard.html")
    dom = _Dom()
    dom.feed(chromium("--dump-dom", page, profile=tmp_path / "profile").stdout)

    days = [r["day"] for r in report_rows(report, "session_length")]
    users = [float(r["users_with_sessions"]) for r in report_rows(report, "session_length")]
    expected_series = {"session_length": 3, "sessions_per_user": 2, "bets_per_session": 2,
                       "games_per_session": 1, "new_users": 2, "value_tiers_top_high": 4,
                       "value_tiers_medium_low": 4, "top_games": 0}
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
    assert dom.game_rows == len(report_rows(report, "top_games")) > 0
    assert {m["data-series"].split(":")[0] for m in dom.charts["value_tiers_top_high"]} == set(TIERS[:2])


def test_chromium_screenshot_shows_the_charts(run, tmp_path):
    _, report = run
    shot = tmp_path / "dashboard.png"
    chromium(f"--screenshot={shot}", "--window-size=1400,3000", "file://" + os.path.join(report, "dashboard.html"),
             profile=tmp_path / "profile")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 3000)
    colours = dict((rgb, n) for n, rgb in image.getcolors(maxcolors=1 << 20))

    def pixels(hex_colour):
        return colours.get(tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)), 0)

    assert pixels(BLUE) > 20_000, "the blue bars are missing"
    assert pixels(ORANGE) > 1_000, "the orange lines are missing"
    print(f"screenshot: {shot}")
