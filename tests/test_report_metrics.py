"""The dashboard's metric definitions (sessions.reports), without Beam."""
import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sessions.records import average
from sessions.reports import (MONEY_DIGITS, REPORTS, REPORTS_BY_NAME, TOP_GAMES, UNSEGMENTED, CurrencyPlay,
                              DayCensus, GamePlay, GameSession, Period, Player, PlayerProfile, Players, Segmentation,
                              SessionFacts, UserDay, ValueTiers, all_reports, day_rows, epoch_ms, game_row, median,
                              parse_day, period_row, read_players, segment_order, session_facts, sort_key,
                              stake_tiers, top_games, utc_day)
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


# ---------------------------------------------------------------- players, history and value tiers

def session(day, user="u1", seconds=60, stake="1", bets=2, currency=None, sid=None, games=("A",)):
    return SessionFacts(sid or f"{day}-{user}-{seconds}-{stake}", user, day, seconds, Decimal(stake), bets,
                        tuple(GamePlay(g, seconds, None) for g in games), currency)


def test_a_player_s_days_are_the_period_s_and_new_is_the_first_session_of_all_the_input():
    player = Player("u1", (session("2026-01-04"), session("2026-01-07", seconds=120), session("2026-01-07"),
                           session("2026-01-09")))
    days = player.days(Period("2026-01-06", "2026-01-08"))
    assert [(d.day, d.new, d.sessions, d.seconds) for d in days] == [("2026-01-07", False, 2, 180)]
    assert [d.new for d in player.days(Period("2026-01-04", "2026-01-09"))] == [True, False, False]


def test_the_operator_s_registration_date_decides_who_is_new():
    player = Player("u1", (session("2026-01-06"), session("2026-01-07")))
    registered = PlayerProfile("u1", registered_day="2026-01-07", segment="VIP")
    days = player.days(Period(), registered)
    assert [(d.day, d.new, d.segment) for d in days] == [("2026-01-06", False, "VIP"), ("2026-01-07", True, "VIP")]
    assert [d.new for d in player.days(Period(), PlayerProfile("u1"))] == [True, False]  # no date: first session


def test_past_stakes_cover_the_30_days_before_each_day_per_currency():
    player = Player("u1", (session("2026-01-01", stake="5", currency="EUR"),
                           session("2026-01-02", stake="7", currency="BRL"),
                           session("2026-01-02", stake="1", currency="EUR")))
    past = player.past_stakes(Period("2026-01-02", "2026-02-01"))
    assert past[:3] == [("2026-01-02", "u1", "EUR", Decimal(5)),
                        ("2026-01-03", "u1", "BRL", Decimal(7)), ("2026-01-03", "u1", "EUR", Decimal(6))]
    assert past[-1] == ("2026-02-01", "u1", "EUR", Decimal(1))  # 2026-01-01 is 31 days before: out of the window
    assert all(day != "2026-01-01" for day, *_ in past)  # a day's own stake never counts for it


def test_tiers_take_5_15_30_and_50_percent_of_players_by_stake():
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


def test_each_currency_ranks_its_own_players_and_a_player_keeps_the_best_tier():
    day = "2026-01-06"
    past = ([(day, f"eur{i}", "EUR", Decimal(i)) for i in range(1, 21)]
            + [(day, f"brl{i}", "BRL", Decimal(100 * i)) for i in range(1, 4)] + [(day, "eur1", "BRL", Decimal(300))])
    tiers = stake_tiers(past)
    # 300 BRL beats every EUR stake, but only ranks against BRL players:
    # eur1 ties brl3 for Top there, so 200 BRL is Low.
    assert (tiers["eur20"], tiers["eur19"], tiers["eur1"], tiers["brl3"], tiers["brl2"]) == (
        "Top", "High", "Top", "Top", "Low")
    assert "eur0" not in tiers


def test_players_without_past_stake_are_low_and_operator_segments_replace_tiers():
    users = [user_day("a", [1]), user_day("b", [1], segment="VIP"), user_day("c", [1], segment="Casual")]
    past = [("2026-01-06", "a", None, Decimal(3))]
    assert Segmentation().tiers(users, past) == {"a": "Top", "b": "Low", "c": "Low"}
    segments = Segmentation(Players.of([PlayerProfile("b", segment="VIP"), PlayerProfile("c", segment="Casual")]))
    assert segments.labels == ("Casual", "VIP", UNSEGMENTED)
    assert segments.tiers(users, past) == {"a": UNSEGMENTED, "b": "VIP", "c": "Casual"}
    assert segment_order(["Low", "Whale", "Top", "High"]) == ("Top", "High", "Low", "Whale")


# ---------------------------------------------------------------- per-day rows

def user_day(user, seconds, new=False, amounts=(), bets=0, games=0, segment=None):
    return UserDay(user, "2026-01-06", new, tuple(seconds), bets, games,
                   tuple(CurrencyPlay(c, n, b, Decimal(s)) for c, n, b, s in amounts), segment)


def rows_of(users, past=(), segmentation=Segmentation()):
    rows = {}
    for name, row in day_rows("2026-01-06", users, past, segmentation):
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
    rows = rows_of([user_day("a", [1], amounts=[(None, 1, 3, "1.03")], bets=3, games=2),
                    user_day("b", [2], amounts=[(None, 1, 0, "1")], bets=0, games=1)])
    assert rows["bets_per_session"] == [{"day": "2026-01-06", "sessions": 2, "bets": 3,
                                         "avg_bets_per_session": Decimal("1.50")}]
    assert rows["bet_amounts"][0]["avg_stake_per_session"] == Decimal("1.015")  # money keeps its places
    assert rows["games_per_session"][0]["avg_unique_games_per_session"] == Decimal("1.50")
    assert rows["sessions_per_user"][0]["avg_session_seconds_per_user"] == Decimal("1.50")


def test_bet_amounts_never_add_currencies_and_give_the_average_bet_beside_the_stake_per_session():
    rows = rows_of([user_day("a", [1, 2, 3], amounts=[("EUR", 2, 10, "20"), ("BRL", 1, 4, "100")], bets=14),
                    user_day("b", [1], amounts=[("EUR", 1, 10, "40")], bets=10),
                    user_day("c", [1], amounts=[(None, 1, 1, "1")], bets=1)])
    assert [(r["currency"], r["sessions"], r["bets"], r["stake"], r["avg_bet_amount"], r["avg_stake_per_session"])
            for r in rows["bet_amounts"]] == [
        (None, 1, 1, Decimal(1), Decimal(1), Decimal(1)),
        ("BRL", 1, 4, Decimal(100), Decimal(25), Decimal(100)),
        ("EUR", 3, 20, Decimal(60), Decimal(3), Decimal(20))]
    # Twice the bets of the same size double the stake per session, not the average bet.
    doubled = rows_of([user_day("b", [1], amounts=[("EUR", 1, 20, "80")], bets=20)])["bet_amounts"][0]
    assert (doubled["avg_bet_amount"], doubled["avg_stake_per_session"]) == (Decimal(4), Decimal(80))


def test_new_users_only_and_zero_when_there_are_none():
    rows = rows_of([user_day("a", [100, 300], new=True), user_day("b", [1000])])
    assert rows["new_users"] == [{"day": "2026-01-06", "new_users": 1, "sessions": 2, "session_seconds": 400,
                                  "avg_sessions_per_new_user": Decimal(2),
                                  "avg_session_seconds_per_new_user": Decimal(400)}]
    none_new = rows_of([user_day("b", [1000])])["new_users"][0]
    assert (none_new["new_users"], none_new["avg_sessions_per_new_user"]) == (0, 0)


def test_every_tier_has_a_row_every_day():
    rows = rows_of([user_day("a", [1, 2, 3]), user_day("b", [4]), user_day("c", [5, 6])],
                   past=[("2026-01-06", "a", "EUR", Decimal(9)), ("2026-01-06", "b", "EUR", Decimal(1))])
    assert [(r["value_tier"], r["tier_rank"], r["users_with_sessions"], r["sessions"], r["avg_sessions_per_user"])
            for r in rows["value_tiers"]] == [
        ("Top", 1, 1, 3, Decimal(3)), ("High", 2, 0, 0, 0), ("Medium", 3, 0, 0, 0), ("Low", 4, 2, 3, Decimal("1.5"))]


def test_median_of_nothing_is_zero():
    assert median([]) == 0
    assert median([3]) == 3
    assert median([1, 2]) == Decimal("1.5")


# ---------------------------------------------------------------- the period

def test_the_period_row_counts_history_apart_and_ignores_what_comes_after():
    census = [DayCensus("2026-01-01", 4, frozenset({"EUR"})), DayCensus("2026-01-10", 3, frozenset({"EUR", "BRL"})),
              DayCensus("2026-01-11", 2, frozenset({None})), DayCensus("2026-01-20", 9, frozenset({"USD"}))]
    players = Players.of([PlayerProfile("a", "2026-01-01", "VIP"), PlayerProfile("b", None, "VIP")])
    assert period_row(Period("2026-01-10", "2026-01-12"), census, players) == [{
        "from_date": "2026-01-10", "to_date": "2026-01-12", "history_from": "2026-01-01", "history_days": 9,
        "history_sessions": 4, "sessions": 5, "currencies": 3, "registered_players": 1, "segments": 1}]
    whole = period_row(Period(), census)[0]
    assert (whole["from_date"], whole["to_date"], whole["history_days"], whole["sessions"]) == (
        "2026-01-01", "2026-01-20", 0, 18)
    assert period_row(Period(), []) == []


@pytest.mark.parametrize("first, last, message", [
    ("2026-01-08", "2026-01-07", "--from_date 2026-01-08 is after --to_date 2026-01-07"),
])
def test_a_period_that_ends_before_it_starts_is_refused(first, last, message):
    with pytest.raises(ValueError, match=message):
        Period(first, last)


@pytest.mark.parametrize("text", ["2026-1-6", "20260106", "2026-02-30", "yesterday", ""])
def test_days_are_yyyy_mm_dd(text):
    with pytest.raises(ValueError, match="--from_date must be a date as YYYY-MM-DD"):
        parse_day(text, "--from_date")


# ---------------------------------------------------------------- the operator's players file

def test_players_files_in_csv_and_jsonl_read_the_same():
    csv_lines = ["segment,user_id,registered_at,email", "VIP,u1,2026-01-05,a@b", ",u2,,",
                 "Casual,u3,2026-01-05T23:30:00-02:00,", ""]
    jsonl_lines = ['{"user_id": "u1", "segment": "VIP", "registered_at": "2026-01-05"}', '{"user_id": "u2"}',
                   '{"user_id": "u3", "segment": "Casual", "registered_at": 1767670200000}']
    expected = [PlayerProfile("u1", "2026-01-05", "VIP"), PlayerProfile("u2"),
                PlayerProfile("u3", "2026-01-06", "Casual")]
    assert read_players(csv_lines, "p.csv")[1] == expected
    assert read_players(jsonl_lines, "p.jsonl.gz")[1] == expected
    assert read_players(['{"user_id": 42}'], "p.jsonl")[1] == [PlayerProfile("42")]
    assert Players.of(expected) == Players(registered=2, segments=("Casual", "VIP"))


@pytest.mark.parametrize("name, lines, message", [
    ("p.txt", [], "--players=p.txt: name it .csv or .jsonl"),
    ("p.csv", [], "--players=p.csv: empty, not even a CSV header"),
    ("p.csv", ["id,segment"], "the CSV header has no user_id column"),
    ("p.csv", ["user_id,segment", "u1,VIP,extra"], "line 2: 3 fields where the header has 2"),
    ("p.jsonl", ['{"user_id": "u1"}', "[1]"], "line 2: not a JSON object"),
    ("p.jsonl", ["{"], "line 1: not JSON"),
    ("p.jsonl", ['{"segment": "VIP"}'], "line 1: user_id must be a non-empty string or integer"),
    ("p.jsonl", ['{"user_id": "u1", "registered_at": "2026-01-06 10:00"}'], "line 1: registered_at must be"),
    ("p.jsonl", ['{"user_id": "u1", "segment": 3}'], "line 1: segment must be a string"),
    ("p.jsonl", ['{"user_id": "u1"}', '{"user_id": "u1"}'], "line 2: user_id 'u1' appears twice"),
])
def test_a_bad_players_file_is_one_line_naming_the_line(name, lines, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        read_players(lines, name)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- games

def test_a_game_row_counts_per_player_day_and_players_who_came_back_on_a_later_day():
    plays = [GameSession("u1", "2026-01-06", 100, "Game A"), GameSession("u1", "2026-01-06", 50, None),
             GameSession("u1", "2026-01-07", 30, None), GameSession("u2", "2026-01-06", 21, None),
             GameSession("u2", "2026-01-06", 1, None)]  # a break of a few minutes is not coming back
    row = game_row("A", plays)
    assert row == {"rank": 0, "game_id": "A", "game_name": "Game A", "players": 2, "player_days": 3,
                   "sessions": 5, "play_seconds": 202, "sessions_per_user": Decimal("1.67"),
                   "duration_per_user_seconds": Decimal("67.33"), "returning_players": 1,
                   "stickiness_pct": Decimal(50)}
    assert game_row("B", plays[-1:])["game_name"] == "B"  # never switched away from: no name known


def test_top_games_by_players_then_sessions_then_id_and_cut_at_the_limit():
    rows = [{"game_id": g, "players": p, "sessions": s} for g, p, s in
            [("c", 5, 9), ("a", 5, 9), ("b", 5, 10), ("d", 9, 1), ("e", 1, 100)]]
    ranked = top_games(rows, limit=4)
    assert [(r["rank"], r["game_id"]) for r in ranked] == [(1, "d"), (2, "b"), (3, "a"), (4, "c")]
    assert TOP_GAMES == 50


# ---------------------------------------------------------------- output

def test_output_rounds_averages_half_up_to_cents_and_money_to_18_places():
    report = REPORTS_BY_NAME["bet_amounts"]
    count, money = report.columns[2], report.columns[5]
    average_bets = REPORTS_BY_NAME["bets_per_session"].columns[3]
    assert output_value(average_bets, Decimal("2.005")) == Decimal("2.01")
    assert str(output_value(average_bets, Decimal(0))) == "0.00"
    assert output_value(count, 7) == 7
    assert output_value(money, Decimal(1) / 3) == Decimal("0.333333333333333333")
    row = {"day": "2026-01-06", "currency": None, "sessions": 2, "bets": 3, "stake": Decimal("2.5"),
           "avg_bet_amount": Decimal("0.0000000000000000005"), "avg_stake_per_session": Decimal("1.25")}
    eth = {**row, "currency": "ETH", "stake": Decimal("0.003"), "avg_bet_amount": Decimal("0.001"),
           "avg_stake_per_session": Decimal("0.0015")}
    assert csv_bytes(report, [row, eth]).decode() == (
        "day,currency,sessions,bets,stake,avg_bet_amount,avg_stake_per_session\n"
        "2026-01-06,,2,3,2.50,0.000000000000000001,1.25\n"
        "2026-01-06,ETH,2,3,0.003,0.001,0.0015\n")
    assert average(Decimal("0.000000000000000001"), 2, MONEY_DIGITS) == Decimal("0.000000000000000001")  # half up


def test_rows_sort_by_day_then_tier_order_or_currency_or_by_rank():
    rows = [{"day": "2026-01-07", "value_tier": "Top", "tier_rank": 1},
            {"day": "2026-01-06", "value_tier": "Low", "tier_rank": 4},
            {"day": "2026-01-06", "value_tier": "High", "tier_rank": 2}]
    assert [(r["day"], r["value_tier"]) for r in sorted(rows, key=sort_key)] == [
        ("2026-01-06", "High"), ("2026-01-06", "Low"), ("2026-01-07", "Top")]
    currencies = [{"day": "2026-01-06", "currency": c} for c in ("EUR", None, "BRL")]
    assert [r["currency"] for r in sorted(currencies, key=sort_key)] == [None, "BRL", "EUR"]
    assert sorted([{"rank": 2}, {"rank": 1}], key=sort_key) == [{"rank": 1}, {"rank": 2}]


@pytest.mark.parametrize("report", REPORTS, ids=lambda r: r.name)
def test_every_report_has_a_sql_file_with_its_columns(report):
    from tools.report_sql import report_sql
    sql = report_sql(report.name)
    for column in report.column_names:
        assert column in sql


# ---------------------------------------------------------------- properties of the whole

DAY_REPORT_NAMES = [r.name for r in REPORTS if "day" in r.column_names]
FIRST = date(2026, 1, 1)
a_session = st.builds(
    lambda user, day, seconds, cents, bets, currency, games: session(
        (FIRST + timedelta(days=day)).isoformat(), f"u{user}", seconds, str(Decimal(cents) / 100), bets, currency,
        games=games),
    st.integers(0, 5), st.integers(0, 12), st.integers(0, 900), st.integers(0, 10_000), st.integers(1, 9),
    st.sampled_from([None, "EUR", "BRL"]), st.lists(st.sampled_from("ABC"), min_size=1, max_size=3, unique=True))
sessions_of_days = st.lists(a_session, max_size=40).map(
    lambda found: [replace(s, session_id=f"s{i}") for i, s in enumerate(found)])


def per_day(rows, last_day):
    return {name: [r for r in rows[name] if r["day"] <= last_day] for name in DAY_REPORT_NAMES}


@settings(max_examples=100, deadline=None)
@given(sessions_of_days, st.integers(0, 12))
def test_later_days_never_change_an_earlier_day(sessions, cut):
    last_day = (FIRST + timedelta(days=cut)).isoformat()
    earlier = [s for s in sessions if s.day <= last_day]
    assume(earlier)
    first_day = min(s.day for s in sessions)
    assert per_day(all_reports(earlier, Period(first_day)), last_day) == per_day(
        all_reports(sessions, Period(first_day)), last_day)


@settings(max_examples=100, deadline=None)
@given(sessions_of_days, st.integers(0, 12), st.integers(0, 6))
def test_a_period_reports_its_days_as_the_whole_input_does_with_history_before_them(sessions, start, length):
    first_day, last_day = ((FIRST + timedelta(days=d)).isoformat() for d in (start, start + length))
    whole = all_reports(sessions, Period())
    period = all_reports(sessions, Period(first_day, last_day))
    for name in DAY_REPORT_NAMES:
        assert period[name] == [r for r in whole[name] if first_day <= r["day"] <= last_day], name
    history = sum(1 for s in sessions if s.day < first_day)
    assert not period["period"] or period["period"][0]["history_sessions"] == history


# ---------------------------------------------------------------- the SQL is BigQuery's

@pytest.mark.parametrize("report", REPORTS, ids=lambda r: r.name)
def test_every_sql_file_is_bigquery_sql_with_only_bigquery_functions(report):
    from tools.report_sql import bigquery_problems, report_sql
    assert bigquery_problems(report_sql(report.name)) == []


@pytest.mark.parametrize("sql, problem", [
    ("SELECT quantile_cont(x, 0.5) FROM gs_game_session_ended", "quantile_cont() is not a BigQuery function"),
    ("SELECT epoch_ms(gs_session_end_date) FROM gs_game_session_ended", "epoch_ms() is not a BigQuery function"),
    ("SELECT list_value(user_id) FROM gs_game_session_ended", "list_value() is not a BigQuery function"),
    ("SELECT 1 FROM gs_game_session_ended WHERE day > @since", "unknown parameter @since"),
    ("SELECT 1 FROM sessions_ended", "unknown table sessions_ended"),
    ("SELECT FROM WHERE", "does not parse as BigQuery SQL"),
])
def test_the_bigquery_check_catches_duckdb_functions_and_strangers(sql, problem):
    from tools.report_sql import bigquery_problems
    assert any(p.startswith(problem) for p in bigquery_problems(sql)), bigquery_problems(sql)
