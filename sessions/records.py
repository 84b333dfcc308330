"""Output records of SPEC §3 and their exact JSON rendering.

Records are plain dicts whose keys and order follow the Avro schemas in
`schemas/` (a test keeps the two in step); amounts stay `Decimal` until they
are rendered, so no binary floating point ever touches money.
"""
import json
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone
from decimal import Decimal
from json.encoder import encode_basestring

from sessions.events import EXACT

# gs_end_reason of a changed event: what ended the segment it describes.
GAME_SWITCH = "game_switch"


@dataclass(frozen=True)
class Metrics:
    bets_count: int
    total_bet: Decimal
    max_bet: Decimal
    wins_count: int
    total_win: Decimal
    max_win: Decimal
    bets_rollback_count: int
    wins_rollback_count: int
    total_rollback_bet: Decimal
    total_rollback_win: Decimal
    events: int  # every event the session or segment holds, rollbacks included


def average(total: Decimal, count: int, places: int = 2) -> Decimal:
    """Half-up to `places` (2: SPEC §3); 0 when there is nothing to average.
    Exact for any total (amounts are >= 0): 38 digits do not fit Decimal's
    default 28-digit division, so the rounding is done on integers."""
    if count == 0:
        return Decimal(0)
    _, digits, exponent = total.as_tuple()  # total = units * 10**exponent
    numerator, denominator = int("".join(map(str, digits))) * 10 ** places, count
    if exponent >= 0:
        numerator *= 10 ** exponent
    else:
        denominator *= 10 ** -exponent
    units = (2 * numerator + denominator) // (2 * denominator)
    return Decimal(units).scaleb(-places, EXACT)  # the default context would round past 28 digits


def compact_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms // 1000, tz=timezone.utc).strftime("%Y%m%d%H%M%S")


def partition_date(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms // 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def gameplay_session_id(start_ms: int, user_id: str) -> str:
    return f"{compact_time(start_ms)}_{user_id}"


def _amount_fields(m: Metrics) -> dict:
    return {
        "gs_bets_count": m.bets_count,
        "gs_total_bet_amount": m.total_bet,
        "gs_avg_bet_amount": average(m.total_bet, m.bets_count),
        "gs_max_bet_amount": m.max_bet,
        "gs_wins_count": m.wins_count,
        "gs_total_win_amount": m.total_win,
        "gs_avg_win_amount": average(m.total_win, m.wins_count),
        "gs_max_win_amount": m.max_win,
    }


def _time_fields(start: int, end: int, delay_seconds: int) -> dict:
    return {
        "gs_session_start_date": start,
        "gs_session_end_date": end,
        "gs_session_length_seconds": (end - start) // 1000,
        "gs_event_delay_seconds": delay_seconds,
    }


def _rollback_fields(m: Metrics) -> dict:
    return {
        "bets_rollback_count": m.bets_rollback_count,
        "wins_rollback_count": m.wins_rollback_count,
        "total_rollback_bet_amount": m.total_rollback_bet,
        "total_rollback_win_amount": m.total_rollback_win,
    }


def ended_record(end, delay_seconds: int) -> dict:
    """`gs_game_session_ended` (SPEC §3.1) for a `SessionEnd`."""
    return {
        "user_id": end.user_id,
        "gs_gameplay_session_id": end.gameplay_session_id,
        "gs_all_game_ids": list(end.game_ids),
        **_amount_fields(end.metrics),
        **_time_fields(end.start, end.end, delay_seconds),
        **_rollback_fields(end.metrics),
        "gs_end_reason": end.end_reason,
        "gs_game_switches_count": end.switches_count,
        "gs_last_game_id": end.last_game_id,
        "currency": end.currency,
    }


def changed_record(switch, delay_seconds: int) -> dict:
    """`gs_game_session_changed` (SPEC §3.2) for a `GameSwitch`."""
    session_id = switch.gameplay_session_id
    return {
        "user_id": switch.user_id,
        "gs_gameplay_session_id": session_id,
        "gs_game_session_id": f"{session_id}_{compact_time(switch.segment_start)}_{switch.game_name}",
        "gs_game_name": switch.game_name,
        "gs_game_old_id": switch.game_id,
        "gs_game_new_id": switch.new_game_id,
        **_amount_fields(switch.metrics),
        **_time_fields(switch.segment_start, switch.switched_at, delay_seconds),
        **_rollback_fields(switch.metrics),
        # The segment ended because the player switched games; its last bet
        # was on the game it was about.
        "gs_end_reason": GAME_SWITCH,
        "gs_game_switches_count": switch.switches_count,
        "gs_last_game_id": switch.game_id,
        "currency": switch.currency,
    }


def render_decimal(value: Decimal) -> str:
    """Integral values as integers (3200, not 3200.0), others in plain
    positional notation without trailing zeros."""
    if value == value.to_integral_value():
        return str(int(value))
    # Decimal's default context keeps 28 digits; 18-place amounts have up to 38.
    return format(value.normalize(EXACT), "f")


def to_json(record: dict) -> str:
    """One output record as compact JSON with exact decimal numbers."""
    return "{" + ",".join([_json_key(k) + _json_value(v) for k, v in record.items()]) + "}"


@lru_cache(maxsize=1024)
def _json_key(key: str) -> str:
    return json.dumps(key) + ":"


def _json_value(value) -> str:
    # The exact types of a record's fields first: rendering is a third of a
    # replay's output work.
    kind = type(value)
    if kind is str:
        return encode_basestring(value)  # what json.dumps(value, ensure_ascii=False) returns
    if kind is Decimal:
        return render_decimal(value)
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        return render_decimal(value)
    if isinstance(value, dict):
        return to_json(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join([_json_value(v) for v in value]) + "]"
    return json.dumps(value, ensure_ascii=False)


def from_json(text: str) -> dict:
    """Reads a rendered record back with exact decimals (for tests and tools)."""
    return json.loads(text, parse_float=Decimal)
