"""SPEC §7: campaign triggers, without Beam (rules, types, cooldowns, errors),
then in the replay and live pipelines."""
import json
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.util import assert_that
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions.events import Event
from sessions.sessionizer import GameSwitch, SessionEnd, SessionEvent, sessionize
from sessions.triggers import CampaignTriggers, TriggerFileError, load_rules
from tests.helpers import jsonl_records, write_lines
from tools.generate_events import generate

REPO = Path(__file__).resolve().parent.parent
USE_CASES = REPO / "sample" / "campaign_triggers.yaml"
GAP = 300_000
T0 = 1767731000000
S = 1000


def bet(t, game="A", stake="1", user="u", eid=None, currency="EUR"):
    return Event(user, eid or f"b{t}{game}", "bet", T0 + t, game, None, Decimal(stake), currency=currency)


def win(t, payout="2", user="u", eid=None):
    return Event(user, eid or f"w{t}", "win", T0 + t, "A", None, None, Decimal(payout))


def logout(t, user="u", eid=None):
    return Event(user, eid or f"x{t}", "logout", T0 + t)


def session_events(events, user="u"):
    """What a replay emits for one user's events, in order."""
    return [SessionEvent.of(r, 0 if isinstance(r, GameSwitch) else r.replay_delay_seconds)
            for r in sessionize(user, events, GAP) if isinstance(r, (GameSwitch, SessionEnd))]


def rules(text):
    return CampaignTriggers(load_rules(text))


def fired(triggers, events, cooldowns=None):
    cooldowns = {} if cooldowns is None else cooldowns
    firings = []
    for session_event in session_events(events):
        firings.extend(triggers.fire(session_event, cooldowns)[0])
    return [(f.trigger, f.event_type, f.fired_at - T0) for f in firings]


# --- fields and types -----------------------------------------------------------

def test_every_field_type_is_usable():
    triggers = rules("""
- {name: amounts_are_doubles, on: gs_game_session_ended, when: "gs_total_bet_amount == 3.5 && gs_avg_bet_amount > 1.16"}
- {name: counts_are_ints, on: gs_game_session_ended, when: "gs_bets_count == 3 && gs_wins_count == 1 && bets_rollback_count == 0"}
- {name: dates_are_epoch_ms, on: gs_game_session_ended, when: "gs_session_end_date - gs_session_start_date == 20000"}
- {name: lengths_are_ints, on: gs_game_session_ended, when: "gs_session_length_seconds == 20"}
- {name: ids_are_strings, on: gs_game_session_ended, when: "gs_gameplay_session_id.startsWith('2026') && user_id == 'u'"}
- {name: game_ids_are_a_list, on: gs_game_session_ended, when: "'B' in gs_all_game_ids && size(gs_all_game_ids) == 2"}
- {name: new_fields, on: gs_game_session_ended, when: "gs_end_reason == 'logout' && gs_game_switches_count == 1 && gs_last_game_id == 'B'"}
- {name: currency_is_a_string, on: gs_game_session_ended, when: "currency == 'EUR'"}
- {name: changed_fields, on: gs_game_session_changed, when: "gs_game_old_id == 'A' && gs_game_new_id == 'B' && gs_game_name == 'A' && gs_game_session_id != ''"}
""")
    events = [bet(0, stake="1.25"), win(1 * S), bet(10 * S, "B", stake="2"), bet(20 * S, "B", stake="0.25"),
              logout(25 * S)]
    assert sorted(name for name, _, _ in fired(triggers, events)) == sorted([
        "amounts_are_doubles", "counts_are_ints", "dates_are_epoch_ms", "lengths_are_ints", "ids_are_strings",
        "game_ids_are_a_list", "new_fields", "currency_is_a_string", "changed_fields"])


def test_a_null_currency_compares_with_null_and_with_strings():
    triggers = rules("""
- {name: no_currency, on: gs_game_session_ended, when: "currency == null"}
- {name: euro, on: gs_game_session_ended, when: "currency == 'EUR'"}
""")
    assert [n for n, _, _ in fired(triggers, [bet(0, currency=None)])] == ["no_currency"]
    assert [n for n, _, _ in fired(triggers, [bet(0, currency="EUR")])] == ["euro"]


def test_a_changed_trigger_sees_the_switch_count_so_far_a_to_b_to_a():
    triggers = rules("""
- {name: second_switch, on: gs_game_session_changed, when: "gs_game_switches_count == 2"}
- {name: hopper, on: gs_game_session_ended, when: "gs_game_switches_count >= 2"}
""")
    events = [bet(0, "A"), bet(1 * S, "B"), bet(2 * S, "A")]
    assert fired(triggers, events) == [
        ("second_switch", "gs_game_session_changed", 2 * S), ("hopper", "gs_game_session_ended", 2 * S)]


def test_the_firing_record_carries_the_session_event_and_the_action_untouched():
    triggers = rules("""
- name: big
  on: gs_game_session_changed
  when: gs_total_bet_amount > 1.0
  action: {campaign: x, amount: 0.30000000000000004, nested: {list: [1, "two", null, true]}}
""")
    session_event = session_events([bet(0, stake="2"), bet(5 * S, "B")])[0]
    (firing,), failed = triggers.fire(session_event, {})
    assert failed == []
    record = firing.record
    assert record == {
        "trigger": "big", "user_id": "u", "event_type": "gs_game_session_changed",
        "gs_gameplay_session_id": session_event.record["gs_gameplay_session_id"],
        "gs_game_session_id": session_event.record["gs_game_session_id"],
        "fired_at": T0 + 5 * S,
        "action": {"campaign": "x", "amount": Decimal("0.30000000000000004"),
                   "nested": {"list": [1, "two", None, True]}},
        "event": session_event.record}
    assert firing.partition_ms == T0 + 5 * S and firing.table == "campaign_trigger"


def test_ended_firings_have_no_game_session_id():
    triggers = rules("- {name: any, on: gs_game_session_ended, when: 'true'}")
    (firing,), _ = triggers.fire(session_events([bet(0)])[0], {})
    assert firing.record["gs_game_session_id"] is None


# --- cooldowns ---------------------------------------------------------------------

COOLDOWN = """
- {name: every_session, on: gs_game_session_ended, when: "true", cooldown_seconds: 600}
"""


def test_a_cooldown_lets_one_firing_through_per_period_of_event_time():
    # Sessions (one bet each, more than the gap apart) end at 0, 400 s, 999.999 s and 1600 s.
    events = [bet(0, eid="a"), bet(400 * S, eid="b"), bet(1000 * S - 1, eid="c"), bet(1600 * S, eid="d")]
    assert [t for _, _, t in fired(rules(COOLDOWN), events)] == [0, 1000 * S - 1, 1600 * S]


def test_a_cooldown_is_exact_at_its_edge():
    at_edge = fired(rules(COOLDOWN), [bet(0, eid="a"), bet(600 * S, eid="b")])
    assert [t for _, _, t in at_edge] == [0, 600 * S]
    just_before = fired(rules(COOLDOWN), [bet(0, eid="a"), bet(600 * S - 1, eid="b")])
    assert [t for _, _, t in just_before] == [0]


def test_cooldowns_are_per_trigger_and_per_user():
    triggers = rules(COOLDOWN + "- {name: other, on: gs_game_session_ended, when: 'true', cooldown_seconds: 600}\n")
    alice, bob = {}, {}
    first = session_events([bet(0)])[0]
    assert len(triggers.fire(first, alice)[0]) == 2
    assert len(triggers.fire(first, alice)[0]) == 0
    assert len(triggers.fire(first, bob)[0]) == 2


def test_a_condition_that_fails_does_not_fire_is_reported_and_keeps_no_cooldown():
    triggers = rules("""
- {name: ratio, on: gs_game_session_ended, when: "gs_bets_count / gs_wins_count > 1", cooldown_seconds: 60}
""")
    no_wins = session_events([bet(0)])[0]
    assert triggers.fire(no_wins, cooldowns := {}) == ([], ["ratio"])  # division by zero
    assert cooldowns == {}
    with_wins = session_events([bet(0), bet(1 * S), win(2 * S)])[0]
    assert len(triggers.fire(with_wins, cooldowns)[0]) == 1


# --- rules files that must stop the job -----------------------------------------

@pytest.mark.parametrize("text, message", [
    ("- {name: a, on: gs_game_session_ended, when: 'true'", "not valid YAML or JSON"),
    ("{}", "non-empty list"),
    ("- just a string", "trigger #1: expected a mapping"),
    ("- {name: Big-Spender, on: gs_game_session_ended, when: 'true'}", "name must be [a-z0-9_]+"),
    ("- {name: a, on: gs_session_started, when: 'true'}", "trigger 'a': on must be one of"),
    ("- {name: a, on: gs_game_session_ended}", "trigger 'a': when must be a CEL expression"),
    ("- {name: a, on: gs_game_session_ended, when: 'gs_total_bet > 1.0'}",
     "trigger 'a': when does not compile: at 1:1: undeclared reference to 'gs_total_bet'"),
    ("- {name: a, on: gs_game_session_ended, when: 'gs_bets_count >'}", "trigger 'a': when does not compile"),
    ("- {name: a, on: gs_game_session_ended, when: 'gs_bets_count + 1'}", "trigger 'a': when must be boolean, but gives INT"),
    ("- {name: a, on: gs_game_session_ended, when: 'gs_total_bet_amount > 10'}", "no matching overload"),
    ("- {name: a, on: gs_game_session_ended, when: 'gs_game_old_id == \"X\"'}", "undeclared reference to 'gs_game_old_id'"),
    ("- {name: a, on: gs_game_session_ended, when: 'gs_event_delay_seconds > 400'}", "not available to triggers"),
    ("- {name: a, on: gs_game_session_ended, when: 'true', cooldown_seconds: -1}", "cooldown_seconds must be"),
    ("- {name: a, on: gs_game_session_ended, when: 'true', cooldown_seconds: 1.5}", "cooldown_seconds must be"),
    ("- {name: a, on: gs_game_session_ended, when: 'true', action: [1]}", "action must be a mapping"),
    ("- {name: a, on: gs_game_session_ended, when: 'true', then: x}", "unknown key 'then'"),
    ("- {name: a, on: gs_game_session_ended, when: 'true'}\n- {name: a, on: gs_game_session_changed, when: 'true'}",
     "trigger 'a': the name is used twice"),
])
def test_a_broken_rules_file_is_one_line_naming_the_trigger(text, message):
    with pytest.raises(TriggerFileError) as e:
        load_rules(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_json_rules_and_a_triggers_key_are_accepted():
    as_json = json.dumps([{"name": "a", "on": "gs_game_session_ended", "when": "gs_bets_count > 0"}])
    assert [r.name for r in load_rules(as_json)] == ["a"]
    assert [r.name for r in load_rules("triggers:\n  - {name: b, on: gs_game_session_changed, when: 'true'}")] == ["b"]


def test_the_bundled_rules_are_the_six_use_cases_of_the_product_page():
    names = [r.name for r in load_rules(USE_CASES.read_text())]
    assert names == ["reward_long_high_value_session", "reactivate_low_engagement", "multi_game_explorer",
                     "promote_similar_titles", "vip_milestone", "retry_bonus"]


def test_the_job_refuses_a_broken_rules_file_before_it_starts(tmp_path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("- {name: vip, on: gs_game_session_ended, when: 'gs_total_bet_amount > \"x\"'}\n")
    events = tmp_path / "events.jsonl"
    events.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.game_sessions", f"--input={events}", f"--output_dir={tmp_path / 'out'}",
         f"--triggers={rules_file}"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "trigger 'vip'" in lines[0] and "no matching overload" in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


# --- determinism -----------------------------------------------------------------

@st.composite
def players(draw):
    events = []
    for user in ("u1", "u2"):
        t = 0
        for i in range(draw(st.integers(1, 25))):
            t += draw(st.sampled_from([0, 1, 2000, 60_000, GAP - 1, GAP, GAP + 1]))
            kind = draw(st.sampled_from(["bet", "bet", "bet", "win", "logout"]))
            eid = f"{user}-{i}"
            if kind == "bet":
                events.append(bet(t, draw(st.sampled_from("ABC")), draw(st.sampled_from(["0.5", "1", "20"])),
                                  user=user, eid=eid, currency=draw(st.sampled_from([None, "EUR", "BRL"]))))
            elif kind == "win":
                events.append(win(t, user=user, eid=eid))
            else:
                events.append(logout(t, user=user, eid=eid))
    return events


SHUFFLE_RULES = """
- {name: hopper, on: gs_game_session_changed, when: "gs_game_switches_count >= 2", cooldown_seconds: 120}
- {name: short, on: gs_game_session_ended, when: "gs_session_length_seconds < 60", cooldown_seconds: 300}
- {name: left, on: gs_game_session_ended, when: "gs_end_reason == 'logout' && currency != null"}
- {name: spender, on: gs_game_session_ended, when: "gs_total_bet_amount / double(gs_bets_count) > 5.0"}
"""


def all_firings(triggers, events):
    by_user = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    firings = []
    for user, mine in sorted(by_user.items()):
        cooldowns = {}
        for session_event in session_events(mine, user):
            firings.extend((f.trigger, f.user_id, f.fired_at) for f in triggers.fire(session_event, cooldowns)[0])
    return firings


@settings(max_examples=150, deadline=None)
@given(players(), st.randoms())
def test_shuffling_the_input_changes_no_firing(events, rnd):
    triggers = rules(SHUFFLE_RULES)
    shuffled = events[:]
    rnd.shuffle(shuffled)
    assert all_firings(triggers, shuffled) == all_firings(triggers, events)


# --- in the pipelines ----------------------------------------------------------------

def test_a_replay_writes_firings_and_counts_them(tmp_path):
    events = tmp_path / "day.jsonl"
    write_lines(str(events), generate(3000, seed=21))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.game_sessions", f"--input={events}", f"--output_dir={out}",
         "--output_format=both", f"--triggers={USE_CASES}", "--direct_num_workers=1"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    firings = jsonl_records(str(out), "campaign_trigger")
    assert firings and {f["trigger"] for f in firings} >= {"reactivate_low_engagement", "retry_bonus"}
    ended = {r["gs_gameplay_session_id"]: r for r in jsonl_records(str(out), "gs_game_session_ended")}
    for f in firings:
        if f["event_type"] == "gs_game_session_ended":
            assert f["event"] == ended[f["gs_gameplay_session_id"]]
            assert f["fired_at"] == f["event"]["gs_session_end_date"]
    assert "campaign triggers fired" in done.stdout and "retry_bonus" in done.stdout
    expected = all_firings(CampaignTriggers(load_rules(USE_CASES.read_text())), _usable_events(events))
    assert sorted((f["trigger"], f["user_id"], f["fired_at"]) for f in firings) == sorted(expected)


def _usable_events(path):
    from sessions.events import InvalidEvent, parse_event
    from tests.reference import dedupe
    events = []
    for line in open(path, "rb"):
        try:
            event = parse_event(line.rstrip(b"\n"))
        except InvalidEvent:
            continue
        if event is not None:
            events.append(event)
    return dedupe(events)


def test_live_fires_what_replay_fires_for_shuffled_arrivals():
    """TestStream: a generated stream delivered with up to 1 s of disorder and
    some redeliveries fires exactly the triggers the replay model fires."""
    from tests.test_live import GAP_S, DISORDER_S, generated_deliveries, stream_of
    from transforms.live import FIRINGS, LiveSessions

    rng = random.Random(4)
    deliveries = generated_deliveries(1200, seed=9)
    arrivals = sorted(deliveries + rng.sample(deliveries, 40), key=lambda d: d.event.occurred_at + rng.uniform(0, 1000))
    steps = []
    for n, d in enumerate(arrivals):
        steps.append(d)
        if n % 50 == 0:
            rest = [a.event.occurred_at for a in arrivals[n + 1:]]
            if rest:
                steps.append(min(rest) - T0 + 1000)
    rules_text = SHUFFLE_RULES.replace("120", "20").replace("300", "10")
    loaded = load_rules(rules_text)
    unique = list({(d.event.user_id, d.event.event_id): d.event for d in deliveries}.values())

    by_user = {}
    for e in unique:
        by_user.setdefault(e.user_id, []).append(e)
    triggers = CampaignTriggers(loaded)
    expected = []
    for user, mine in by_user.items():
        cooldowns = {}
        for r in sessionize(user, mine, GAP_S * 1000):
            if isinstance(r, (GameSwitch, SessionEnd)):
                expected.extend((f.trigger, f.user_id, f.fired_at)
                                for f in triggers.fire(SessionEvent.of(r, 0), cooldowns)[0])
    assert expected, "the rules must fire on this stream for the test to mean anything"

    def check(firings):
        assert sorted((f.trigger, f.user_id, f.fired_at) for f in firings) == sorted(expected)

    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(options=options) as p:
        live = p | stream_of(steps) | LiveSessions(GAP_S, DISORDER_S, trigger_rules=loaded)
        assert_that(live[FIRINGS], check)
