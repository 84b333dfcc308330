"""Replay sessions: every user's events grouped once, cut by the shared rules.

The sessions of SPEC §2 are what Beam's `Sessions(gap)` windows would give if
every bet had the window [t, t + gap) and every win or rollback a 1 ms point
window [t, t + 1 ms): bets merge when less than `gap` apart, and a non-bet
joins the session with start <= t < end + gap without stretching it. The
replay computes exactly that, but lets the shared `Sessionizer` do the cutting
after one GroupByKey per user in the global window, instead of leaving the
merge to the runner:
- Flink's batch runner merges session windows by sorting them on their end
  (`SortingFlinkCombineRunner`, apache/beam#14120), which is only right when
  every window has the same length; windows pre-merged per worker do not, and
  sessions came out split on Flink with --parallelism=2.
- The same rules then run unchanged in replay and live (transforms/live.py),
  and duplicates are found across a user's whole input, not within one window.

Shuffling one element per event is what makes naive Beam sessions slow, so
each parsed batch leaves as one element per user: a compressed blob of
primitive tuples (pickling Event namedtuples with Decimals one by one cost
more than all the session logic, and the DirectRunner holds a batch shuffle
in memory).
"""
import pickle
import zlib
from collections import defaultdict
from decimal import Decimal
from typing import Iterable, List, Tuple

import apache_beam as beam

from sessions.events import Event
from sessions.sessionizer import GameSwitch, first_copies, sessionize
from transforms.counters import SessionCounters


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


class _GroupBatchByUser(beam.DoFn):
    """One batch of events -> one (user_id, blob) per user in it."""

    def process(self, batch: List[tuple]) -> Iterable[Tuple[str, bytes]]:
        by_user = defaultdict(list)
        for arrival_event in batch:
            by_user[arrival_event[1].user_id].append(arrival_event)
        for user_id, items in by_user.items():
            yield user_id, _encode(items)


class _CloseSessions(beam.DoFn):
    """All of a user's events -> their sessions' game switches and ends,
    computed by the shared pure rules. Emits (result, gs_event_delay_seconds)
    with the delays a perfect live run would have (SPEC §3.1, §3.2)."""

    def __init__(self, gap_ms: int):
        self._gap_ms = gap_ms

    def setup(self):
        self._counters = SessionCounters()

    def process(self, user_blobs):
        user_id, blobs = user_blobs
        events, duplicates = first_copies(item for blob in blobs for item in _decode(user_id, blob))
        self._counters.used.inc(len(events))
        self._counters.duplicates.inc(duplicates)
        yield from self._counters.emitted(sessionize(user_id, events, self._gap_ms), self._delay)

    def _delay(self, result) -> int:
        return 0 if isinstance(result, GameSwitch) else self._gap_ms // 1000


class ReplaySessions(beam.PTransform):
    """Batches of (arrival, Event) -> (GameSwitch | SessionEnd, delay seconds)."""

    def __init__(self, gap_seconds: int):
        super().__init__()
        self._gap_seconds = gap_seconds

    def expand(self, batches):
        return (
            batches
            | "ByUser" >> beam.ParDo(_GroupBatchByUser())
            | "GroupByUser" >> beam.GroupByKey()
            | "CloseSessions" >> beam.ParDo(_CloseSessions(self._gap_seconds * 1000)))
