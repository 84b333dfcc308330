"""The bundled generator makes the input every feature needs (SPEC §1, §2.1)."""
import json
from collections import Counter
from decimal import Decimal

from sessions.events import parse_event
from sessions.sessionizer import SessionEnd, sessionize
from tools.generate_events import generate


def test_a_generated_day_has_logouts_several_currencies_and_18_place_amounts():
    lines = generate(20_000, seed=3)
    events = [parse_event(line.encode()) for line in lines if line.startswith('{"event_id"') and _valid(line)]
    events = [e for e in events if e is not None]
    kinds = Counter(e.event_type for e in events)
    assert kinds["logout"] > 20
    currencies = Counter(e.currency for e in events if e.is_bet)
    assert {"EUR", "BRL", "USD", "ETH"} <= set(currencies) and currencies[None] > 0
    assert any(e.stake is not None and e.stake.as_tuple().exponent == -18 for e in events)

    by_user = {}
    for e in {(e.user_id, e.event_id): e for e in events}.values():
        by_user.setdefault(e.user_id, []).append(e)
    reasons = Counter(r.end_reason for user, mine in by_user.items()
                      for r in sessionize(user, mine, 300_000) if isinstance(r, SessionEnd))
    assert reasons["logout"] > 20 and reasons["inactivity"] > reasons["logout"]


def _valid(line: str) -> bool:
    try:
        parse_event(line.encode())
        return True
    except ValueError:
        return False


def test_the_same_seed_gives_the_same_day():
    assert generate(2000, seed=8) == generate(2000, seed=8)
    assert json.loads(generate(50, seed=8)[0], parse_float=Decimal)["event_id"].startswith("e")
