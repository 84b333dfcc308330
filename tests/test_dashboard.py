"""The dashboard page (tools.dashboard) from report rows, without a browser;
tests/test_report_e2e.py opens a real one in headless Chromium."""
import re

import pytest

from sessions.reports import REPORTS, TIERS
from tools.dashboard import axis_ticks, render, write_dashboard
from transforms.report import csv_bytes

DAYS = ("2026-01-06", "2026-01-07")
PERIOD_ROW = {"from_date": DAYS[0], "to_date": DAYS[-1], "history_from": "2025-12-20", "history_days": 17,
              "history_sessions": 1234, "sessions": 10, "currencies": 2, "registered_players": 0, "segments": 0}


def day_rows(report, **values):
    return [{c.name: values.get(c.name, 1) for c in report.columns} | {"day": day} for day in DAYS]


def reports(games=(), period=PERIOD_ROW, currencies=("BRL", "EUR"), tiers=TIERS):
    rows = {}
    for report in REPORTS:
        if report.name == "value_tiers":
            rows[report.name] = [r | {"value_tier": tier, "tier_rank": rank} for rank, tier in enumerate(tiers, 1)
                                 for r in day_rows(report)]
        elif report.name == "bet_amounts":  # BRL every day, EUR only on the first
            rows[report.name] = [r | {"currency": c} for c in currencies for r in day_rows(report)
                                 if c != "EUR" or r["day"] == DAYS[0]]
        elif report.name == "top_games":
            rows[report.name] = list(games)
        elif report.name == "period":
            rows[report.name] = [period]
        else:
            rows[report.name] = day_rows(report)
    return rows


GAME = {"rank": 1, "game_id": "JAMMIN_JARS", "game_name": "Jammin' <Jars>", "players": 3, "player_days": 4,
        "sessions": 5, "play_seconds": 700, "sessions_per_user": "1.25", "duration_per_user_seconds": "175.00",
        "returning_players": 1, "stickiness_pct": "33.33"}
CHARTS = re.compile(r'<section class="card" data-chart="(\w+)">(.*?)</section>')


def test_every_chart_has_a_bar_or_point_per_series_and_day():
    page = render(reports([GAME]))
    charts = CHARTS.findall(page)
    assert [name for name, _ in charts] == ["session_length", "sessions_per_user", "bets_per_session",
                                            "bet_amounts_BRL", "bet_amounts_EUR", "games_per_session", "new_users",
                                            "value_tiers_top_high", "value_tiers_medium_low"]
    for name, body in charts:
        marks = re.findall(r'class="(?:bar|point) mark"[^>]*data-day="([\d-]+)"', body)
        assert marks and len(marks) % len(DAYS) == 0 and set(marks) == set(DAYS), name


def test_each_currency_has_its_own_amount_chart_with_the_average_bet_and_the_stake_per_session():
    charts = dict(CHARTS.findall(render(reports())))
    eur = re.findall(r'data-series="([^"]+)" data-day="([\d-]+)" data-value="([\d.]+)"', charts["bet_amounts_EUR"])
    assert eur == [("Average bet (EUR)", DAYS[0], "1.0"), ("Average bet (EUR)", DAYS[1], "0.0"),
                   ("Stake per session (EUR)", DAYS[0], "1.0"), ("Stake per session (EUR)", DAYS[1], "0.0")]
    assert "BRL" not in charts["bet_amounts_EUR"] and "EUR" not in charts["bets_per_session"]
    without = dict(CHARTS.findall(render(reports(currencies=("",)))))
    assert "Average bet (no currency)" in without["bet_amounts_none"]


def test_the_header_states_the_period_and_its_history_and_warns_when_it_is_short():
    page = render(reports())
    assert ("2026-01-06 to 2026-01-07 (2 days) · 10 sessions · history before it: 17 days from 2025-12-20, "
            "1,234 sessions, not reported") in page
    warnings = re.findall(r'<p class="warning">(.*?)</p>', page)
    assert len(warnings) == 2 and "Only 17 days of history" in warnings[0] and "first 2 days" in warnings[1]
    enough = render(reports(period=PERIOD_ROW | {"history_days": 30}))
    assert 'class="warning"' not in enough
    none = render(reports(period=PERIOD_ROW | {"history_days": 0, "history_from": DAYS[0]}))
    assert "no history before the period" in none
    assert "No history before the period: every player on their first day in the input counts as new" in none
    operator = render(reports(period=PERIOD_ROW | {"registered_players": 5, "segments": 2}))
    assert 'class="warning"' not in operator


def test_operator_segments_split_over_charts_6_and_7_in_their_order():
    page = render(reports(period=PERIOD_ROW | {"segments": 3}, tiers=("Top", "VIP", "Casual", "Unsegmented")))
    charts = dict(CHARTS.findall(page))
    assert [name for name in charts if name.startswith("value_tiers")] == [
        "value_tiers_top_vip", "value_tiers_casual_unsegmented"]
    assert "operator" in charts["value_tiers_top_vip"]
    assert "Casual: users with sessions" in charts["value_tiers_casual_unsegmented"]


def test_game_names_are_escaped_and_the_page_fetches_nothing():
    page = render(reports([GAME]))
    assert "Jammin&#x27; &lt;Jars&gt;" in page and "<Jars>" not in page
    assert not re.search(r'(src|href)=|@import|url\(|<script', page)


def test_no_sessions_still_gives_a_page_that_says_so():
    page = render({r.name: [] for r in REPORTS})
    assert page.count("No sessions in the data") == 6  # charts 1-5 and table 8; no currency, no tier
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
