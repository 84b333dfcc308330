"""Input events: the contract of SPEC §1, as pure Python.

One function turns raw bytes (a JSONL line, a Pub/Sub message body) into an
`Event`; another validates an already-decoded mapping (a CSV row, an Avro
record). Anything unusable raises `InvalidEvent` with a machine-readable
reason, so callers can dead-letter it without ever stopping.
"""
import json
import math
import re
import sys
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Annotated, Any, Dict, Literal, Mapping, NamedTuple, Optional, Union

import msgspec

MAX_PAYLOAD_BYTES = 64 * 1024
MIN_OCCURRED_AT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_OCCURRED_AT_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z (exclusive)

# SPEC §1: exact to 18 places (crypto units of 1e-18, a JSON producer's
# 0.30000000000000004), below 1e20: Avro decimal(38, 18), BigQuery BIGNUMERIC.
AMOUNT_MAX_FRACTION_DIGITS = 18
AMOUNT_LIMIT = Decimal(10) ** 20

# Wide enough that sums of any accepted amounts are exact.
EXACT = Context(prec=80)

BET, WIN, BET_WIN, BET_ROLLBACK, WIN_ROLLBACK, LOGOUT = (
    "bet", "win", "bet_win", "bet_rollback", "win_rollback", "logout")
SUPPORTED_EVENT_TYPES = frozenset({BET, WIN, BET_WIN, BET_ROLLBACK, WIN_ROLLBACK, LOGOUT})
_GAME_EVENT_TYPES = frozenset({BET, WIN, BET_WIN})
BET_TYPES = frozenset({BET, BET_WIN})  # with a stake: bet data (SPEC §2)

# Dead-letter reasons (SPEC §1.1). Every one has a counter of the same name.
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
INVALID_FIELD = "invalid_field"
PAYLOAD_TOO_LARGE = "payload_too_large"
LATE_EVENT = "late_event"
UNSUPPORTED_EVENT_TYPE = "unsupported_event_type"
DEAD_LETTER_REASONS = (
    INVALID_JSON, NOT_AN_OBJECT, MISSING_FIELD, INVALID_FIELD,
    PAYLOAD_TOO_LARGE, LATE_EVENT, UNSUPPORTED_EVENT_TYPE)


class InvalidEvent(ValueError):
    """An input that cannot be used; `reason` is one of DEAD_LETTER_REASONS."""

    def __init__(self, reason: str, error: str):
        super().__init__(error)
        self.reason = reason
        self.error = error


class Event(NamedTuple):
    """One validated gameplay event.

    `stake` is set for bet data (and for the amount a bet_rollback takes back),
    `payout` for win data (and for the amount a win_rollback takes back); both
    are real + bonus, exact decimals.
    """
    user_id: str
    event_id: str
    event_type: str
    occurred_at: int  # epoch ms
    game_id: Optional[str] = None
    game_name: Optional[str] = None
    stake: Optional[Decimal] = None
    payout: Optional[Decimal] = None
    platform: Optional[str] = None
    client_version: Optional[str] = None
    currency: Optional[str] = None

    @property
    def is_bet(self) -> bool:
        """Bet data: the only thing that prolongs a session (SPEC §2)."""
        return self.stake is not None and self.event_type in BET_TYPES

    @property
    def fold_order(self):
        """Per-user processing order (SPEC §2.1): time; at the same
        millisecond bets, then wins and rollbacks, then logouts (a win at a
        session's first bet belongs to it, and so does one at its logout);
        then event_id."""
        return fold_key(self)


def fold_key(event: Event) -> tuple:
    """`Event.fold_order` as a sort key: by position, with no property
    lookups (sorting a user's events by the property cost ~0.5 us each)."""
    event_type = event[2]
    return (event[3], 0 if event[6] is not None and event_type in BET_TYPES else 2 if event_type == LOGOUT else 1,
            event[1])


def parse_event(raw: bytes, strict_event_types: bool = False) -> Optional[Event]:
    """Parses one JSON event. Returns None for an event type the job ignores
    (SPEC §1.2) unless `strict_event_types`; raises InvalidEvent otherwise."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent(
            PAYLOAD_TOO_LARGE,
            f"payload is {len(raw)} bytes, more than the {MAX_PAYLOAD_BYTES} allowed")
    # The common shape (ASCII, a flat object of the fields below, plain
    # values) is decoded and type-checked by msgspec in C. Whatever it does
    # not take, or `_common_event` finds unusual, goes the general way below;
    # tests hold the two to the same results.
    if raw.isascii() and _BACKSLASH not in raw and _OPEN_BRACKET not in raw and raw.rfind(b"{") == 0:
        try:
            event = _common_event(_decode_common(raw))
        except (msgspec.MsgspecError, ValueError):  # InvalidEvent is a ValueError
            pass
        else:
            if event is not None:
                return event
    # The general way: json, then validate_event. Every dead letter's reason
    # and message come from here. (Inline, not a function: json.loads below
    # must run at the same stack depth as before for deeply nested input.)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidEvent(INVALID_JSON, f"not UTF-8: {e.reason} at byte {e.start}") from None
    # json.loads spends nearly half its time in Python around the C scanner.
    # An object that starts the text and ends it decodes to the same dict
    # when scanned directly; anything else takes json.loads, so every error
    # keeps json's own message. Only a flat object (its "{" the only one, no
    # "["): json.loads runs a few frames deeper, so a deeply nested text
    # could exceed the recursion limit there and not here.
    if text.rfind("{") == 0 and "[" not in text:
        try:
            obj, end = _scan_once(text, 0)
        except Exception:  # raised again, as json's own error, by json.loads below
            pass
        else:
            if end == len(text):
                return validate_event(obj, strict_event_types)
    try:
        obj = json.loads(text.lstrip("\ufeff"))
    except (ValueError, RecursionError) as e:
        raise InvalidEvent(INVALID_JSON, f"not JSON: {e}"[:300]) from None
    if not isinstance(obj, dict):
        raise InvalidEvent(NOT_AN_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    return validate_event(obj, strict_event_types)


# Bytes tested for as ints: an int's membership in bytes is one memchr, 8x
# faster than a one-byte bytes' search (0.03 vs 0.25 us a line, measured).
_BACKSLASH, _OPEN_BRACKET = ord("\\"), ord("[")

# The scanner json.loads itself uses (same settings); it clears its key memo
# after every call.
_scan_once = json.JSONDecoder().scan_once


def validate_event(obj: Mapping[str, Any], strict_event_types: bool = False) -> Optional[Event]:
    """Validates a decoded event; `None` values count as absent."""
    event_type = obj.get("event_type")
    if event_type is None:
        raise InvalidEvent(MISSING_FIELD, "event_type is required")
    if not isinstance(event_type, str):
        raise InvalidEvent(INVALID_FIELD, "event_type must be a string")
    if event_type not in SUPPORTED_EVENT_TYPES:
        if strict_event_types:
            raise InvalidEvent(UNSUPPORTED_EVENT_TYPE, f"event_type {event_type[:64]!r} is not supported")
        return None

    event_id = _identifier(obj, "event_id", 256)
    user_id = _identifier(obj, "user_id", 128)
    occurred_at = obj.get("occurred_at")
    if type(occurred_at) is not int or not MIN_OCCURRED_AT_MS <= occurred_at < MAX_OCCURRED_AT_MS:
        occurred_at = _occurred_at(occurred_at)
    if event_type == LOGOUT:
        # A logout needs nothing else (SPEC §2.1); the player's game and
        # amounts, if a producer sends them, mean nothing to the rules.
        return _new_tuple(Event, (user_id, event_id, event_type, occurred_at, None, None, None, None,
                                  _text(obj, "platform"), _text(obj, "client_version"), _text(obj, "currency")))
    game_id = _identifier(obj, "game_id", 256, required=event_type in _GAME_EVENT_TYPES)

    bet = _amount(obj, "bet_amount")
    bet_bonus = _amount(obj, "bet_bonus_amount")
    win = _amount(obj, "win_amount")
    win_bonus = _amount(obj, "win_bonus_amount")
    bet_data = _total(bet, bet_bonus)
    win_data = _total(win, win_bonus)
    stake = payout = None
    if event_type == BET:
        if bet is None:
            raise InvalidEvent(MISSING_FIELD, "a bet needs bet_amount")
        stake = bet_data
    elif event_type == WIN:
        if win is None:
            raise InvalidEvent(MISSING_FIELD, "a win needs win_amount")
        payout = win_data
    elif event_type == BET_WIN:
        if bet_data is None and win_data is None:
            raise InvalidEvent(MISSING_FIELD, "a bet_win needs bet_amount/bet_bonus_amount or win_amount/win_bonus_amount")
        stake, payout = bet_data, win_data
    elif event_type == BET_ROLLBACK:
        if bet_data is None:
            raise InvalidEvent(MISSING_FIELD, "a bet_rollback needs bet_amount or bet_bonus_amount")
        stake = bet_data
    else:
        if win_data is None:
            raise InvalidEvent(MISSING_FIELD, "a win_rollback needs win_amount or win_bonus_amount")
        payout = win_data

    # What Event(...) does, without the Python frame of its generated __new__.
    return _new_tuple(Event, (user_id, event_id, event_type, occurred_at, game_id, _text(obj, "game_name"), stake,
                              payout, _text(obj, "platform"), _text(obj, "client_version"), _text(obj, "currency")))


_new_tuple = tuple.__new__


_Identifier256 = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class _CommonShape(msgspec.Struct):
    """What nearly every event looks like on the wire. Only a decode that fits
    it exactly (a supported type, strings where strings are expected and of
    a valid length, occurred_at as valid epoch ms or a string, the amounts
    as strings or integers) takes the fast path; unknown fields are skipped,
    as validate_event ignores them. A JSON null is None, as absent."""
    event_type: Literal[tuple(sorted(SUPPORTED_EVENT_TYPES))]  # type: ignore[valid-type]
    event_id: _Identifier256
    user_id: Union[int, Annotated[str, msgspec.Meta(min_length=1, max_length=128)]]
    occurred_at: Union[Annotated[int, msgspec.Meta(ge=MIN_OCCURRED_AT_MS, lt=MAX_OCCURRED_AT_MS)], str]
    game_id: Optional[_Identifier256] = None
    game_name: Optional[str] = None
    bet_amount: Union[str, int, None] = None
    bet_bonus_amount: Union[str, int, None] = None
    win_amount: Union[str, int, None] = None
    win_bonus_amount: Union[str, int, None] = None
    platform: Optional[str] = None
    client_version: Optional[str] = None
    currency: Optional[str] = None


# parse_event hands msgspec only ASCII input without escapes, so every string
# it decodes is ASCII (msgspec checks UTF-8 only in the strings it keeps), and
# a flat object, so nothing it skips could be too deep for json.
_decode_common = msgspec.json.Decoder(_CommonShape).decode


def _common_event(c: _CommonShape) -> Optional[Event]:
    """validate_event's result for the common shape, or None (or a raised
    InvalidEvent/ValueError) to leave the event to the general path, which
    then gives the reference result, errors included.

    The strings that repeat from event to event (user, game, platform,
    version, currency) are interned: a replay holds a bucket's events in
    memory at once, and sharing them halves that memory, which on a VM is
    mostly the cost of faulting it in (~8 us a page measured here)."""
    user_id = c.user_id
    if type(user_id) is int:
        if not -_USER_INT_LIMIT < user_id < _USER_INT_LIMIT:
            return None
        user_id = str(user_id)
    user_id = _intern(user_id)
    occurred_at = c.occurred_at
    if type(occurred_at) is str:
        occurred_at = _occurred_at(occurred_at)
    event_type = c.event_type
    platform, client_version, currency = c.platform, c.client_version, c.currency
    if platform is not None:
        platform = _intern(platform)
    if client_version is not None:
        client_version = _intern(client_version)
    if currency is not None:
        currency = _intern(currency)
    if event_type == LOGOUT:  # as validate_event: nothing else matters
        return _new_tuple(Event, (user_id, c.event_id, event_type, occurred_at, None, None, None, None,
                                  platform, client_version, currency))
    # Every amount present must be valid, used or not (as in validate_event).
    bet, bet_bonus, win, win_bonus = c.bet_amount, c.bet_bonus_amount, c.win_amount, c.win_bonus_amount
    if bet is not None:
        bet = _fast_amount(bet)
    if win is not None:
        win = _fast_amount(win)
    bet_data = bet if bet_bonus is None else _total(bet, _fast_amount(bet_bonus))
    win_data = win if win_bonus is None else _total(win, _fast_amount(win_bonus))
    if event_type == BET:
        if bet is None:
            return None
        stake, payout = bet_data, None
    elif event_type == WIN:
        if win is None:
            return None
        stake, payout = None, win_data
    elif event_type == BET_WIN:
        if bet_data is None and win_data is None:
            return None
        stake, payout = bet_data, win_data
    elif event_type == BET_ROLLBACK:
        if bet_data is None:
            return None
        stake, payout = bet_data, None
    elif event_type == WIN_ROLLBACK:
        if win_data is None:
            return None
        stake, payout = None, win_data
    else:  # a type validate_event learnt and this path did not
        return None
    game_id, game_name = c.game_id, c.game_name
    if game_id is None:
        if event_type in _GAME_EVENT_TYPES:
            return None
    else:
        game_id = _intern(game_id)
    if game_name is not None:
        game_name = _intern(game_name)
    return _new_tuple(Event, (user_id, c.event_id, event_type, occurred_at, game_id, game_name, stake,
                              payout, platform, client_version, currency))


_intern = sys.intern


# An integer user_id of up to 127 digits: its decimal string fits the 128.
_USER_INT_LIMIT = 10 ** 127


class _UserOnly(msgspec.Struct):
    user_id: Union[int, str]


_decode_user = msgspec.json.Decoder(_UserOnly).decode


def user_id_of(raw: bytes, strict_event_types: bool = False) -> Optional[str]:
    """The user_id of the Event `parse_event(raw)` gives, found without
    validating the rest. A line that gives no Event (a dead letter, an ignored
    type) only needs some answer, None or a user_id.
    For a line of the common shape only the user_id is decoded (a fifth of a
    parse): ASCII without escapes, and "user_id" in it once, so the one key
    msgspec reads is the one key json would. Anything else is parsed."""
    if raw.isascii() and _BACKSLASH not in raw and raw.count(b'"user_id"') == 1:
        try:
            user_id = _decode_user(raw).user_id
        except msgspec.MsgspecError:
            pass
        else:
            if type(user_id) is str:
                return user_id
            if -_USER_INT_LIMIT < user_id < _USER_INT_LIMIT:  # str() of a longer one raises
                return str(user_id)
    try:
        event = parse_event(raw, strict_event_types)
    except InvalidEvent:
        return None
    return None if event is None else event.user_id


def _fast_amount(value) -> Optional[Decimal]:
    if value is None:
        return None
    if type(value) is str:
        amount = _PLAIN_AMOUNTS.get(value)
        if amount is not None:
            return amount
    return _amount_value(value, "amount")


# The hot paths below test the common shape first (an ASCII string, a plain
# decimal string): validation is most of a replay's CPU time.

def _identifier(obj, field, max_len, required=True) -> Optional[str]:
    value = obj.get(field)
    if type(value) is str and 0 < len(value) <= max_len and value.isascii():
        return value
    if value is None:
        if required:
            raise InvalidEvent(MISSING_FIELD, f"{field} is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidEvent(INVALID_FIELD, f"{field} must be a string or an integer")
    if not 1 <= len(value) <= max_len:
        raise InvalidEvent(INVALID_FIELD, f"{field} must be 1..{max_len} characters, got {len(value)}")
    return _unicode(field, value)


def _text(obj, field) -> Optional[str]:
    value = obj.get(field)
    if value is None or (type(value) is str and value.isascii()):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidEvent(INVALID_FIELD, f"{field} must be a string")
    return _unicode(field, str(value))


def _unicode(field: str, value: str) -> str:
    """JSON escapes can smuggle in lone surrogates (\\ud800), which no UTF-8
    output (files, Pub/Sub, Avro) can carry."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEvent(INVALID_FIELD, f"{field} holds an unpaired surrogate escape (\\ud800-\\udfff), not text") from None
    return value


def _amount(obj, field) -> Optional[Decimal]:
    value = obj.get(field)
    if value is None:
        return None
    return _amount_value(value, field)


def _amount_value(value, field) -> Decimal:
    if type(value) is str:
        amount = _PLAIN_AMOUNTS.get(value)
        if amount is not None:
            return amount
        if _PLAIN_AMOUNT.fullmatch(value):
            amount = Decimal(value) or _ZERO
            if len(_PLAIN_AMOUNTS) >= _PLAIN_AMOUNTS_MAX:
                _PLAIN_AMOUNTS.clear()
            _PLAIN_AMOUNTS[value] = amount
            return amount
    elif type(value) is int and 0 <= value < _INT_AMOUNT_LIMIT:
        return Decimal(value)
    if isinstance(value, bool):
        raise InvalidEvent(INVALID_FIELD, f"{field} must be a number, not a boolean")
    try:
        if isinstance(value, int):
            amount = Decimal(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidEvent(INVALID_FIELD, f"{field} must be finite")
            # repr gives the shortest decimal that round-trips: 0.1 stays 0.1.
            amount = Decimal(repr(value))
        elif isinstance(value, str):
            amount = Decimal(value.strip())
        else:
            raise InvalidEvent(INVALID_FIELD, f"{field} must be a number or a decimal string")
    except InvalidOperation:
        raise InvalidEvent(INVALID_FIELD, f"{field} {str(value)[:40]!r} is not a decimal number") from None
    if not amount.is_finite():
        raise InvalidEvent(INVALID_FIELD, f"{field} must be finite")
    if amount < 0:
        raise InvalidEvent(INVALID_FIELD, f"{field} must be >= 0, got {amount}")
    if amount >= AMOUNT_LIMIT:
        raise InvalidEvent(INVALID_FIELD, f"{field} must be < 1e20")
    if amount.as_tuple().exponent < -AMOUNT_MAX_FRACTION_DIGITS and amount != amount.quantize(
            Decimal(1).scaleb(-AMOUNT_MAX_FRACTION_DIGITS), context=EXACT):
        raise InvalidEvent(INVALID_FIELD, f"{field} has more than {AMOUNT_MAX_FRACTION_DIGITS} decimal places")
    return amount if amount else Decimal(0)  # -0 becomes 0


# Digits with at most the allowed fraction digits: valid, and below
# AMOUNT_LIMIT, by construction.
_PLAIN_AMOUNT = re.compile(r"\d{1,20}(?:\.\d{0,%d})?" % AMOUNT_MAX_FRACTION_DIGITS)
_ZERO = Decimal(0)
_INT_AMOUNT_LIMIT = int(AMOUNT_LIMIT)
# Amount strings repeat (stakes come in a few denominations), so their
# Decimals, immutable, are reused instead of parsed again. Bounded: varied
# payouts only churn it.
_PLAIN_AMOUNTS: Dict[str, Decimal] = {}
_PLAIN_AMOUNTS_MAX = 4096


def _total(real: Optional[Decimal], bonus: Optional[Decimal]) -> Optional[Decimal]:
    if bonus is None:
        return real
    if real is None:
        return bonus
    return EXACT.add(real, bonus)


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?")


def _occurred_at(value) -> int:
    if value is None:
        raise InvalidEvent(MISSING_FIELD, "occurred_at is required")
    if isinstance(value, bool):
        raise InvalidEvent(INVALID_FIELD, "occurred_at must be epoch milliseconds or an RFC 3339 string")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise InvalidEvent(INVALID_FIELD, "occurred_at in epoch milliseconds must be a whole number")
        value = int(value)
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        ms = rfc3339_to_ms(value)
    else:
        raise InvalidEvent(INVALID_FIELD, "occurred_at must be epoch milliseconds or an RFC 3339 string")
    if not MIN_OCCURRED_AT_MS <= ms < MAX_OCCURRED_AT_MS:
        raise InvalidEvent(INVALID_FIELD, f"occurred_at {ms} is outside 2000-01-01..2100-01-01 (epoch ms)")
    return ms


def rfc3339_to_ms(text: str) -> int:
    """RFC 3339 with a mandatory offset to epoch ms; sub-millisecond digits are
    truncated (event time has millisecond precision everywhere in the job)."""
    m = _RFC3339.fullmatch(text.strip())
    if not m:
        raise InvalidEvent(INVALID_FIELD, f"occurred_at {text[:40]!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = m.groups()
    if not zulu and not sign:
        raise InvalidEvent(INVALID_FIELD, f"occurred_at {text[:40]!r} has no UTC offset (add Z or +hh:mm)")
    # Fast path, integer arithmetic: a date seen before (its days since the
    # epoch cached), a valid time of day and offset. Anything else is left
    # to datetime below, for its checks and messages.
    days = _EPOCH_DAYS.get((year, month, day))
    if days is not None:
        h, mi, sec = int(hour), int(minute), int(second)
        offset_min = int(off_h) * 60 + int(off_m) if sign else 0
        if h < 24 and mi < 60 and sec < 60 and offset_min < 1440:
            ms = (((days * 24 + h) * 60 + mi) * 60 + sec) * 1000 + int((fraction or "0")[:3].ljust(3, "0"))
            return ms - offset_min * 60_000 if sign == "+" else ms + offset_min * 60_000
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                          tzinfo=timezone.utc)
    except ValueError as e:
        raise InvalidEvent(INVALID_FIELD, f"occurred_at {text[:40]!r}: {e}") from None
    if sign:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= _DAY:
            raise InvalidEvent(INVALID_FIELD, f"occurred_at {text[:40]!r} has an impossible offset")
        try:
            moment = moment - offset if sign == "+" else moment + offset
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
            raise InvalidEvent(INVALID_FIELD, f"occurred_at {text[:40]!r} is outside the representable years") from None
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    since_epoch = moment - _EPOCH  # whole seconds: no microseconds to add
    if 1900 <= int(year) <= 2200:  # far from datetime's year 1 and 9999: no offset can overflow
        if len(_EPOCH_DAYS) >= 4096:
            _EPOCH_DAYS.clear()
        _EPOCH_DAYS[year, month, day] = (datetime(int(year), int(month), int(day), tzinfo=timezone.utc) - _EPOCH).days
    return since_epoch.days * 86_400_000 + since_epoch.seconds * 1000 + millis


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# (year, month, day) strings of valid dates seen -> days since the epoch.
_EPOCH_DAYS: Dict[tuple, int] = {}
_DAY = timedelta(days=1)
