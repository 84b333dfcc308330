"""parse_event's msgspec path for the common shape against the general path
(json + validate_event): the same Event, or the same dead letter, for every
input. The general path is the reference; the fast one only saves time."""
import json
from unittest import mock

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions import events as ev
from sessions.events import InvalidEvent, parse_event
from tests.test_events import T0, json_texts
from tools.generate_events import generate


def _outcome(raw):
    try:
        return repr(parse_event(raw))
    except InvalidEvent as e:
        return e.reason, e.error


def _general_outcomes(raws):
    with mock.patch.object(ev, "_decode_common", side_effect=msgspec.DecodeError("off")):
        return [_outcome(raw) for raw in raws]


def _assert_paths_agree(raws):
    fast = [_outcome(raw) for raw in raws]
    assert fast == _general_outcomes(raws)
    assert fast == [_outcome(raw) for raw in raws]  # again, with the amount cache warm


def test_every_line_of_a_generated_day_parses_the_same_both_ways():
    lines = [line.encode("utf-8") for line in generate(20_000, seed=5)]
    common_event, fast_events = ev._common_event, []

    def counted(shape):
        event = common_event(shape)
        fast_events.append(event is not None)
        return event
    with mock.patch.object(ev, "_common_event", side_effect=counted):
        _assert_paths_agree(lines)
    # Of the two passes that may take the fast path, it gave the event for most lines.
    assert sum(fast_events) > len(lines)


_AMOUNT_NAMES = ("bet_amount", "bet_bonus_amount", "win_amount", "win_bonus_amount")
_TEXT_NAMES = ("game_name", "platform", "client_version", "currency")
# Per field: values of the common shape, and odd ones.
_GOOD = {
    "event_type": st.sampled_from(sorted(ev.SUPPORTED_EVENT_TYPES)),
    "event_id": st.sampled_from(["e1", "e000000002", "x" * 256]) | st.text("abc-_09", min_size=1, max_size=8),
    "user_id": st.integers() | st.sampled_from(["u1", "u" * 128, "42"]),
    "occurred_at": (st.integers(min_value=ev.MIN_OCCURRED_AT_MS, max_value=ev.MAX_OCCURRED_AT_MS - 1)
                    | st.sampled_from(["2026-01-06T20:23:20Z", "2026-01-06T20:23:20.1234+03:00",
                                       "2026-01-06 20:23:20-00:30", "1999-12-31T23:59:59.999-01:00"])),
    "game_id": st.sampled_from(["G", "GATES_OF_OLYMPUS", "g" * 256]),
    **{k: st.from_regex(ev._PLAIN_AMOUNT, fullmatch=True) | st.integers(min_value=0, max_value=10 ** 20 - 1)
       | st.sampled_from(["0", "0.00", "1.50", "0.10"]) for k in _AMOUNT_NAMES},
    **{k: st.sampled_from(["web", "EUR", "Gates of Olympus", "5.1.7", ""]) for k in _TEXT_NAMES},
}
_ODD = {
    "event_type": st.sampled_from(["login", "logout", "BET", "", "b\u0065t"]) | st.integers(),
    "event_id": st.sampled_from(["", "x" * 257, "\u00e9", "\ud800"]) | st.integers() | st.floats(),
    "user_id": (st.sampled_from([10 ** 127 - 1, 10 ** 127, -(10 ** 127) + 1, -(10 ** 127), 10 ** 128, True,
                                 "", "u" * 129, "\u00fc", 1.0]) | st.text(max_size=4)),
    "occurred_at": (st.sampled_from([ev.MIN_OCCURRED_AT_MS - 1, ev.MAX_OCCURRED_AT_MS, float(T0), T0 + 0.5, str(T0),
                                     "2026-02-30T00:00:00Z", "2026-01-06T20:23:20", "0001-01-01T00:00:00+01:00",
                                     "2026-01-06T24:00:00Z", "2026-01-06T20:23:60Z", "2026-01-06T20:23:20+24:00",
                                     " 2026-01-06T20:23:20Z", True, -1, 10 ** 30])),
    "game_id": st.sampled_from(["", "g" * 257, "\u00e9", 5, True, 1.5]),
    **{k: (st.sampled_from(["-0", " 1.5", "1e2", "-1", "abc", "NaN", "0.1234567891", "0.1234567890",
                            "100000000000000000000", "1.", ".5", "", 10 ** 20, -1, True, 0.1, 1e300, 1.5])
           | st.floats(allow_nan=False)) for k in _AMOUNT_NAMES},
    **{k: st.sampled_from(["\u00e9", "\ud83c\udfb0", "\ud800", 5, 1.5, True]) | st.text(max_size=3)
       for k in _TEXT_NAMES},
}


@st.composite
def common_shaped(draw):
    """Objects of the common shape, some of their fields absent, null or odd."""
    parts = []
    for field in _GOOD:
        mode = draw(st.integers(min_value=0, max_value=9))
        if mode == 0 or (field in _AMOUNT_NAMES + _TEXT_NAMES and mode < 4):
            continue
        value = None if mode == 1 else draw(_ODD[field] if mode == 2 else _GOOD[field])
        parts.append((field, value))
    if draw(st.booleans()):
        parts.append((draw(st.sampled_from(["extra", "x", "Event_Type"])), draw(st.sampled_from([1, "a", None, 1.5, {}]))))
    if parts and draw(st.integers(min_value=0, max_value=5)) == 0:  # a duplicate key: the last one wins
        field = draw(st.sampled_from([f for f, _ in parts]))
        parts.append((field, draw(_GOOD[field] | _ODD[field] if field in _GOOD else st.just(1))))
    draw(st.randoms()).shuffle(parts)
    ensure_ascii = draw(st.booleans())
    # Strings above may hold JSON escapes (\\u00e9) to be written as they are.
    text = "{" + ",".join(f"{json.dumps(k)}:" + (f'"{v}"' if isinstance(v, str) and "\\u" in v
                                                 else json.dumps(v, ensure_ascii=ensure_ascii))
                          for k, v in parts) + "}"
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=1500, deadline=None)
@given(common_shaped())
def test_common_shaped_objects_parse_the_same_both_ways_and_route_to_their_user(raw):
    _assert_paths_agree([raw])
    _assert_routed_to_its_user([raw])


@settings(max_examples=1000, deadline=None)
@given(json_texts())
def test_arbitrary_texts_parse_the_same_both_ways_and_route_to_their_user(text):
    _assert_paths_agree([text.encode("utf-8", "surrogatepass")])
    _assert_routed_to_its_user([text.encode("utf-8", "surrogatepass")])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_the_same_both_ways(raw):
    _assert_paths_agree([b'{"event_type":"bet","event_id":"e1",' + raw, raw])


def test_edge_cases_parse_the_same_both_ways():
    head = '{"event_type":"bet","event_id":"e1","occurred_at":%d,"game_id":"G","bet_amount":"1"' % T0
    _assert_paths_agree([(head + tail + "}").encode("utf-8", "surrogatepass") for tail in [
        ',"user_id":' + "1" * 5000,  # past int's 4300-digit str limit
        ',"user_id":' + "9" * 127, ',"user_id":-' + "9" * 127, ',"user_id":' + "9" * 128,
        ',"user_id":"u","x":"\xff"', ',"user_id":"u","x":"\\ud800"', ',"user_id":"u","x":1e400',
        ',"user_id":"u","x":NaN', ',"user_id":"u","user_id":"v"', ',"user_id":"u","user_id":null',
        ',"user_id":"u"} ', ',"user_id":"u","x":"a\x01"', ',"\\u0075ser_id":"u"', ',"user_id":"\\u0075"',
    ]])


# user_id_of routes a replayed line to its user's bucket before it is parsed:
# whenever the line is an Event, it must name that Event's user.

def _assert_routed_to_its_user(raws):
    for raw in raws:
        for strict in (False, True):
            try:
                event = parse_event(raw, strict)
            except InvalidEvent:
                continue
            if event is not None:
                assert ev.user_id_of(raw, strict) == event.user_id, raw


def test_every_event_of_a_generated_day_and_the_edge_cases_are_routed_to_their_user():
    head = '{"event_type":"bet","event_id":"e1","occurred_at":%d,"game_id":"G","bet_amount":"1"' % T0
    _assert_routed_to_its_user([line.encode("utf-8") for line in generate(20_000, seed=5)] + [
        (head + tail + "}").encode("utf-8", "surrogatepass") for tail in [
            ',"user_id":' + "1" * 5000, ',"user_id":' + "9" * 127, ',"user_id":-' + "9" * 127,
            ',"user_id":' + "9" * 128, ',"user_id":"u","user_id":"v"', ',"user_id":"u","user_id":7',
            ',"user_id":"u","x":"\\"user_id\\""', ',"\\u0075ser_id":"v","user_id":"u"', ',"user_id":"\\u0075"',
            ',"user_id":"u","x":{"user_id":"v"}', ',"x":{"user_id":"v"},"user_id":"u"', ',"user_id":"u" ',
            ',"user_id":-0', ',"user_id":"\u00fc"']])


def test_only_the_user_id_of_a_common_line_is_decoded():
    line = ('{"event_type":"bet","event_id":"e1","user_id":42,"occurred_at":%d,"game_id":"G","bet_amount":"1"}'
            % T0).encode()
    with mock.patch.object(ev, "parse_event", side_effect=AssertionError("parsed")):
        assert ev.user_id_of(line) == "42"
