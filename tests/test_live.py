"""SPEC §3.3: the live path under disorder, with TestStream (no Pub/Sub)."""
import json
import random

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.testing.util import assert_that
from apache_beam.utils.timestamp import Timestamp

from sessions.events import parse_event
from tests.reference import canonical, expected_records
from tools.generate_events import generate
from transforms.live import DEAD_LETTERS, Delivery, LiveSessions

GAP_S = 5
GAP_MS = GAP_S * 1000
DISORDER_S = 1
T0 = 1767731000000


def delivery(i, t, kind="bet", game="A", user="u", amount="1", eid=None):
    event = {"event_id": eid or f"e{i}", "user_id": user, "event_type": kind, "occurred_at": T0 + t}
    if kind in ("bet", "win", "bet_win"):
        event["game_id"] = game
    event["win_amount" if kind in ("win", "win_rollback") else "bet_amount"] = amount
    payload = json.dumps(event).encode()
    return Delivery(parse_event(payload), payload, f"m{i}")


def stream_of(steps):
    """steps: Delivery (arrives now) or int (advance the watermark to T0 + ms)."""
    stream = BeamTestStream()
    watermark = None
    for step in steps:
        if isinstance(step, Delivery):
            stream.add_elements([beam.window.TimestampedValue(step, step.event.occurred_at / 1000)])
        elif watermark is None or step > watermark:
            stream.advance_watermark_to(Timestamp(micros=(T0 + step) * 1000))
            watermark = step
    # The Python DirectRunner ends without firing timers when the watermark
    # jumps to infinity, so first let every session close (any gap < 1 day).
    last = max(s.event.occurred_at - T0 if isinstance(s, Delivery) else s for s in steps)
    return stream.advance_watermark_to(Timestamp(micros=(T0 + last + 86_400_000) * 1000)) \
        .advance_watermark_to_infinity()


def run_live(steps, check_sessions, check_dead=None, clock=lambda: (T0 + 10**9) / 1000):
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(options=options) as p:
        live = p | stream_of(steps) | LiveSessions(GAP_S, DISORDER_S, clock=clock)
        emitted = live.sessions | "WithTimestamps" >> beam.ParDo(_WithTimestamp())
        assert_that(emitted, check_sessions, label="sessions")
        if check_dead:
            assert_that(live[DEAD_LETTERS], check_dead, label="dead")


class _WithTimestamp(beam.DoFn):
    def process(self, session_event, ts=beam.DoFn.TimestampParam):
        yield session_event.result.event_type, session_event.record, ts.micros // 1000 - T0


def records_equal(deliveries, ended_delay=None):
    """Checker: the emitted records equal the reference for these events."""
    ended, changed, _ = expected_records([d.event for d in deliveries], GAP_MS, ended_delay=0)

    def check(emitted):
        def strip(records):
            return canonical([{k: v for k, v in r.items() if k != "gs_event_delay_seconds"} for r in records])
        got_ended = [r for kind, r, _ in emitted if kind == "gs_game_session_ended"]
        got_changed = [r for kind, r, _ in emitted if kind == "gs_game_session_changed"]
        assert strip(got_ended) == strip(ended)
        assert strip(got_changed) == strip(changed)
    return check


def session_day():
    """Two users, switches, wins overtaking nothing yet, two sessions each."""
    events, i = [], 0
    for user in ("u1", "u2"):
        t = 0
        for n in range(30):
            t += 400 if n != 15 else GAP_MS + 200  # one break longer than the gap
            events.append(delivery(i, t, game="AB"[n // 7 % 2], user=user)); i += 1
            if n % 3 == 0:
                events.append(delivery(i, t + 300, kind="win", user=user, amount="2")); i += 1
    return events


def in_order_steps(events):
    steps = []
    for d in sorted(events, key=lambda d: d.event.occurred_at):
        steps += [d, d.event.occurred_at - T0]
    return steps


def test_in_order_stream_equals_replay():
    events = session_day()
    run_live(in_order_steps(events), records_equal(events))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_within_the_disorder_bound_equals_replay(seed):
    """Arrival order is shuffled, but the watermark never gets more than the
    disorder bound ahead of an event still to come."""
    rng = random.Random(seed)
    events = session_day()
    arrivals = sorted(events, key=lambda d: d.event.occurred_at + rng.uniform(0, DISORDER_S * 1000))
    steps = []
    for n, d in enumerate(arrivals):
        steps.append(d)
        rest = [a.event.occurred_at for a in arrivals[n + 1:]]
        if rest:
            steps.append(min(rest) - T0 + DISORDER_S * 1000)
    run_live(steps, records_equal(events))


def test_changed_leaves_at_the_switch_and_ended_at_end_plus_gap():
    events = [delivery(1, 0, game="A"), delivery(2, 1000, game="B"), delivery(3, 2000, game="B")]

    def check(emitted):
        times = {kind: ts for kind, _, ts in emitted}
        hold = DISORDER_S * 1000 + 1
        assert times == {"gs_game_session_changed": 1000 + hold, "gs_game_session_ended": 2000 + GAP_MS + hold}
    run_live(in_order_steps(events), check)


def test_a_bet_that_bridges_two_sessions_arrives_late_but_within_the_bound():
    first, bridge, last = delivery(1, 0), delivery(2, 4000), delivery(3, 8000)
    # The bridging bet arrives after the last one; the watermark stays within the bound.
    steps = [first, 0, last, 4000, bridge, 8000]

    def check(emitted):
        ended = [r for kind, r, _ in emitted if kind == "gs_game_session_ended"]
        assert len(ended) == 1 and ended[0]["gs_bets_count"] == 3
    run_live(steps, check)


def test_a_win_after_the_gap_is_not_in_the_session():
    events = [delivery(1, 0), delivery(2, GAP_MS, kind="win", amount="9"), delivery(3, GAP_MS - 1, kind="win")]

    def check(emitted):
        (kind, record, _), = emitted
        assert record["gs_wins_count"] == 1 and record["gs_total_win_amount"] == 1
    run_live(in_order_steps(events), check)


def test_late_events_are_dead_lettered_or_placed_when_nothing_emitted_changes():
    steps = [delivery(1, 0, game="A"), delivery(2, 1000, game="B"), 3000,
             delivery(3, 500, kind="win", eid="late-win-in-emitted-segment"),
             delivery(4, 1500, kind="win", eid="late-win-in-open-segment", amount="7"),
             delivery(5, 1200, game="A", eid="late-bet-other-game"),
             GAP_MS * 3,
             delivery(6, 2000, kind="win", eid="after-the-session-ended")]

    def check_sessions(emitted):
        by_kind = {kind: record for kind, record, _ in emitted}
        assert by_kind["gs_game_session_changed"]["gs_wins_count"] == 0
        assert by_kind["gs_game_session_ended"]["gs_total_win_amount"] == 7

    def check_dead(dead):
        assert sorted(json.loads(d.payload)["event_id"] for d in dead) == [
            "after-the-session-ended", "late-bet-other-game", "late-win-in-emitted-segment"]
        assert {d.reason for d in dead} == {"late_event"} and all(d.message_id for d in dead)
    run_live(steps, check_sessions, check_dead)


def test_duplicates_delivered_twice_count_once():
    events = [delivery(1, 0), delivery(2, 300, kind="win"), delivery(3, 600)]
    steps = []
    for d in events:
        steps += [d, d]  # redelivered straight away
    steps += [events[0], 5000]  # and once more, after its time was applied
    run_live(steps, records_equal(events))


def test_delay_is_wall_clock_seconds_since_the_deciding_bet():
    events = [delivery(1, 0, game="A"), delivery(2, 1000, game="B"), delivery(3, 3000, game="B")]

    def check(emitted):
        delays = {kind: r["gs_event_delay_seconds"] for kind, r, _ in emitted}
        assert delays == {"gs_game_session_changed": 43, "gs_game_session_ended": 41}
    run_live(in_order_steps(events), check, clock=lambda: (T0 + 3000 + 41_500) / 1000)


def generated_deliveries(events: int, seed: int):
    """The usable events of a generated day, as Pub/Sub would deliver them."""
    deliveries = []
    for n, line in enumerate(generate(events, seed=seed)):
        try:
            event = parse_event(line.encode())
        except ValueError:
            continue
        if event is not None:
            deliveries.append(Delivery(event, line.encode(), f"m{n}"))
    return deliveries


def test_generated_stream_shuffled_equals_replay():
    """A slice of the generated day, every event delivered with up to 1 s of
    disorder and some twice."""
    rng = random.Random(11)
    deliveries = generated_deliveries(800, seed=5)
    unique = list({(d.event.user_id, d.event.event_id): d for d in reversed(deliveries)}.values())
    arrivals = sorted(deliveries + rng.sample(deliveries, 50),
                      key=lambda d: d.event.occurred_at + rng.uniform(0, 1000))
    steps = []
    for n, d in enumerate(arrivals):
        steps.append(d)
        if n % 60 == 0:
            rest = [a.event.occurred_at for a in arrivals[n + 1:]]
            if rest:
                steps.append(min(rest) - T0 + 1000)
    run_live(steps, records_equal(unique))


def test_a_logout_ends_the_session_when_the_watermark_passes_it_not_after_the_gap():
    events = [delivery(1, 0, game="A"), delivery(2, 1000, game="B"), delivery(3, 1500, kind="logout"),
              delivery(4, 1700, kind="win", amount="5"), delivery(5, 2500, game="B")]

    def check(emitted):
        hold = DISORDER_S * 1000 + 1
        ended = sorted((ts, r) for kind, r, ts in emitted if kind == "gs_game_session_ended")
        assert [ts for ts, _ in ended] == [1500 + hold, 2500 + GAP_MS + hold]
        first, second = (r for _, r in ended)
        assert (first["gs_end_reason"], first["gs_wins_count"], first["gs_session_end_date"]) == ("logout", 0, T0 + 1000)
        assert second["gs_end_reason"] == "inactivity" and second["gs_bets_count"] == 1
        records_equal(events)(emitted)
    run_live(in_order_steps(events), check)


def test_load_latency_is_measured_to_the_outputs_publish_time_when_asked():
    """tools.live_load.figures: "available" is the emulator's publish time of
    the output message (tools.flink_live load), else the collector's pull."""
    from tools.live_load import LoadResult, Message, figures
    from tools.live_scenario import Received
    switch = {"event_id": "b1", "user_id": "u", "event_type": "bet", "occurred_at": 10_000, "game_id": "G2"}
    messages = [Message(10_300, json.dumps(switch).encode(), switch)]
    changed = Received(arrived_ms=12_000, attributes={}, published_ms=11_700, data=json.dumps(
        {"user_id": "u", "gs_session_end_date": 10_000, "gs_game_new_id": "G2"}).encode())
    result = LoadResult(messages, [10_300], {"changed": [changed], "ended": [], "dead": []}, True, "", True)
    by_publish = figures(result, 5, 1, available="publish_time", accepted_ms={messages[0].body: 10_310})
    assert by_publish.changed == [1.4] and by_publish.changed_arrived == [1.7]
    assert by_publish.changed_after_due == [0.7] and by_publish.accepted_lag == [0.01]
    assert figures(result, 5, 1).changed == [1.7]
