"""The dashboard page (tools.dashboard) from report rows, without a browser;
tests/test_report_e2e.py opens a real one in headless Chromium."""
import re

import pytest

from sessions.reports import REPORTS
from tools.dashboard import axis_ticks, render, write_dashboard
from transforms.report import csv_bytes

DAYS = ("2026-01-06", "2026-01-07")


def day_rows(report, **values):
    return [{c.name: values.get(c.name, 1) for c in report.columns} | {"day": day} for day in DAYS]


def reports(games=()):
    rows = {}
    for report in REPORTS:
        if report.name == "value_tiers":
            rows[report.name] = [r | {"value_tier": tier} for tier in ("Top", "High", "Medium", "Low")
                                 for r in day_rows(report)]
        elif report.name == "top_games":
            rows[report.name] = list(games)
        else:
            rows[report.name] = day_rows(report)
    return rows


GAME = {"rank": 1, "game_id": "JAMMIN_JARS", "game_name": "Jammin' <Jars>", "players": 3, "player_days": 4,
        "sessions": 5, "play_seconds": 700, "sessions_per_user": "1.25", "duration_per_user_seconds": "175.00",
        "returning_players": 1, "stickiness_pct": "33.33"}


def test_every_chart_has_a_bar_or_point_per_series_and_day():
    page = render(reports([GAME]))
    charts = re.findall(r'<section class="card" data-chart="(\w+)">(.*?)</section>', page)
    assert [name for name, _ in charts] == ["session_length", "sessions_per_user", "bets_per_session",
                                            "games_per_session", "new_users", "value_tiers_top_high",
                                            "value_tiers_medium_low"]
    for name, body in charts:
        marks = re.findall(r'class="(?:bar|point) mark"[^>]*data-day="([\d-]+)"', body)
        assert marks and len(marks) % len(DAYS) == 0 and set(marks) == set(DAYS), name


def test_game_names_are_escaped_and_the_page_fetches_nothing():
    page = render(reports([GAME]))
    assert "Jammin&#x27; &lt;Jars&gt;" in page and "<Jars>" not in page
    assert not re.search(r'(src|href)=|@import|url\(|<script', page)


def test_no_sessions_still_gives_a_page_that_says_so():
    page = render({r.name: [] for r in REPORTS})
    assert page.count("No sessions in the data") == 8
    assert "no sessions" in page


@pytest.mark.parametrize("highest, ticks", [
    (0, (0, 1)), (4, (0, 1, 2, 3, 4)), (26, (0, 10, 20, 30)), (1065, (0, 500, 1000, 1500)), (2.59, (0, 1, 2, 3)),
])
def test_axes_end_on_a_round_tick_at_or_above_the_highest_value(highest, ticks):
    assert axis_ticks(highest) == pytest.approx(ticks)


def test_write_dashboard_reads_the_job_s_csv_files(tmp_path):
    for report in REPORTS:
        rows = reports([GAME])[report.name]
        (tmp_path / f"{report.name}.csv").write_bytes(csv_bytes(report, rows))
    path = write_dashboard(str(tmp_path))
    assert path.endswith("dashboard.html")
    assert "2026-01-06 to 2026-01-07 (2 days)" in (tmp_path / "dashboard.html").read_text()
