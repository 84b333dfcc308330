"""Replay sessions: Beam session windows over bet-only timestamps.

Every bet gets the window [t, t + gap) and every other event a point window
[t, t + 1 ms), so Beam's standard `Sessions` merging (kept as is: Flink and
Dataflow run it natively) builds exactly the sessions of SPEC §2: two bets
merge iff they are less than `gap` apart, and a win or rollback joins the
session with start <= t < end + gap without stretching it. A point window
covered by no session comes out alone: an unattributed event. (Event times are
whole milliseconds, and so is Beam's window coder: a 1 us point window would
be encoded as an empty window and never merge.)

Shuffling one element per event is what makes naive Beam sessions slow, so
each batch of parsed events is pre-merged first: a user's bets that already
form a run are sent as one fragment with the run's window, carrying the events
it covers. Beam merges fragments exactly as it would merge their events.
"""
import pickle
import zlib
from collections import defaultdict
from decimal import Decimal
from typing import Iterable, List, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from sessions.events import Event
from sessions.sessionizer import GameSwitch, Sessionizer, Unattributed, first_copies
from transforms.dead_letters import NAMESPACE

# A fragment crosses the shuffle as one compressed blob of primitive tuples:
# pickling Event namedtuples with Decimals one by one cost more than all the
# session logic, and the DirectRunner holds a batch shuffle in memory.
Fragment = Tuple[str, bytes]


def _encode(items) -> bytes:
    return zlib.compress(pickle.dumps([
        (arrival, e.event_id, e.event_type, e.occurred_at, e.game_id, e.game_name,
         None if e.stake is None else str(e.stake), None if e.payout is None else str(e.payout),
         e.platform, e.client_version, e.currency)
        for arrival, e in items], protocol=pickle.HIGHEST_PROTOCOL), 1)


def _decode(user_id: str, blob: bytes):
    return [
        (arrival, Event(user_id, event_id, event_type, occurred_at, game_id, game_name,
                        None if stake is None else Decimal(stake), None if payout is None else Decimal(payout),
                        platform, client_version, currency))
        for arrival, event_id, event_type, occurred_at, game_id, game_name, stake, payout, platform,
        client_version, currency in pickle.loads(zlib.decompress(blob))]


def _micros(ms: int) -> Timestamp:
    return Timestamp(micros=ms * 1000)


class _PreMergeFragments(beam.DoFn):
    """One batch of events -> one element per fragment of a user's session,
    in the window Beam would give its events once merged."""

    def __init__(self, gap_ms: int):
        self._gap_ms = gap_ms

    def process(self, batch: List[tuple]) -> Iterable[WindowedValue]:
        by_user = defaultdict(list)
        for arrival_event in batch:
            by_user[arrival_event[1].user_id].append(arrival_event)
        gap = self._gap_ms
        for user_id, events in by_user.items():
            events.sort(key=_fold_order)
            fragment, first_bet, last_bet = None, None, None
            for item in events:
                event = item[1]
                t = event.occurred_at
                if event.is_bet:
                    if fragment is not None and t - last_bet >= gap:
                        yield _windowed(user_id, fragment, first_bet, last_bet + gap)
                        fragment = None
                    if fragment is None:
                        fragment, first_bet = [], t
                    fragment.append(item)
                    last_bet = t
                elif fragment is not None and t < last_bet + gap:
                    fragment.append(item)
                else:
                    yield _windowed(user_id, [item], t, t, point=True)
            if fragment is not None:
                yield _windowed(user_id, fragment, first_bet, last_bet + gap)


def _fold_order(arrival_event):
    return arrival_event[1].fold_order


def _windowed(user_id, items, start_ms, end_ms, point=False) -> WindowedValue:
    start = _micros(start_ms)
    end = _micros(start_ms + 1 if point else end_ms)
    return WindowedValue((user_id, _encode(items)), start, (window.IntervalWindow(start, end),))


class _CloseSessions(beam.DoFn):
    """A merged session window -> its game switches and its end, computed by
    the shared pure rules. Emits (result, gs_event_delay_seconds) with the
    delays a perfect live run would have (SPEC §3.1, §3.2)."""

    def __init__(self, gap_ms: int):
        self._gap_ms = gap_ms

    def setup(self):
        self._used = Metrics.counter(NAMESPACE, "events_used")
        self._duplicates = Metrics.counter(NAMESPACE, "duplicate_event")
        self._unattributed = Metrics.counter(NAMESPACE, "unattributed_event")
        self._sessions = Metrics.counter(NAMESPACE, "sessions_ended")
        self._switches = Metrics.counter(NAMESPACE, "game_switches")

    def process(self, user_fragments):
        user_id, fragments = user_fragments
        events, duplicates = first_copies(item for blob in fragments for item in _decode(user_id, blob))
        self._used.inc(len(events))
        self._duplicates.inc(duplicates)
        events.sort(key=Event.fold_order.fget)
        sessionizer = Sessionizer(user_id, self._gap_ms)
        for result in sessionizer.apply_all(events) + sessionizer.finish():
            if isinstance(result, Unattributed):
                self._unattributed.inc()
            elif isinstance(result, GameSwitch):
                self._switches.inc()
                yield result, 0
            else:
                self._sessions.inc()
                yield result, self._gap_ms // 1000


class ReplaySessions(beam.PTransform):
    """Batches of (arrival, Event) -> (GameSwitch | SessionEnd, delay seconds)."""

    def __init__(self, gap_seconds: int):
        super().__init__()
        self._gap_seconds = gap_seconds

    def expand(self, batches):
        gap_ms = self._gap_seconds * 1000
        return (
            batches
            | "SessionWindows" >> beam.WindowInto(window.Sessions(self._gap_seconds))
            | "PreMerge" >> beam.ParDo(_PreMergeFragments(gap_ms)).with_output_types(Fragment)
            | "MergeSessions" >> beam.GroupByKey()
            | "CloseSessions" >> beam.ParDo(_CloseSessions(gap_ms))
            | "BackToGlobalWindow" >> beam.WindowInto(window.GlobalWindows()))
