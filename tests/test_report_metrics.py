"""The dashboard's metric definitions (sessions.reports), without Beam."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from sessions.reports import (REPORTS, TOP_GAMES, GameSession, Player, SessionFacts, UserDay, ValueTiers, day_rows,
                              epoch_ms, game_row, median, session_facts, sort_key, top_games, utc_day)
from transforms.report import csv_bytes, output_value

T0 = 1_767_693_600_000  # 2026-01-06 10:00:00 UTC


def ended(start, end, games, session="s1", user="u1", bets=3, stake="3"):
    return {"user_id": user, "gs_gameplay_session_id": session, "gs_all_game_ids": games,
            "gs_bets_count": bets, "gs_total_bet_amount": Decimal(stake),
            "gs_session_start_date": start, "gs_session_end_date": end,
            "gs_session_length_seconds": (end - start) // 1000}


def changed(start, end, old, new, session="s1", name=None):
    return {"gs_gameplay_session_id": session, "gs_game_old_id": old, "gs_game_new_id": new,
            "gs_game_name": name or old.title(), "gs_session_start_date": start, "gs_session_end_date": end,
            "gs_session_length_seconds": (end - start) // 1000}


def seconds_by_game(facts: SessionFacts) -> dict:
    return {g.game_id: g.seconds for g in facts.games}


# ---------------------------------------------------------------- sessions and their games

def test_a_session_without_a_switch_is_all_on_its_one_game():
    facts = session_facts(ended(T0, T0 + 95_500, ["A"]), [])
    assert seconds_by_game(facts) == {"A": 95}
    assert facts.games[0].name is None  # no changed event names it
    assert (facts.day, facts.seconds, facts.bets, facts.stake) == ("2026-01-06", 95, 3, Decimal("3"))


def test_the_last_segment_runs_from_the_last_switch_to_the_session_end():
    # A 0..60.5 s, B 60.5..120 s, back to A 120..200.9 s: A -> B -> A is two changed events.
    record = ended(T0, T0 + 200_900, ["A", "B"])
    switches = [changed(T0 + 60_500, T0 + 120_000, "B", "A", name="Game B"),  # any order
                changed(T0, T0 + 60_500, "A", "B", name="Game A")]
    facts = session_facts(record, switches)
    assert seconds_by_game(facts) == {"A": 60 + 80, "B": 59}
    assert [(g.game_id, g.name) for g in facts.games] == [("A", "Game A"), ("B", "Game B")]


def test_switches_in_the_same_millisecond_end_on_the_later_segment():
    # A, then one bet on B and one on C at the same millisecond: the last game is C.
    record = ended(T0, T0 + 10_000, ["A", "B", "C"])
    switches = [changed(T0 + 5_000, T0 + 5_000, "B", "C"), changed(T0, T0 + 5_000, "A", "B")]
    assert seconds_by_game(session_facts(record, switches)) == {"A": 5, "B": 0, "C": 5}


def test_avro_datetimes_and_jsonl_epoch_ms_read_the_same():
    moment = datetime(2026, 1, 6, 23, 59, 59, 999_000, tzinfo=timezone.utc)
    assert epoch_ms(moment) == epoch_ms(1_767_743_999_999) == 1_767_743_999_999
    assert utc_day(epoch_ms(moment)) == "2026-01-06"
    assert utc_day(epoch_ms(moment) + 1) == "2026-01-07"


def test_a_session_over_midnight_belongs_to_the_day_it_started():
    start = epoch_ms(datetime(2026, 1, 6, 23, 58, tzinfo=timezone.utc))
    assert session_facts(ended(start, start + 600_000, ["A"]), []).day == "2026-01-06"


# ---------------------------------------------------------------- value tiers

def test_tiers_take_5_15_30_and_50_percent_of_players_by_period_stake():
    tiers = ValueTiers.from_stakes(Decimal(n) for n in range(1, 21))  # 20 players, stakes 1..20
    assert [tiers.tier(Decimal(n)) for n in range(20, 0, -1)] == (
        ["Top"] + ["High"] * 3 + ["Medium"] * 6 + ["Low"] * 10)


def test_a_tier_is_never_empty_for_want_of_rounding_and_equal_stakes_share_one():
    assert ValueTiers.from_stakes([Decimal(7)]).tier(Decimal(7)) == "Top"
    three = ValueTiers.from_stakes([Decimal(1), Decimal(2), Decimal(3)])
    assert [three.tier(Decimal(n)) for n in (3, 2, 1)] == ["Top", "Medium", "Low"]
    tied = ValueTiers.from_stakes([Decimal(5)] * 2 + [Decimal(1)] * 18)
    assert tied.tier(Decimal(5)) == "Top"  # both: nobody has more, though 2 > 5% of 20
    assert tied.tier(Decimal(1)) == "High"  # all 18: 2 players ahead of each, 2 < 20% of 20


def test_players_days_know_their_first_day_and_tier():
    sessions = tuple(SessionFacts(f"s{i}", "u1", day, 60 * i, Decimal("1.5"), 2, ()) for i, day in
                     enumerate(["2026-01-07", "2026-01-06", "2026-01-07"], start=1))
    player = Player("u1", sessions)
    assert player.stake == Decimal("4.5")
    days = player.days(ValueTiers.from_stakes([player.stake]))
    assert [(d.day, d.new, d.sessions, d.seconds, d.tier) for d in days] == [
        ("2026-01-06", True, 1, 120, "Top"), ("2026-01-07", False, 2, 240, "Top")]


# ---------------------------------------------------------------- per-day rows

def user_day(user, seconds, new=False, tier="Low", stake="0", bets=0, games=0):
    return UserDay(user, "2026-01-06", tier, new, tuple(seconds), Decimal(stake), bets, games)


def rows_of(users):
    rows = {}
    for name, row in day_rows("2026-01-06", users):
        rows.setdefault(name, []).append(row)
    return rows


def test_medians_of_players_daily_play_time_and_of_sessions():
    rows = rows_of([user_day("a", [100, 500]), user_day("b", [200]), user_day("c", [50, 60, 70])])
    assert rows["session_length"] == [{
        "day": "2026-01-06", "users_with_sessions": 3, "sessions": 6,
        "median_user_session_seconds": Decimal(200),  # of 600, 200, 180
        "median_session_length_seconds": Decimal("85")}]  # of 50 60 70 100 200 500: (70 + 100) / 2


def test_averages_are_exact_and_round_half_up():
    # 2.03 / 2 = 1.015 exactly: binary floating point would give 1.01.
    rows = rows_of([user_day("a", [1], stake="1.03", bets=3, games=2), user_day("b", [2], stake="1", bets=0, games=1)])
    assert rows["bets_per_session"] == [{"day": "2026-01-06", "sessions": 2, "bets": 3, "stake": Decimal("2.03"),
                                         "avg_stake_per_session": Decimal("1.02"),
                                         "avg_bets_per_session": Decimal("1.50")}]
    assert rows["games_per_session"][0]["avg_unique_games_per_session"] == Decimal("1.50")
    assert rows["sessions_per_user"][0]["avg_session_seconds_per_user"] == Decimal("1.50")


def test_new_users_only_and_zero_when_there_are_none():
    rows = rows_of([user_day("a", [100, 300], new=True), user_day("b", [1000])])
    assert rows["new_users"] == [{"day": "2026-01-06", "new_users": 1, "sessions": 2, "session_seconds": 400,
                                  "avg_sessions_per_new_user": Decimal(2),
                                  "avg_session_seconds_per_new_user": Decimal(400)}]
    none_new = rows_of([user_day("b", [1000])])["new_users"][0]
    assert (none_new["new_users"], none_new["avg_sessions_per_new_user"]) == (0, 0)


def test_every_tier_has_a_row_every_day():
    rows = rows_of([user_day("a", [1, 2, 3], tier="Top"), user_day("b", [4], tier="Low"),
                    user_day("c", [5, 6], tier="Low")])
    assert [(r["value_tier"], r["users_with_sessions"], r["sessions"], r["avg_sessions_per_user"])
            for r in rows["value_tiers"]] == [
        ("Top", 1, 3, Decimal(3)), ("High", 0, 0, 0), ("Medium", 0, 0, 0), ("Low", 2, 3, Decimal("1.5"))]


def test_median_of_nothing_is_zero():
    assert median([]) == 0
    assert median([3]) == 3
    assert median([1, 2]) == Decimal("1.5")


# ---------------------------------------------------------------- games

def test_a_game_row_counts_per_player_day_and_players_who_came_back():
    plays = [GameSession("u1", "2026-01-06", 100, "Game A"), GameSession("u1", "2026-01-06", 50, None),
             GameSession("u1", "2026-01-07", 30, None), GameSession("u2", "2026-01-06", 21, None)]
    row = game_row("A", plays)
    assert row == {"rank": 0, "game_id": "A", "game_name": "Game A", "players": 2, "player_days": 3,
                   "sessions": 4, "play_seconds": 201, "sessions_per_user": Decimal("1.33"),
                   "duration_per_user_seconds": Decimal(67), "returning_players": 1,
                   "stickiness_pct": Decimal(50)}
    assert game_row("B", plays[-1:])["game_name"] == "B"  # never switched away from: no name known


def test_top_games_by_players_then_sessions_then_id_and_cut_at_the_limit():
    rows = [{"game_id": g, "players": p, "sessions": s} for g, p, s in
            [("c", 5, 9), ("a", 5, 9), ("b", 5, 10), ("d", 9, 1), ("e", 1, 100)]]
    ranked = top_games(rows, limit=4)
    assert [(r["rank"], r["game_id"]) for r in ranked] == [(1, "d"), (2, "b"), (3, "a"), (4, "c")]
    assert TOP_GAMES == 50


# ---------------------------------------------------------------- output

def test_output_rounds_amounts_half_up_to_cents_and_keeps_counts():
    report = next(r for r in REPORTS if r.name == "bets_per_session")
    amount, count = report.columns[3], report.columns[1]
    assert output_value(amount, Decimal("2.005")) == Decimal("2.01")
    assert str(output_value(amount, Decimal(0))) == "0.00"
    assert output_value(count, 7) == 7
    row = {"day": "2026-01-06", "sessions": 2, "bets": 3, "stake": Decimal("2.005"),
           "avg_stake_per_session": Decimal("1.0025"), "avg_bets_per_session": Decimal("1.5")}
    assert csv_bytes(report, [row]).decode() == (
        "day,sessions,bets,stake,avg_stake_per_session,avg_bets_per_session\n2026-01-06,2,3,2.01,1.00,1.50\n")


def test_rows_sort_by_day_then_tier_order_or_by_rank():
    rows = [{"day": "2026-01-07", "value_tier": "Top"}, {"day": "2026-01-06", "value_tier": "Low"},
            {"day": "2026-01-06", "value_tier": "High"}]
    assert [(r["day"], r["value_tier"]) for r in sorted(rows, key=sort_key)] == [
        ("2026-01-06", "High"), ("2026-01-06", "Low"), ("2026-01-07", "Top")]
    assert sorted([{"rank": 2}, {"rank": 1}], key=sort_key) == [{"rank": 1}, {"rank": 2}]


@pytest.mark.parametrize("report", REPORTS, ids=lambda r: r.name)
def test_every_report_has_a_sql_file_with_its_columns(report):
    from tools.report_sql import report_sql
    sql = report_sql(report.name)
    for column in report.column_names:
        assert column in sql
