"""SPEC §1: parsing and validation of input events, without Beam."""
import json
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions import events as ev
from sessions.events import InvalidEvent, parse_event, rfc3339_to_ms, validate_event

T0 = 1767731000000  # 2026-01-06T20:23:20Z


def bet(**overrides):
    event = {"event_id": "e1", "user_id": "u1", "event_type": "bet", "occurred_at": T0,
             "game_id": "G", "bet_amount": "1.5"}
    event.update(overrides)
    return event


def parse(obj, **kw):
    return parse_event(json.dumps(obj).encode(), **kw)


def reason_of(raw, **kw):
    with pytest.raises(InvalidEvent) as e:
        parse_event(raw if isinstance(raw, bytes) else json.dumps(raw).encode(), **kw)
    return e.value.reason


def test_a_bet_is_parsed_with_its_stake():
    event = parse(bet(bet_bonus_amount=0.5, game_name="Gates", platform="web", currency="EUR"))
    assert event.user_id == "u1" and event.occurred_at == T0
    assert event.stake == Decimal("2.0") and event.payout is None
    assert event.is_bet and event.game_name == "Gates" and event.platform == "web"


def test_integer_user_id_is_normalised_to_a_string():
    assert parse(bet(user_id=265428677)).user_id == "265428677"


def test_float_amounts_are_exact_decimals():
    a = parse(bet(bet_amount=0.1)).stake
    b = parse(bet(bet_amount=0.2)).stake
    assert a + b == Decimal("0.3")


@pytest.mark.parametrize("text, expected", [
    ("2026-01-06T20:23:20Z", T0),
    ("2026-01-06T20:23:20.123Z", T0 + 123),
    ("2026-01-06T23:23:20+03:00", T0),
    ("2026-01-06T15:23:20.5-05:00", T0 + 500),
    ("2026-01-06T20:23:20.123999Z", T0 + 123),  # sub-ms truncated
    ("2026-01-06 20:23:20z", T0),
])
def test_rfc3339_with_offset(text, expected):
    assert parse(bet(occurred_at=text)).occurred_at == expected


@pytest.mark.parametrize("value", [
    "2026-01-06T20:23:20",  # naive: no offset
    "2026-01-06", "yesterday", "2026-02-30T00:00:00Z", "2026-01-06T25:00:00Z",
    True, [T0], {"ms": T0}, 1.5e12 + 0.5, float("nan"),
    946684799999, 4102444800000,  # just outside 2000-01-01..2100-01-01
])
def test_bad_timestamps_are_invalid_fields(value):
    assert reason_of(bet(occurred_at=value)) == ev.INVALID_FIELD


def test_naive_timestamp_error_says_what_to_do():
    with pytest.raises(InvalidEvent, match="no UTC offset"):
        parse(bet(occurred_at="2026-01-06T20:23:20"))


def test_timestamp_range_bounds_are_inclusive_exclusive():
    assert parse(bet(occurred_at=946684800000)).occurred_at == 946684800000
    assert parse(bet(occurred_at="2099-12-31T23:59:59.999Z")).occurred_at == 4102444799999


@pytest.mark.parametrize("amount", [-1, "-0.01", "NaN", "Infinity", "abc", True, [1], "1e20",
                                    "0.0000000000000000001", 1e-19, 10 ** 20, "100000000000000000000"])
def test_bad_amounts_are_invalid_fields(amount):
    assert reason_of(bet(bet_amount=amount)) == ev.INVALID_FIELD


def test_json_nan_literal_is_rejected_as_an_amount():
    raw = json.dumps(bet()).replace('"1.5"', "NaN").encode()
    assert reason_of(raw) == ev.INVALID_FIELD


@pytest.mark.parametrize("field", ["event_id", "user_id", "event_type", "occurred_at", "game_id", "bet_amount"])
def test_missing_required_fields(field):
    event = bet()
    del event[field]
    assert reason_of(event) == ev.MISSING_FIELD


def test_null_counts_as_missing():
    assert reason_of(bet(user_id=None)) == ev.MISSING_FIELD


@pytest.mark.parametrize("overrides", [
    {"user_id": ""}, {"user_id": "x" * 129}, {"event_id": "x" * 257}, {"user_id": True},
    {"game_id": {"id": 1}}, {"event_type": 7}, {"game_name": ["a"]},
])
def test_invalid_identifiers(overrides):
    assert reason_of(bet(**overrides)) == ev.INVALID_FIELD


def test_win_needs_win_amount_and_game():
    assert reason_of({"event_id": "w", "user_id": "u", "event_type": "win", "occurred_at": T0,
                      "game_id": "G", "win_bonus_amount": 1}) == ev.MISSING_FIELD
    assert reason_of({"event_id": "w", "user_id": "u", "event_type": "win", "occurred_at": T0,
                      "win_amount": 1}) == ev.MISSING_FIELD


def test_bet_win_forms():
    base = {"event_id": "bw", "user_id": "u", "event_type": "bet_win", "occurred_at": T0, "game_id": "G"}
    win_only = parse({**base, "win_amount": 5})
    assert not win_only.is_bet and win_only.payout == 5
    free_spin = parse({**base, "bet_amount": 0, "win_amount": 0})
    assert free_spin.is_bet and free_spin.stake == 0
    bonus_only = parse({**base, "bet_bonus_amount": "2"})
    assert bonus_only.is_bet and bonus_only.stake == 2 and bonus_only.payout is None
    assert reason_of(base) == ev.MISSING_FIELD


def test_rollbacks_carry_the_rolled_back_amount_and_need_no_game():
    rb = parse({"event_id": "r", "user_id": "u", "event_type": "bet_rollback", "occurred_at": T0,
                "bet_amount": "1", "bet_bonus_amount": "0.5"})
    assert rb.stake == Decimal("1.5") and not rb.is_bet and rb.game_id is None
    wr = parse({"event_id": "r", "user_id": "u", "event_type": "win_rollback", "occurred_at": T0,
                "win_amount": 3})
    assert wr.payout == 3
    assert reason_of({"event_id": "r", "user_id": "u", "event_type": "win_rollback",
                      "occurred_at": T0}) == ev.MISSING_FIELD


def test_unsupported_types_are_ignored_or_dead_lettered_when_strict():
    login = {"event_id": "l", "user_id": "u", "event_type": "login", "occurred_at": T0}
    assert parse(login) is None
    assert reason_of(login, strict_event_types=True) == ev.UNSUPPORTED_EVENT_TYPE
    # An ignored type is not checked further: a login needs no game or amount.
    assert parse({"event_type": "deposit"}) is None


@pytest.mark.parametrize("raw, reason", [
    (b'{"event_id": "e1", "user_id": ', ev.INVALID_JSON),
    (b"\xff\xfe{}", ev.INVALID_JSON),
    (b'{"a": "\xc3\x28"}', ev.INVALID_JSON),
    (b"[1, 2]", ev.NOT_AN_OBJECT),
    (b'"bet"', ev.NOT_AN_OBJECT),
    (b"null", ev.NOT_AN_OBJECT),
    (b"[" * 100000 + b"]" * 100000, ev.PAYLOAD_TOO_LARGE),
    (b"[" * 30000 + b"]" * 30000, ev.INVALID_JSON),  # too deep to decode
])
def test_undecodable_payloads(raw, reason):
    assert reason_of(raw) == reason


def test_payload_limit_is_64_kib():
    padding = "x" * (ev.MAX_PAYLOAD_BYTES - len(json.dumps(bet(pad=""))))
    assert parse(bet(pad=padding)) is not None
    assert reason_of(bet(pad=padding + "x")) == ev.PAYLOAD_TOO_LARGE


@pytest.mark.parametrize("field", ["user_id", "event_id", "game_id", "game_name", "platform"])
def test_lone_surrogate_escapes_are_invalid_fields(field):
    raw = json.dumps(bet(**{field: "x"})).replace('"x"', '"u\\ud800"').encode()
    assert reason_of(raw) == ev.INVALID_FIELD
    paired = json.dumps(bet(**{field: "x"})).replace('"x"', '"\\ud83c\\udfb0"').encode()
    assert parse_event(paired) is not None


def test_utf8_bom_is_tolerated():
    assert parse_event(b"\xef\xbb\xbf" + json.dumps(bet()).encode()).event_id == "e1"


def test_validate_accepts_csv_style_strings():
    event = validate_event({"event_id": "1", "user_id": "7", "event_type": "win", "occurred_at": T0,
                            "game_id": "G", "win_amount": "2.50"})
    assert event.payout == Decimal("2.50")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw):
    try:
        parse_event(raw)
    except InvalidEvent as e:
        assert e.reason in ev.DEAD_LETTER_REASONS and e.error


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


event_objects = st.fixed_dictionaries(
    {},
    optional={k: json_values | st.sampled_from(["bet", "win", "bet_win", "bet_rollback", "win_rollback",
                                                "2026-01-06T20:23:20Z", T0, "1.5"])
              for k in ("event_id", "user_id", "event_type", "occurred_at", "game_id", "bet_amount",
                        "bet_bonus_amount", "win_amount", "win_bonus_amount", "game_name", "platform")})


@settings(max_examples=500, deadline=None)
@given(event_objects)
def test_arbitrary_objects_are_events_or_have_a_reason(obj):
    try:
        event = validate_event(obj)
    except InvalidEvent as e:
        assert e.reason in ev.DEAD_LETTER_REASONS and e.error
        return
    if event is not None:
        assert event.event_type in ev.SUPPORTED_EVENT_TYPES
        assert isinstance(event.user_id, str) and isinstance(event.occurred_at, int)
        assert all(a is None or (a.is_finite() and a >= 0) for a in (event.stake, event.payout))


def test_events_have_every_field():
    assert len(parse(bet())) == len(ev.Event._fields)


def test_int_amounts_up_to_the_limit():
    assert parse(bet(bet_amount=10 ** 20 - 1)).stake == Decimal(10 ** 20 - 1)
    assert repr(parse(bet(bet_amount=0)).stake) == "Decimal('0')"


def test_zero_amount_strings_are_plain_zero():
    for _ in range(2):  # parsed, then from the cache
        assert repr(parse(bet(bet_amount="0.00")).stake) == "Decimal('0')"


@settings(max_examples=300, deadline=None)
@given(st.from_regex(ev._PLAIN_AMOUNT, fullmatch=True))
def test_plain_amounts_equal_the_general_path(text):
    # A leading space takes the general path (Decimal of the stripped text).
    general = repr(parse(bet(bet_amount=" " + text)).stake)
    assert repr(parse(bet(bet_amount=text)).stake) == general
    assert repr(parse(bet(bet_amount=text)).stake) == general  # cached


def test_amount_cache_is_bounded():
    amounts = [f"{n}.25" for n in range(ev._PLAIN_AMOUNTS_MAX + 10)]
    assert [parse(bet(bet_amount=a)).stake for a in amounts] == [Decimal(a) for a in amounts]
    assert len(ev._PLAIN_AMOUNTS) <= ev._PLAIN_AMOUNTS_MAX


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
       st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1), st.booleans())
def test_rfc3339_is_exact_datetime_arithmetic(moment, offset_min, zulu):
    offset = timezone(timedelta(minutes=offset_min))
    text = moment.isoformat() + ("Z" if zulu else moment.replace(tzinfo=offset).isoformat()[-6:])
    aware = moment.replace(tzinfo=timezone.utc if zulu else offset)
    expected = (aware - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    assert ev.rfc3339_to_ms(text) == expected
    assert ev.rfc3339_to_ms(text) == expected  # its date cached (years 1900-2200)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["1969-12-31", "2026-01-06", "2024-02-29", "2100-12-31", "1900-01-01", "2200-12-31"]),
       st.from_regex(r"\d{2}:\d{2}:\d{2}(\.\d{1,6})?", fullmatch=True),
       st.sampled_from(["Z", "z"]) | st.from_regex(r"[+-]\d{2}:\d{2}", fullmatch=True))
def test_rfc3339_of_a_cached_date_equals_datetime_arithmetic(date, time_of_day, offset):
    """Times and offsets out of range (25:00, +24:00, +23:99) give datetime's own errors."""
    text = f"{date}T{time_of_day}{offset}"

    def outcome():
        try:
            return ev.rfc3339_to_ms(text)
        except InvalidEvent as e:
            return e.reason, e.error

    ev._EPOCH_DAYS.clear()
    cold = outcome()
    ev.rfc3339_to_ms(f"{date}T00:00:00Z")  # caches the date
    assert outcome() == cold


# parse_event decodes a flat object with json's C scanner directly and
# everything else with json.loads; both must give the same outcome.

def _outcome(raw):
    try:
        return repr(parse_event(raw))
    except InvalidEvent as e:
        return e.reason, e.error


def _outcomes(raw):
    """parse_event's outcome, and its outcome with the fast path off, both
    called at the same stack depth."""
    fast = _outcome(raw)
    with mock.patch.object(ev, "_scan_once", side_effect=StopIteration(0)):
        slow = _outcome(raw)
    return fast, slow


_JSON_TOKENS = ['{', '}', '[', ']', '"', ':', ',', ' ', '\t', '\n', '\ufeff', '0', '-1', '1.5', '1e400', '10' * 20,
                'NaN', 'Infinity', '-Infinity', 'true', 'null', '"event_type"', '"bet"', '"user_id"', '"u"',
                '"\\ud800"', '"\\ud83c\\udfb0"', '"\\u00e9"', '\\', '\ud800', 'é']


@st.composite
def json_texts(draw):
    kind = draw(st.sampled_from(["event", "value", "mutated", "tokens"]))
    if kind == "tokens":
        return "".join(draw(st.lists(st.sampled_from(_JSON_TOKENS), max_size=30)))
    value = draw(event_objects if kind != "value" else json_values)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    if kind == "mutated":
        at = draw(st.integers(min_value=0, max_value=len(text)))
        cut = draw(st.integers(min_value=0, max_value=3))
        text = text[:at] + draw(st.sampled_from(_JSON_TOKENS)) + text[at + cut:]
    return text


@settings(max_examples=1000, deadline=None)
@given(json_texts())
def test_scanner_fast_path_agrees_with_json_loads(text):
    fast, slow = _outcomes(text.encode("utf-8", "surrogatepass"))
    assert fast == slow


@pytest.mark.parametrize("text", [
    '{"event_type":"bet","event_type":"login"}',  # duplicate keys: the last wins
    '{"event_id":"e1","user_id":123456789012345678901234567890,"event_type":"bet","occurred_at":%d,'
    '"game_id":"G","bet_amount":NaN}' % T0,
    '{"event_id":"e1","user_id":"u1","event_type":"bet","occurred_at":%d,"game_id":"G","bet_amount":1e400}' % T0,
    '{"event_id":"e1","user_id":"\\ud800","event_type":"bet","occurred_at":%d,"game_id":"G","bet_amount":"1"}' % T0,
    '{"event_id":"e1","user_id":"u1","event_type":"bet","occurred_at":%d,"game_id":"G","bet_amount":"1"} ' % T0,
    '{"event_id":"e1","user_id":"u1","event_type":"bet","occurred_at":%d,"game_id":"G","bet_amount":"1"}}' % T0,
    '\ufeff{"event_type":"login"}',
    '{"event_type":"login"',
    '{"event_type":"login","x":' + "[" * 5000 + "]" * 5000 + "}",
])
def test_scanner_fast_path_edge_cases_agree_with_json_loads(text):
    fast, slow = _outcomes(text.encode("utf-8", "surrogatepass"))
    assert fast == slow


def test_nesting_at_the_recursion_limit_agrees_with_json_loads():
    outcomes = set()
    for depth in range(sys.getrecursionlimit() - 300, sys.getrecursionlimit()):
        fast, slow = _outcomes(b'{"event_type":"login","x":%s%s}' % (b"[" * depth, b"]" * depth))
        assert fast == slow, depth
        outcomes.add(fast[0] if isinstance(fast, tuple) else fast)
    if sys.version_info < (3, 12):  # Python frames count against json's recursion limit there
        assert outcomes == {"None", ev.INVALID_JSON}  # so the range spans it


def test_a_flat_event_takes_the_scanner_fast_path():
    with mock.patch.object(ev, "_scan_once", wraps=ev._scan_once) as scan:
        assert parse(bet(bet_amount=1.5)).event_id == "e1"  # a float amount: not the common shape
        assert scan.call_count == 1


def test_a_common_event_takes_the_msgspec_path_only():
    with mock.patch.object(ev, "_decode_common", wraps=ev._decode_common) as decode, \
            mock.patch.object(ev, "_scan_once", wraps=ev._scan_once) as scan:
        assert parse(bet(user_id=7, platform="web")) == ev.validate_event(bet(user_id=7, platform="web"))
        assert decode.call_count == 1 and scan.call_count == 0


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_offset_past_the_representable_years_is_an_invalid_field(text):
    with pytest.raises(InvalidEvent) as e:
        rfc3339_to_ms(text)
    assert e.value.reason == "invalid_field"


# --- SPEC §1: amounts to 18 places; §2.1: logout -----------------------------

@pytest.mark.parametrize("amount, exact", [
    (0.30000000000000004, "0.30000000000000004"),  # a JSON producer's 0.1 + 0.2
    ("0.000000000000000001", "1E-18"),  # one wei, in ETH
    ("1234.567890123456789000", "1234.567890123456789"),
    (1e-18, "1E-18"),
    ("99999999999999999999.999999999999999999", "99999999999999999999.999999999999999999"),
])
def test_amounts_are_exact_to_18_places(amount, exact):
    assert parse(bet(bet_amount=amount)).stake == Decimal(exact)


def test_a_json_float_with_18_places_is_read_from_the_line_itself():
    line = b'{"event_id":"e","user_id":"u","event_type":"bet","occurred_at":1767731000000,' \
           b'"game_id":"g","bet_amount":0.30000000000000004}'
    assert parse_event(line).stake == Decimal("0.30000000000000004")


def test_a_logout_needs_only_its_identity_and_time():
    event = parse({"event_id": "x", "user_id": 7, "event_type": "logout", "occurred_at": 1767731000000})
    assert (event.event_type, event.user_id, event.game_id, event.stake, event.payout) == ("logout", "7", None, None, None)
    assert not event.is_bet
    assert reason_of({"event_id": "x", "event_type": "logout", "occurred_at": 1767731000000}) == ev.MISSING_FIELD


def test_at_the_same_millisecond_bets_then_wins_then_logouts():
    t = 1767731000000
    events = [parse({"event_id": i, "user_id": "u", "event_type": k, "occurred_at": t, "game_id": "g",
                     "bet_amount": 1, "win_amount": 1})
              for i, k in [("a", "logout"), ("b", "win"), ("c", "bet_rollback"), ("d", "bet")]]
    assert [e.event_type for e in sorted(events, key=lambda e: e.fold_order)] == [
        "bet", "win", "bet_rollback", "logout"]
