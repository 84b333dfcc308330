"""Coverage-guided fuzzing of the event parser and validator with atheris.

Any exception other than InvalidEvent is a crash, and every rejection must
name a known reason. Run directly (libFuzzer flags apply), e.g.

    python tests/fuzz/fuzz_events.py -runs=100000 -max_len=4096
"""
import json
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
    from sessions.events import DEAD_LETTER_REASONS, InvalidEvent, parse_event, validate_event

SEEDS = [
    b'{"event_id":"e1","user_id":7,"event_type":"bet","occurred_at":1767731000000,"game_id":"G","bet_amount":"1.5"}',
    b'{"event_id":"e2","user_id":"u","event_type":"bet_win","occurred_at":"2026-01-06T20:23:20.5+03:00",'
    b'"game_id":"G","bet_amount":0,"bet_bonus_amount":1,"win_amount":2.25}',
    b'{"event_id":"e3","user_id":"u","event_type":"win_rollback","occurred_at":1767731000000,"win_amount":"1e3"}',
]


def check(data: bytes) -> None:
    for strict in (False, True):
        try:
            event = parse_event(data, strict)
        except InvalidEvent as e:
            assert e.reason in DEAD_LETTER_REASONS and e.error, (e.reason, e.error)
            continue
        if event is not None:
            # A valid event must survive what the job does with it downstream.
            json.dumps([event.user_id, event.event_id, event.game_id, event.game_name]).encode("utf-8")
            for amount in (event.stake, event.payout):
                assert amount is None or (amount.is_finite() and amount >= 0)


def check_object(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    obj = {}
    for field in ("event_id", "user_id", "event_type", "occurred_at", "game_id", "bet_amount",
                  "bet_bonus_amount", "win_amount", "win_bonus_amount", "game_name", "platform"):
        kind = fdp.ConsumeIntInRange(0, 6)
        if kind == 1:
            obj[field] = fdp.ConsumeUnicode(12)
        elif kind == 2:
            obj[field] = fdp.ConsumeInt(8)
        elif kind == 3:
            obj[field] = fdp.ConsumeFloat()
        elif kind == 4:
            obj[field] = fdp.PickValueInList(["bet", "win", "bet_win", "bet_rollback", "win_rollback", "login"])
        elif kind == 5:
            obj[field] = fdp.PickValueInList([True, None, [], {}, "2026-01-06T20:23:20Z", "1.5", 1767731000000])
    try:
        validate_event(obj)
    except InvalidEvent as e:
        assert e.reason in DEAD_LETTER_REASONS


def test_one_input(data: bytes) -> None:
    check(data)
    check_object(data)


if __name__ == "__main__":
    corpus = os.environ.get("FUZZ_CORPUS") or tempfile.mkdtemp(prefix="fuzz-events-")
    os.makedirs(corpus, exist_ok=True)
    for n, seed in enumerate(SEEDS):
        with open(os.path.join(corpus, f"seed-{n}"), "wb") as f:
            f.write(seed)
    atheris.Setup(sys.argv + [corpus], test_one_input)
    atheris.Fuzz()
