"""SPEC §2-§3: the session rules, without Beam."""
import json
import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions.events import Event
from sessions.records import from_json, to_json
from sessions.sessionizer import (
    GameSwitch, LogoutOutsideSession, SessionEnd, Sessionizer, Unattributed, first_copies, sessionize)
from tests.reference import canonical, expected_records, logouts_outside_sessions

GAP = 300_000
T0 = 1767731000000  # 2026-01-06T20:23:20Z
S = 1000


def bet(t, game="A", stake="1", eid=None, name=None, kind="bet", payout=None, **kw):
    return Event("u", eid or f"b{t}{game}", kind, T0 + t, game, name, Decimal(stake),
                 None if payout is None else Decimal(payout), **kw)


def win(t, payout="2", eid=None, game="A", kind="win"):
    return Event("u", eid or f"w{t}", kind, T0 + t, game, None, None, Decimal(payout))


def rollback(t, kind, amount="1", eid=None):
    stake = Decimal(amount) if kind == "bet_rollback" else None
    payout = Decimal(amount) if kind == "win_rollback" else None
    return Event("u", eid or f"r{t}", kind, T0 + t, None, None, stake, payout)


def run(events, gap=GAP):
    results = sessionize("u", events, gap)
    ended = [r.record(r.replay_delay_seconds) for r in results if isinstance(r, SessionEnd)]
    changed = [r.record(0) for r in results if isinstance(r, GameSwitch)]
    unattributed = [r for r in results if isinstance(r, Unattributed)]
    return ended, changed, unattributed


def test_one_bet_is_a_zero_length_session():
    ended, changed, _ = run([bet(0)])
    assert len(ended) == 1 and not changed
    e = ended[0]
    assert e["gs_session_start_date"] == e["gs_session_end_date"] == T0
    assert e["gs_session_length_seconds"] == 0
    assert e["gs_gameplay_session_id"] == "20260106202320_u"
    assert e["gs_event_delay_seconds"] == 300


def test_a_bet_exactly_gap_after_the_previous_starts_a_new_session():
    ended, _, _ = run([bet(0), bet(GAP)])
    assert len(ended) == 2
    ended, _, _ = run([bet(0), bet(GAP - 1)])
    assert len(ended) == 1 and ended[0]["gs_session_length_seconds"] == 299


def test_wins_never_prolong_a_session():
    ended, _, unattributed = run([bet(0), win(200 * S), win(GAP - 1), win(GAP), bet(GAP + 100 * S)])
    assert len(ended) == 2
    assert ended[0]["gs_wins_count"] == 2  # 200 s and gap - 1 ms
    assert ended[0]["gs_session_end_date"] == T0
    assert ended[1]["gs_wins_count"] == 0
    assert len(unattributed) == 1  # exactly gap after the last bet: in no session


def test_win_before_the_first_bet_is_unattributed_but_one_at_the_same_ms_belongs():
    ended, _, unattributed = run([win(-1, eid="early"), win(0, eid="a"), bet(0, eid="z")])
    assert ended[0]["gs_wins_count"] == 1
    assert [u.event.event_id for u in unattributed] == ["early"]


def test_win_only_bet_win_does_not_prolong_but_counts_as_a_win():
    ended, _, _ = run([bet(0), win(GAP - 10, payout="5", kind="bet_win"), bet(GAP + 10)])
    assert len(ended) == 2
    assert ended[0]["gs_wins_count"] == 1 and ended[0]["gs_total_win_amount"] == 5


def test_free_spin_is_a_bet_and_prolongs():
    ended, _, _ = run([bet(0), bet(200 * S, stake="0", kind="bet_win", payout="0"), bet(450 * S)])
    assert len(ended) == 1
    assert ended[0]["gs_bets_count"] == 3 and ended[0]["gs_wins_count"] == 0


def test_bet_win_counts_both_sides():
    ended, _, _ = run([bet(0, stake="2", kind="bet_win", payout="3")])
    e = ended[0]
    assert (e["gs_bets_count"], e["gs_total_bet_amount"], e["gs_wins_count"], e["gs_total_win_amount"]) == (1, 2, 1, 3)


def test_zero_wins_gives_zero_averages_and_max():
    ended, _, _ = run([bet(0), win(1 * S, payout="0")])
    e = ended[0]
    assert e["gs_wins_count"] == 0 and e["gs_avg_win_amount"] == 0 and e["gs_max_win_amount"] == 0


def test_amounts_are_exact_and_averages_round_half_up():
    ended, _, _ = run([bet(0, stake="0.1"), bet(1 * S, stake="0.2"), bet(2 * S, stake="0.005")])
    e = ended[0]
    assert e["gs_total_bet_amount"] == Decimal("0.305")
    assert e["gs_avg_bet_amount"] == Decimal("0.10")  # 0.101666.. -> 0.10
    ended, _, _ = run([bet(0, stake="0.005"), bet(1 * S, stake="0.02")])
    assert ended[0]["gs_avg_bet_amount"] == Decimal("0.01")  # 0.0125 -> 0.01
    ended, _, _ = run([bet(0, stake="0.01"), bet(1 * S, stake="0.02")])
    assert ended[0]["gs_avg_bet_amount"] == Decimal("0.02")  # 0.015 half-up -> 0.02
    assert '"gs_total_bet_amount":0.03' in to_json(ended[0])


def _json_as_json_dumps_renders_it(value) -> str:
    """to_json's contract: the standard library's JSON, but decimals as exact numbers."""
    from sessions.records import render_decimal
    if isinstance(value, Decimal):
        return render_decimal(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json_as_json_dumps_renders_it(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(_json_as_json_dumps_renders_it, value)) + "]"
    return json.dumps(value, ensure_ascii=False)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False, places=18),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _json_values, max_size=8))
def test_records_render_as_the_standard_json_with_exact_decimals(record):
    assert to_json(record) == _json_as_json_dumps_renders_it(record)


def test_integral_amounts_render_as_integers():
    ended, _, _ = run([bet(0, stake="800.00"), bet(S, stake="800")])
    line = to_json(ended[0])
    assert '"gs_total_bet_amount":1600,' in line and '"gs_avg_bet_amount":800,' in line
    assert from_json(line)["gs_total_bet_amount"] == 1600


def test_a_to_b_to_a_gives_two_changed_events():
    events = [bet(0, "A", name="Game A"), win(5 * S), bet(10 * S, "A"), bet(20 * S, "B"), win(25 * S, game="B"),
              bet(30 * S, "A"), bet(40 * S, "A")]
    ended, changed, _ = run(events)
    assert [(c["gs_game_old_id"], c["gs_game_new_id"]) for c in changed] == [("A", "B"), ("B", "A")]
    first, second = changed
    assert first["gs_bets_count"] == 2 and first["gs_wins_count"] == 1
    assert first["gs_session_start_date"] == T0 and first["gs_session_end_date"] == T0 + 20 * S
    assert first["gs_session_length_seconds"] == 20
    assert first["gs_game_name"] == "Game A"
    assert first["gs_game_session_id"] == "20260106202320_u_20260106202320_Game A"
    assert second["gs_game_name"] == "B" and second["gs_wins_count"] == 1
    assert second["gs_game_session_id"] == "20260106202320_u_20260106202340_B"
    assert ended[0]["gs_all_game_ids"] == ["A", "B"]
    assert ended[0]["gs_bets_count"] == 5


def test_win_at_the_switching_bet_belongs_to_the_new_segment():
    _, changed, _ = run([bet(0, "A"), win(10 * S, eid="w"), bet(10 * S, "B", eid="z")])
    assert changed[0]["gs_wins_count"] == 0


def test_ties_at_the_same_millisecond_order_by_event_id():
    _, changed, _ = run([bet(0, "A", eid="1"), bet(5 * S, "C", eid="3"), bet(5 * S, "B", eid="2")])
    assert [(c["gs_game_old_id"], c["gs_game_new_id"]) for c in changed] == [("A", "B"), ("B", "C")]


def test_rollbacks_change_no_gs_field():
    plain = run([bet(0), win(S)])[0][0]
    rolled = run([bet(0), win(S), rollback(2 * S, "bet_rollback", "1"), rollback(3 * S, "win_rollback", "2"),
                  rollback(4 * S, "bet_rollback", "0.5")])[0][0]
    assert {k: v for k, v in rolled.items() if k.startswith("gs_")} == {
        k: v for k, v in plain.items() if k.startswith("gs_")}
    assert (rolled["bets_rollback_count"], rolled["wins_rollback_count"]) == (2, 1)
    assert rolled["total_rollback_bet_amount"] == Decimal("1.5")
    assert rolled["total_rollback_win_amount"] == 2


def test_rollback_outside_any_session_is_unattributed():
    _, _, unattributed = run([rollback(0, "bet_rollback"), bet(S)])
    assert len(unattributed) == 1


def test_duplicates_keep_the_first_copy_per_user():
    a = Event("u1", "same", "bet", T0, "A", None, Decimal(1))
    b = Event("u1", "same", "bet", T0, "A", None, Decimal(1))
    kept, dropped = first_copies([((1,), a), ((0,), b)])
    assert kept == [b] and dropped == 1
    # The same event_id for two users is two events: callers group by user first.
    other = a._replace(user_id="u2")
    assert len(first_copies([((0,), a)])[0]) + len(first_copies([((0,), other)])[0]) == 2


def test_gap_must_be_positive():
    with pytest.raises(ValueError, match="gap"):
        Sessionizer("u", 0)


def test_incremental_closing_matches_the_batch_fold():
    s = Sessionizer("u", GAP)
    assert s.apply(bet(0)) == []
    assert s.advance_to(T0 + GAP - 1) == []
    closed = s.advance_to(T0 + GAP)
    assert len(closed) == 1 and isinstance(closed[0], SessionEnd)
    assert s.closes_at is None


class TestLatePlacement:
    """Streaming: an event behind the applied frontier is placed only if that
    gives exactly what in-order processing would have."""

    def started(self):
        s = Sessionizer("u", GAP)
        s.apply_all([bet(0, "A"), bet(10 * S, "A"), bet(20 * S, "B"), bet(30 * S, "B")])
        return s

    def test_late_win_in_the_running_segment_is_placed(self):
        s = self.started()
        assert s.apply_late(win(25 * S)) == []
        assert s.finish()[0].metrics.wins_count == 1

    def test_late_win_in_an_emitted_segment_is_late(self):
        assert self.started().apply_late(win(15 * S)) is None

    def test_late_same_game_bet_in_the_running_segment_is_placed(self):
        s = self.started()
        assert s.apply_late(bet(25 * S, "B")) == []
        assert s.finish()[0].metrics.bets_count == 5

    def test_late_bet_on_another_game_is_late(self):
        assert self.started().apply_late(bet(25 * S, "C")) is None

    def test_late_win_after_a_closed_session_is_late_but_past_its_reach_is_unattributed(self):
        s = self.started()
        s.advance_to(T0 + 30 * S + GAP)
        assert s.apply_late(win(31 * S)) is None
        assert isinstance(s.apply_late(win(30 * S + GAP))[0], Unattributed)
        assert s.apply_late(bet(30 * S + GAP)) is None


# --- properties -------------------------------------------------------------

@st.composite
def user_days(draw):
    """A user's events: bursts of bets with gaps around the session gap,
    several games, wins, bet_wins, rollbacks, ties."""
    gap = draw(st.sampled_from([1000, 5000, 300_000]))
    n = draw(st.integers(1, 40))
    t = 0
    events = []
    for i in range(n):
        t += draw(st.sampled_from([0, 1, gap // 2, gap - 1, gap, gap + 1, 2 * gap]))
        kind = draw(st.sampled_from(["bet", "bet", "bet", "win", "bet_win", "bet_win_winonly",
                                     "bet_rollback", "win_rollback", "logout"]))
        game = draw(st.sampled_from(["A", "B", "C"]))
        currency = draw(st.sampled_from([None, None, "EUR", "BRL"]))
        amount = Decimal(draw(st.sampled_from(["0", "0.1", "0.2", "1", "2.5", "100"])))
        eid = f"{draw(st.integers(0, 9))}-{i}"
        if kind == "bet":
            e = Event("u", eid, "bet", T0 + t, game, f"name-{game}", amount, currency=currency)
        elif kind == "logout":
            e = Event("u", eid, "logout", T0 + t)
        elif kind == "win":
            e = Event("u", eid, "win", T0 + t, game, None, None, amount)
        elif kind == "bet_win":
            e = Event("u", eid, "bet_win", T0 + t, game, None, amount, amount * 2, currency=currency)
        elif kind == "bet_win_winonly":
            e = Event("u", eid, "bet_win", T0 + t, game, None, None, amount)
        elif kind == "bet_rollback":
            e = Event("u", eid, "bet_rollback", T0 + t, None, None, amount)
        else:
            e = Event("u", eid, "win_rollback", T0 + t, None, None, None, amount)
        events.append(e)
    return gap, events


@settings(max_examples=400, deadline=None)
@given(user_days(), st.randoms())
def test_matches_the_reference_model_in_any_order(day, rnd):
    gap, events = day
    shuffled = events[:]
    rnd.shuffle(shuffled)
    ended, changed, unattributed = run(shuffled, gap)
    ref_ended, ref_changed, ref_unattributed = expected_records(events, gap)
    assert canonical(ended) == canonical(ref_ended)
    assert canonical(changed) == canonical(ref_changed)
    assert len(unattributed) == ref_unattributed
    stray = [r for r in sessionize("u", shuffled, gap) if isinstance(r, LogoutOutsideSession)]
    assert len(stray) == logouts_outside_sessions(events, gap)


SUMMED = ["gs_bets_count", "gs_total_bet_amount", "gs_wins_count", "gs_total_win_amount",
          "bets_rollback_count", "wins_rollback_count", "total_rollback_bet_amount", "total_rollback_win_amount"]


@settings(max_examples=300, deadline=None)
@given(user_days())
def test_segment_metrics_add_up_to_the_session(day):
    gap, events = day
    results = sessionize("u", events, gap)
    for end in (r for r in results if isinstance(r, SessionEnd)):
        switches = [r for r in results if isinstance(r, GameSwitch) and r.session_start == end.start]
        reach = end.closed_at + 1 if end.end_reason == "logout" else end.end + gap
        in_session = [e for e in events if e.event_type != "logout" and end.start <= e.occurred_at < reach]
        bets = sorted((e for e in in_session if e.is_bet), key=lambda e: e.fold_order)
        boundary = max((i for i in range(1, len(bets)) if bets[i].game_id != bets[i - 1].game_id), default=0)
        last_start = bets[boundary].occurred_at
        last_segment = sessionize("u", bets[boundary:] + [
            e for e in in_session if not e.is_bet and e.occurred_at >= last_start], gap)
        last = next(r for r in last_segment if isinstance(r, SessionEnd)).record(0)
        session = end.record(0)
        for field in SUMMED:
            parts = [s.record(0)[field] for s in switches] + [last[field]]
            assert sum(parts) == session[field], field
        for field in ("gs_max_bet_amount", "gs_max_win_amount"):
            assert max([s.record(0)[field] for s in switches] + [last[field]]) == session[field]
        assert sum(s.metrics.events for s in switches) + last_segment[-1].metrics.events == end.metrics.events


def test_streaming_style_feeding_equals_the_batch_fold():
    """Release events in time order in random chunks, as the live path does."""
    rng = random.Random(3)
    events, t = [], 0
    for i in range(500):
        t += rng.choice([100, 2000, 60_000, 400_000])
        events.append(bet(t, rng.choice("ABC"), eid=f"{i:04d}") if rng.random() < 0.6 else win(t, eid=f"{i:04d}"))
    expected = sessionize("u", events, GAP)
    s = Sessionizer("u", GAP)
    got = []
    ordered = sorted(events, key=lambda e: e.fold_order)
    i = 0
    while i < len(ordered):
        frontier = ordered[i].occurred_at + rng.choice([0, 1000, 500_000])
        while i < len(ordered) and ordered[i].occurred_at <= frontier:
            got += s.apply(ordered[i])
            i += 1
        got += s.advance_to(frontier)
    got += s.finish()
    assert got == expected


# --- logout, end reasons, switch counts, currency (SPEC §2.1, §3) -------------

def logout(t, eid=None):
    return Event("u", eid or f"x{t}", "logout", T0 + t)


def results_of(events, gap=GAP):
    return sessionize("u", events, gap)


def test_a_logout_ends_the_session_at_once_with_its_reason_and_delay():
    ended, _, _ = run([bet(0), bet(10 * S), logout(42 * S + 500)])
    assert len(ended) == 1
    e = ended[0]
    assert e["gs_end_reason"] == "logout"
    assert e["gs_session_end_date"] == T0 + 10 * S  # the last bet, not the logout
    assert e["gs_session_length_seconds"] == 10
    assert e["gs_event_delay_seconds"] == 32  # floor((x - end) / 1000)


def test_a_logout_at_the_same_ms_as_a_bet_and_a_win_comes_after_both():
    ended, _, unattributed = run([logout(5 * S, eid="a"), win(5 * S, eid="b"), bet(5 * S, eid="c"), bet(0)])
    assert len(ended) == 1 and not unattributed
    e = ended[0]
    assert (e["gs_bets_count"], e["gs_wins_count"], e["gs_session_end_date"]) == (2, 1, T0 + 5 * S)
    assert e["gs_end_reason"] == "logout" and e["gs_event_delay_seconds"] == 0


def test_wins_after_the_logout_are_unattributed_and_a_bet_starts_a_new_session():
    ended, _, unattributed = run([bet(0), logout(10 * S), win(10 * S + 1), bet(20 * S), win(21 * S)])
    assert len(ended) == 2 and len(unattributed) == 1
    first, second = sorted(ended, key=lambda e: e["gs_session_start_date"])
    assert first["gs_wins_count"] == 0 and first["gs_end_reason"] == "logout"
    assert second["gs_session_start_date"] == T0 + 20 * S  # less than gap after the last bet
    assert second["gs_wins_count"] == 1 and second["gs_end_reason"] == "inactivity"


def test_a_logout_outside_a_session_changes_nothing_and_is_counted():
    results = results_of([logout(0), bet(10 * S), bet(20 * S)])
    stray = [r for r in results if isinstance(r, LogoutOutsideSession)]
    ends = [r for r in results if isinstance(r, SessionEnd)]
    assert len(stray) == 1 and len(ends) == 1 and ends[0].end_reason == "inactivity"


def test_two_logouts_close_one_session_and_the_second_is_outside():
    results = results_of([bet(0), logout(5 * S, eid="x1"), logout(5 * S, eid="x2"), logout(9 * S)])
    assert [type(r).__name__ for r in results] == [
        "SessionEnd", "LogoutOutsideSession", "LogoutOutsideSession"]
    assert results[0].closed_at == T0 + 5 * S


def test_a_logout_exactly_at_end_plus_gap_is_after_an_inactivity_end():
    results = results_of([bet(0), bet(10 * S), logout(10 * S + GAP)])
    assert isinstance(results[0], SessionEnd) and results[0].end_reason == "inactivity"
    assert results[0].replay_delay_seconds == GAP // 1000
    assert isinstance(results[1], LogoutOutsideSession)
    just_before = results_of([bet(0), logout(GAP - 1)])
    assert just_before[0].end_reason == "logout" and just_before[0].replay_delay_seconds == 299


def test_a_to_b_to_a_counts_switches_so_far_and_in_total():
    ended, changed, _ = run([bet(0, "A"), bet(1 * S, "B"), bet(2 * S, "A"), bet(3 * S, "A")])
    assert [c["gs_game_switches_count"] for c in sorted(changed, key=lambda c: c["gs_session_end_date"])] == [1, 2]
    assert [(c["gs_game_old_id"], c["gs_last_game_id"], c["gs_end_reason"]) for c in changed] == [
        ("A", "A", "game_switch"), ("B", "B", "game_switch")]
    assert ended[0]["gs_game_switches_count"] == 2
    assert ended[0]["gs_last_game_id"] == "A" and ended[0]["gs_all_game_ids"] == ["A", "B"]


def test_currency_is_the_first_bets_that_has_one_and_null_without():
    ended, changed, _ = run([bet(0, "A"), win(1 * S), bet(2 * S, "B", currency="BRL"), bet(3 * S, "B", currency="EUR")])
    assert ended[0]["currency"] == "BRL"
    assert changed[0]["currency"] == "BRL"  # the switching bet is the first to say
    ended, changed, _ = run([bet(0, "A"), bet(1 * S, "B")])
    assert ended[0]["currency"] is None and changed[0]["currency"] is None
    assert '"currency":null' in to_json(ended[0])


def test_a_wins_currency_never_sets_the_sessions():
    ended, _, _ = run([bet(0), Event("u", "w", "win", T0 + 1, "A", None, None, Decimal(1), currency="USD")])
    assert ended[0]["currency"] is None


def test_a_late_logout_is_late_unless_it_is_outside_every_session():
    s = Sessionizer("u", GAP)
    s.apply(bet(0))
    s.apply(bet(10 * S))
    assert s.apply_late(logout(5 * S)) is None
    s.advance_to(T0 + 10 * S + GAP)
    assert s.apply_late(logout(20 * S)) is None  # would have ended the session
    assert isinstance(s.apply_late(logout(10 * S + GAP))[0], LogoutOutsideSession)


def test_after_a_logout_a_late_win_at_its_millisecond_is_late_one_after_is_unattributed():
    s = Sessionizer("u", GAP)
    s.apply(bet(0))
    s.apply(logout(10 * S))
    assert s.apply_late(win(10 * S)) is None
    assert isinstance(s.apply_late(win(10 * S + 1))[0], Unattributed)


# --- 38-digit amounts (SPEC §1, §3) ------------------------------------------------

@pytest.mark.parametrize("text", ["12345678901.123456789012345678", "99999999999999999999.999999999999999999",
                                  "0.000000000000000001", "3200", "0.30000000000000004"])
def test_amounts_render_with_every_digit(text):
    from sessions.records import render_decimal
    assert render_decimal(Decimal(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.decimals(min_value=0, max_value=Decimal("1e22"), places=18, allow_nan=False, allow_infinity=False),
       st.integers(1, 10 ** 6), st.sampled_from([2, 18]))
def test_averages_round_half_up_exactly_whatever_the_size(total, count, places):
    """2 places for session records, 18 for the reports' money averages."""
    from decimal import ROUND_HALF_UP, Context, localcontext
    from sessions.records import average
    with localcontext(Context(prec=200)):
        expected = (total / count).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    assert average(total, count, places) == expected


def test_a_session_of_38_digit_stakes_keeps_them_all():
    big = "12345678901.123456789012345678"
    ended, _, _ = run([bet(0, stake=big), bet(1 * S, stake=big)])
    assert to_json(ended[0]).count("24691357802.246913578024691356") == 1
    assert ended[0]["gs_avg_bet_amount"] == Decimal("12345678901.12")
