"""The job's Beam counters (namespace `game_sessions`): the books every run
prints and operators alert on (README, Operations)."""
from typing import Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple

from apache_beam.metrics import Metrics

from sessions.events import DEAD_LETTER_REASONS
from sessions.sessionizer import GameSwitch, LogoutOutsideSession, Result, SessionEvent, Unattributed

NAMESPACE = "game_sessions"


def _counter(name: str):
    return Metrics.counter(NAMESPACE, name)


class InputCounters:
    """What came in: every event read, the ignored types, one counter per
    dead-letter reason (SPEC §1.1)."""

    def __init__(self):
        self.read = _counter("events_read")
        self.ignored = _counter("ignored_event_type")
        self._dead = {r: _counter(f"dead_letter_{r}") for r in DEAD_LETTER_REASONS}

    def dead_letter(self, reason: str, n: int = 1) -> None:
        self._dead[reason].inc(n)


class SessionCounters:
    """What the rules made of the events used."""

    def __init__(self):
        self.used = _counter("events_used")
        self.duplicates = _counter("duplicate_event")
        self._unattributed = _counter("unattributed_event")
        self._stray_logouts = _counter("logout_outside_session")
        self._sessions = _counter("sessions_ended")
        self._switches = _counter("game_switches")

    def emitted(self, results: Iterable[Result],
                delay_seconds: Callable[[Result], int]) -> Iterator[SessionEvent]:
        """Counts results; yields the ones to emit, with their delay."""
        for result in results:
            if isinstance(result, Unattributed):
                self._unattributed.inc()
                continue
            if isinstance(result, LogoutOutsideSession):
                self._stray_logouts.inc()
                continue
            (self._switches if isinstance(result, GameSwitch) else self._sessions).inc()
            yield SessionEvent.of(result, delay_seconds(result))


def trigger_counters(names: Sequence[str]) -> Tuple[Dict[str, object], Dict[Optional[str], object]]:
    """(fired per trigger, failed evaluations per trigger and in all under
    None): `trigger_fired_<name>`, `trigger_error_<name>`, `trigger_error`."""
    fired = {name: _counter(f"trigger_fired_{name}") for name in names}
    failed = {name: _counter(f"trigger_error_{name}") for name in names}
    failed[None] = _counter("trigger_error")
    return fired, failed
