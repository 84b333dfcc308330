"""The session rules of SPEC §2, as one incremental fold per user.

Both the replay path (after Beam's session windows have grouped a session's
events) and the live path (a stateful DoFn releasing events in event-time
order) feed a `Sessionizer` and get the same `GameSwitch` and `SessionEnd`
results, so the two modes cannot drift apart.
"""
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, List, NamedTuple, Optional, Tuple, Union

from sessions.events import BET_ROLLBACK, BET_TYPES, EXACT, LOGOUT, WIN_ROLLBACK, Event, fold_key
from sessions.records import Metrics, changed_record, ended_record, gameplay_session_id

INACTIVITY, LOGOUT_END = "inactivity", "logout"  # gs_end_reason (SPEC §3.1)

_ZERO = Decimal(0)


class _Tally:
    """Running metrics of a session or of one of its game segments."""
    __slots__ = ("bets_count", "total_bet", "max_bet", "wins_count", "total_win", "max_win",
                 "bets_rollback_count", "wins_rollback_count", "total_rollback_bet",
                 "total_rollback_win", "events")

    def __init__(self):
        self.bets_count = self.wins_count = self.events = 0
        self.bets_rollback_count = self.wins_rollback_count = 0
        self.total_bet = self.max_bet = self.total_win = self.max_win = _ZERO
        self.total_rollback_bet = self.total_rollback_win = _ZERO

    def add(self, event: Event, is_bet: bool) -> None:
        """`is_bet`: event.is_bet, computed once by the caller (a property
        read five times per event was ~10% of sessionizing)."""
        self.events += 1
        event_type = event.event_type
        if event_type == BET_ROLLBACK:
            self.bets_rollback_count += 1
            self.total_rollback_bet = EXACT.add(self.total_rollback_bet, event.stake)
            return
        if event_type == WIN_ROLLBACK:
            self.wins_rollback_count += 1
            self.total_rollback_win = EXACT.add(self.total_rollback_win, event.payout)
            return
        if is_bet:
            stake = event.stake
            self.bets_count += 1
            self.total_bet = EXACT.add(self.total_bet, stake)
            if stake > self.max_bet:
                self.max_bet = stake
        payout = event.payout
        if payout is not None and payout > 0:
            self.wins_count += 1
            self.total_win = EXACT.add(self.total_win, payout)
            if payout > self.max_win:
                self.max_win = payout

    def merge(self, other: "_Tally") -> None:
        """Adds another tally's events: exact sums, so merging a session's
        segments gives what one tally of all their events would."""
        self.events += other.events
        self.bets_count += other.bets_count
        self.wins_count += other.wins_count
        self.bets_rollback_count += other.bets_rollback_count
        self.wins_rollback_count += other.wins_rollback_count
        self.total_bet = EXACT.add(self.total_bet, other.total_bet)
        self.total_win = EXACT.add(self.total_win, other.total_win)
        self.total_rollback_bet = EXACT.add(self.total_rollback_bet, other.total_rollback_bet)
        self.total_rollback_win = EXACT.add(self.total_rollback_win, other.total_rollback_win)
        if other.max_bet > self.max_bet:
            self.max_bet = other.max_bet
        if other.max_win > self.max_win:
            self.max_win = other.max_win

    def metrics(self) -> Metrics:
        return Metrics(
            bets_count=self.bets_count, total_bet=self.total_bet, max_bet=self.max_bet,
            wins_count=self.wins_count, total_win=self.total_win, max_win=self.max_win,
            bets_rollback_count=self.bets_rollback_count,
            wins_rollback_count=self.wins_rollback_count,
            total_rollback_bet=self.total_rollback_bet, total_rollback_win=self.total_rollback_win,
            events=self.events)


@dataclass(frozen=True)
class GameSwitch:
    """A game segment that ended because the player bet on another game."""
    user_id: str
    session_start: int
    segment_start: int
    switched_at: int  # the first bet on the new game: the segment's end
    game_id: str
    game_name: str
    new_game_id: str
    metrics: Metrics
    switches_count: int  # the session's switches so far, this one included
    currency: Optional[str]  # of the session's first bet that has one, so far

    event_type = "gs_game_session_changed"

    @property
    def gameplay_session_id(self) -> str:
        return gameplay_session_id(self.session_start, self.user_id)

    @property
    def event_ts(self) -> int:
        return self.switched_at

    @property
    def partition_ms(self) -> int:
        return self.session_start

    def record(self, delay_seconds: int) -> dict:
        return changed_record(self, delay_seconds)


@dataclass(frozen=True)
class SessionEnd:
    """A session closed by `gap` of bet inactivity or by a logout."""
    user_id: str
    start: int
    end: int  # the last bet
    game_ids: Tuple[str, ...]
    metrics: Metrics
    platform: Optional[str]
    client_version: Optional[str]
    end_reason: str  # INACTIVITY or LOGOUT_END
    closed_at: int  # event time the session was over: end + gap, or the logout
    switches_count: int
    last_game_id: str
    currency: Optional[str]

    event_type = "gs_game_session_ended"

    @property
    def gameplay_session_id(self) -> str:
        return gameplay_session_id(self.start, self.user_id)

    @property
    def event_ts(self) -> int:
        return self.end

    @property
    def partition_ms(self) -> int:
        return self.start

    @property
    def replay_delay_seconds(self) -> int:
        """The delay a perfect live run would have: the gap, or how long
        after the last bet the player logged out (SPEC §2.1, §3.1)."""
        return (self.closed_at - self.end) // 1000

    def record(self, delay_seconds: int) -> dict:
        return ended_record(self, delay_seconds)


@dataclass(frozen=True)
class Unattributed:
    """A win or rollback that falls in no session of its user (SPEC §2)."""
    event: Event


@dataclass(frozen=True)
class LogoutOutsideSession:
    """A logout while the user had no open session: changes nothing (SPEC §2.1)."""
    event: Event


Result = Union[GameSwitch, SessionEnd, Unattributed, LogoutOutsideSession]


class SessionEvent(NamedTuple):
    """A switch or end as the job emits it: with its delay, and its record
    built once for every sink and trigger."""
    result: Union[GameSwitch, SessionEnd]
    delay_seconds: int
    record: dict

    @classmethod
    def of(cls, result: Union[GameSwitch, SessionEnd], delay_seconds: int) -> "SessionEvent":
        return cls(result, delay_seconds, result.record(delay_seconds))

    @property
    def table(self) -> str:
        return self.result.event_type

    @property
    def partition_ms(self) -> int:
        return self.result.partition_ms


class _Segment:
    __slots__ = ("game_id", "game_name", "start", "tally")

    def __init__(self, bet: Event):
        self.game_id = bet.game_id
        self.game_name = bet.game_name or bet.game_id
        self.start = bet.occurred_at
        self.tally = _Tally()


class _OpenSession:
    """A session's running state. Each event is tallied once, in its game
    segment; a segment's tally joins the session's (`ended_segments`) when
    the player switches, and the session's metrics are both together."""
    __slots__ = ("start", "last_bet", "game_ids", "ended_segments", "segment", "platform", "client_version",
                 "switches", "currency")

    def __init__(self, bet: Event):
        self.start = self.last_bet = bet.occurred_at
        self.game_ids = {}  # insertion-ordered set: order of first bet
        self.ended_segments = _Tally()
        self.segment = _Segment(bet)
        self.platform = self.client_version = self.currency = None
        self.switches = 0

    def add(self, event: Event, is_bet: bool) -> None:
        self.segment.tally.add(event, is_bet)
        if self.platform is None:
            self.platform = event.platform
        if self.client_version is None:
            self.client_version = event.client_version
        if is_bet:
            self.game_ids.setdefault(event.game_id)
            if self.currency is None:
                self.currency = event.currency
            if event.occurred_at > self.last_bet:
                self.last_bet = event.occurred_at

    def switch_to(self, bet: Event) -> None:
        self.ended_segments.merge(self.segment.tally)
        self.segment = _Segment(bet)

    def metrics(self) -> Metrics:
        tally = _Tally()
        tally.merge(self.ended_segments)
        tally.merge(self.segment.tally)
        return tally.metrics()


class Sessionizer:
    """One user's sessions, fed with events in `Event.fold_order`.

    `apply` returns what each event completes; `advance_to(t)` closes the open
    session once every event before `t` has been applied and `t` is `gap` past
    its last bet; `finish` closes it at the end of the input.
    """

    def __init__(self, user_id: str, gap_ms: int):
        if gap_ms <= 0:
            raise ValueError(f"the session gap must be positive, got {gap_ms} ms")
        self.user_id = user_id
        self.gap_ms = gap_ms
        self._open: Optional[_OpenSession] = None
        # Events from this time on fall in no closed session: the last
        # closed session's end + gap, or just past its logout.
        self._closed_until: Optional[int] = None

    def apply(self, event: Event) -> List[Result]:
        results: List[Result] = []
        t = event.occurred_at
        session = self._open
        if session is not None and t >= session.last_bet + self.gap_ms:
            results.append(self._close())
            session = None
        event_type = event.event_type
        if event_type == LOGOUT:
            results.append(LogoutOutsideSession(event) if session is None else self._close(logout_at=t))
        elif event.stake is not None and event_type in BET_TYPES:  # event.is_bet, without a property call
            if session is None:
                session = self._open = _OpenSession(event)
            elif event.game_id != session.segment.game_id:
                results.append(self._switch(event))
            session.add(event, True)
        elif session is not None:
            session.add(event, False)
        else:
            results.append(Unattributed(event))
        return results

    def apply_all(self, events: Iterable[Event]) -> List[Result]:
        results: List[Result] = []
        for event in events:
            results.extend(self.apply(event))
        return results

    def apply_late(self, event: Event) -> Optional[List[Result]]:
        """Places an event older than what was already applied, if that gives
        exactly what in-order processing would have given; None if results
        covering it were already emitted (a late event)."""
        t = event.occurred_at
        session = self._open
        unattributable = self._closed_until is None or t >= self._closed_until
        if event.event_type == LOGOUT:
            # Placing a logout late would end a session at a point results
            # after it were already emitted for, unless there is none.
            if session is None and unattributable:
                return [LogoutOutsideSession(event)]
            return None
        if session is None or t < session.start:
            if event.is_bet or not unattributable:
                return None
            return [Unattributed(event)]
        segment = session.segment
        if event.is_bet:
            # Only a same-game bet inside the running segment changes nothing
            # already decided (no switch, no re-attribution of later events).
            if t <= segment.start or event.game_id != segment.game_id:
                return None
        elif t < segment.start:
            return None
        session.add(event, event.is_bet)
        return []

    def advance_to(self, frontier_ms: int) -> List[Result]:
        if self._open is not None and frontier_ms >= self._open.last_bet + self.gap_ms:
            return [self._close()]
        return []

    def finish(self) -> List[Result]:
        return [self._close()] if self._open is not None else []

    @property
    def closes_at(self) -> Optional[int]:
        """When the open session ends if no further bet comes: last bet + gap."""
        return None if self._open is None else self._open.last_bet + self.gap_ms

    def _switch(self, bet: Event) -> GameSwitch:
        session = self._open
        segment = session.segment
        session.switches += 1
        if session.currency is None:
            session.currency = bet.currency
        switch = GameSwitch(
            user_id=self.user_id, session_start=session.start, segment_start=segment.start,
            switched_at=bet.occurred_at, game_id=segment.game_id, game_name=segment.game_name,
            new_game_id=bet.game_id, metrics=segment.tally.metrics(), switches_count=session.switches,
            currency=session.currency)
        session.switch_to(bet)
        return switch

    def _close(self, logout_at: Optional[int] = None) -> SessionEnd:
        session = self._open
        self._open = None
        if logout_at is None:
            reason, closed_at = INACTIVITY, session.last_bet + self.gap_ms
            self._closed_until = closed_at
        else:
            # Events at the logout's millisecond were folded before it.
            reason, closed_at = LOGOUT_END, logout_at
            self._closed_until = logout_at + 1
        return SessionEnd(
            user_id=self.user_id, start=session.start, end=session.last_bet,
            game_ids=tuple(session.game_ids), metrics=session.metrics(),
            platform=session.platform, client_version=session.client_version,
            end_reason=reason, closed_at=closed_at, switches_count=session.switches,
            last_game_id=session.segment.game_id, currency=session.currency)


def sessionize(user_id: str, events: Iterable[Event], gap_ms: int) -> List[Result]:
    """All results for a complete set of one user's (already de-duplicated)
    events, in any order: what a replay computes."""
    sessionizer = Sessionizer(user_id, gap_ms)
    results = sessionizer.apply_all(sorted(events, key=fold_key))
    results.extend(sessionizer.finish())
    return results


def first_copies(events_with_arrival: Iterable[Tuple[object, Event]]) -> Tuple[List[Event], int]:
    """SPEC §1.3: of the events sharing an event_id, keeps the one that
    arrived first (smallest arrival key). Returns (kept, duplicates dropped).
    Callers pass one user's events, so (user_id, event_id) is the identity."""
    first = {}
    seen = 0
    for arrival, event in events_with_arrival:
        seen += 1
        held = first.get(event.event_id)
        if held is None or arrival < held[0]:
            first[event.event_id] = (arrival, event)
    return [event for _, event in first.values()], seen - len(first)
