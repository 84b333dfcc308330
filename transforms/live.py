"""Live sessions: a per-user event-time buffer feeding the shared rules.

Pub/Sub does not order messages, and on the DirectRunner a point window for a
win is already behind the watermark when it reaches a GroupByKey (see
DESIGN-NOTES), so the live path does not lean on merging windows. Each user's
events wait in state until the watermark passes their time plus
`--max_disorder_seconds`, then go through the same `Sessionizer` the replay
uses, in the same order (SPEC §3.3). A changed event therefore leaves when the
watermark passes the switching bet plus the bound, an ended event when it
passes end + gap plus the bound. An event arriving after the events around it
were applied is still placed if that changes nothing already emitted
(`Sessionizer.apply_late`); otherwise it is dead-lettered as `late_event`.
"""
import time
from typing import NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.coders import PickleCoder, VarIntCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from sessions.events import LATE_EVENT, Event, fold_key
from sessions.sessionizer import Sessionizer
from sessions.triggers import TriggerRule
from transforms.counters import InputCounters, SessionCounters
from transforms.dead_letters import DeadLetter
from transforms.triggers import TriggerFiring

DEAD_LETTERS = "dead_letters"
FIRINGS = "firings"


class Delivery(NamedTuple):
    """A parsed event with what it arrived as, kept for a late dead letter."""
    event: Event
    payload: bytes
    message_id: Optional[str]


def _ms(timestamp: Timestamp) -> int:
    return timestamp.micros // 1000


class _LiveSessionizer(beam.DoFn):
    """Keyed by user_id, in the global window. Emits SessionEvents, the
    trigger Firings they cause (FIRINGS) and late dead letters."""

    PENDING = BagStateSpec("pending", PickleCoder())
    SESSIONIZER = ReadModifyWriteStateSpec("sessionizer", PickleCoder())
    APPLIED_UNTIL = ReadModifyWriteStateSpec("applied_until", VarIntCoder())
    SEEN = ReadModifyWriteStateSpec("seen", PickleCoder())
    COOLDOWNS = ReadModifyWriteStateSpec("trigger_cooldowns", PickleCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def __init__(self, gap_ms: int, max_disorder_ms: int, dedupe_horizon_ms: int,
                 trigger_rules: Sequence[TriggerRule] = (), clock=time.time):
        self._gap_ms = gap_ms
        self._trigger_rules = tuple(trigger_rules)
        # An event at t is applied once the watermark is strictly past
        # t + disorder, so one arriving exactly `disorder` behind a watermark
        # that has just fired a timer is still in time.
        self._hold_ms = max_disorder_ms + 1
        # Event ids are remembered this long behind the applied frontier: a
        # redelivery older than that is indistinguishable from a late event.
        self._dedupe_horizon_ms = dedupe_horizon_ms
        self._clock = clock

    def setup(self):
        self._counters = SessionCounters()
        self._inputs = InputCounters()
        self._triggers = TriggerFiring(self._trigger_rules) if self._trigger_rules else None

    def process(self, keyed_delivery,
                pending=beam.DoFn.StateParam(PENDING),
                sessionizer_state=beam.DoFn.StateParam(SESSIONIZER),
                applied_until=beam.DoFn.StateParam(APPLIED_UNTIL),
                seen_state=beam.DoFn.StateParam(SEEN),
                cooldowns=beam.DoFn.StateParam(COOLDOWNS),
                flush=beam.DoFn.TimerParam(FLUSH)):
        user_id, delivery = keyed_delivery
        event = delivery.event
        seen = seen_state.read() or {}
        if event.event_id in seen:
            self._counters.duplicates.inc()
            return
        seen[event.event_id] = event.occurred_at
        seen_state.write(seen)

        frontier = applied_until.read()
        if frontier is not None and event.occurred_at <= frontier:
            sessionizer = sessionizer_state.read() or Sessionizer(user_id, self._gap_ms)
            placed = sessionizer.apply_late(event)
            if placed is None:
                self._inputs.dead_letter(LATE_EVENT)
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
                    delivery.payload, LATE_EVENT,
                    f"occurred_at {event.occurred_at} arrived after results up to {frontier} were emitted",
                    message_id=delivery.message_id))
                return
            self._counters.used.inc()
            sessionizer_state.write(sessionizer)
            yield from self._emit(placed, cooldowns)
            return

        self._counters.used.inc()
        pending.add(delivery)
        self._wake_at(flush, event.occurred_at + self._hold_ms)

    @on_timer(FLUSH)
    def release(self, user_id=beam.DoFn.KeyParam, fired_at=beam.DoFn.TimestampParam,
                pending=beam.DoFn.StateParam(PENDING),
                sessionizer_state=beam.DoFn.StateParam(SESSIONIZER),
                applied_until=beam.DoFn.StateParam(APPLIED_UNTIL),
                seen_state=beam.DoFn.StateParam(SEEN),
                cooldowns=beam.DoFn.StateParam(COOLDOWNS),
                flush=beam.DoFn.TimerParam(FLUSH)):
        frontier = _ms(fired_at) - self._hold_ms
        waiting = list(pending.read())
        ready = sorted((d.event for d in waiting if d.event.occurred_at <= frontier), key=fold_key)
        held = [d for d in waiting if d.event.occurred_at > frontier]
        sessionizer = sessionizer_state.read() or Sessionizer(user_id, self._gap_ms)
        results = []
        for event in ready:
            results.extend(sessionizer.apply(event))
        results.extend(sessionizer.advance_to(frontier))
        yield from self._emit(results, cooldowns)

        previous = applied_until.read()
        applied_until.write(frontier if previous is None else max(previous, frontier))
        sessionizer_state.write(sessionizer)
        pending.clear()
        for delivery in held:
            pending.add(delivery)
        seen = seen_state.read() or {}
        horizon = frontier - self._dedupe_horizon_ms
        seen_state.write({eid: t for eid, t in seen.items() if t >= horizon})

        if sessionizer.closes_at is not None:
            self._wake_at(flush, sessionizer.closes_at + self._hold_ms)

    @staticmethod
    def _wake_at(flush, due_ms: int) -> None:
        """One timer per due time (the held events keep theirs): when the
        watermark jumps over many of a user's events, as it does when a
        backlog is read, the runner fires them all in one bundle, in order,
        rather than one per watermark round. Setting a due time twice, or a
        stale session close, costs a release that changes nothing."""
        flush.set(Timestamp(micros=due_ms * 1000), dynamic_timer_tag=str(due_ms))

    def _emit(self, results, cooldowns):
        """Session events, then the triggers they fire: in the same bundle,
        so a trigger leaves with its session event."""
        now_ms = int(self._clock() * 1000)
        emitted = list(self._counters.emitted(results, lambda result: max(0, (now_ms - result.event_ts) // 1000)))
        yield from emitted
        if self._triggers is None or not emitted:
            return
        held = cooldowns.read() or {}
        firings = self._triggers.fire(emitted, held)
        if firings:
            cooldowns.write(held)
        for firing in firings:
            yield beam.pvalue.TaggedOutput(FIRINGS, firing)


class LiveSessions(beam.PTransform):
    """Deliveries -> SessionEvents, plus the trigger Firings under FIRINGS
    and late dead letters under DEAD_LETTERS."""

    def __init__(self, gap_seconds: int, max_disorder_seconds: int, dedupe_horizon_seconds: int = 3600,
                 trigger_rules: Sequence[TriggerRule] = (), clock=time.time):
        super().__init__()
        self._gap_ms = gap_seconds * 1000
        self._disorder_ms = max_disorder_seconds * 1000
        self._dedupe_horizon_ms = max(dedupe_horizon_seconds * 1000, self._gap_ms)
        self._trigger_rules = tuple(trigger_rules)
        self._clock = clock

    def expand(self, deliveries):
        return (
            deliveries
            | "ByUser" >> beam.Map(lambda d: (d.event.user_id, d)).with_output_types(Tuple[str, Delivery])
            | "Sessionize" >> beam.ParDo(_LiveSessionizer(
                self._gap_ms, self._disorder_ms, self._dedupe_horizon_ms, self._trigger_rules,
                self._clock)).with_outputs(DEAD_LETTERS, FIRINGS, main="sessions"))
