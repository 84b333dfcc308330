"""Ended sessions as records of the AT Protocol lexicon
`net.anisota.beta.game.session` (SPEC §6), as pure Python.

A record lives in its player's repository under a TID record key derived from
the session start, so replaying the same input gives the same keys and the
same bytes. The lexicon has no field for the player: whoever loads the records
puts each one in the repository of its `user_id` (see docs/lexicon.md for the
field-by-field mapping and the defaults).
"""
import hashlib
import json
from datetime import datetime, timezone
from typing import Optional, Tuple
from urllib.parse import quote

from sessions.sessionizer import SessionEnd

COLLECTION = "net.anisota.beta.game.session"

# AT Protocol TID: 64 bits written as 13 base32-sortable characters, most
# significant first; the top bit is 0, then 53 bits of microseconds since the
# epoch, then a 10-bit clock id.
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
TID_LENGTH = 13
CLOCK_ID_BITS = 10
CLOCK_IDS = 1 << CLOCK_ID_BITS
MAX_TID_MICROS = (1 << 53) - 1
_TID_DIGITS = {c: i for i, c in enumerate(TID_ALPHABET)}

# The lexicon's platform enum, and what operators' streams commonly send
# instead. Anything else (or nothing) becomes DEFAULT_PLATFORM: the field is
# required and has no "unknown" value.
_PLATFORMS = {"web": "web", "mobile": "mobile", "desktop": "desktop", "pwa": "pwa",
              "ios": "mobile", "android": "mobile"}
DEFAULT_PLATFORM = "web"
# Required too; no event of the session said which client it came from.
DEFAULT_CLIENT_VERSION = "unknown"


def encode_tid(micros: int, clock: int) -> str:
    if not 0 <= micros <= MAX_TID_MICROS:
        raise ValueError(f"a TID holds 0..{MAX_TID_MICROS} microseconds since the epoch, got {micros}")
    if not 0 <= clock < CLOCK_IDS:
        raise ValueError(f"a TID clock id is 0..{CLOCK_IDS - 1}, got {clock}")
    value = (micros << CLOCK_ID_BITS) | clock
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(5 * (TID_LENGTH - 1), -1, -5))


def decode_tid(tid: str) -> Tuple[int, int]:
    """A TID -> (microseconds since the epoch, clock id)."""
    if len(tid) != TID_LENGTH or any(c not in _TID_DIGITS for c in tid):
        raise ValueError(f"a TID is {TID_LENGTH} characters of {TID_ALPHABET!r}, got {tid!r}")
    value = 0
    for c in tid:
        value = (value << 5) | _TID_DIGITS[c]
    if value >> 63:
        raise ValueError(f"{tid!r} is not a TID: its top bit must be 0")
    return value >> CLOCK_ID_BITS, value & (CLOCK_IDS - 1)


def clock_id(user_id: str) -> int:
    """A stable clock id per player, so two players whose sessions start in
    the same millisecond still get different keys (1023 times in 1024)."""
    digest = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:2], "big") % CLOCK_IDS


def session_rkey(user_id: str, start_ms: int) -> str:
    return encode_tid(start_ms * 1000, clock_id(user_id))


def lexicon_datetime(epoch_ms: int) -> str:
    """Epoch ms -> the lexicon's `datetime`: RFC 3339, UTC, milliseconds, `Z`."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def lexicon_platform(platform: Optional[str]) -> str:
    return _PLATFORMS.get((platform or "").strip().lower(), DEFAULT_PLATFORM)


def _valid_unicode(text: str) -> str:
    # A JSON event may carry lone surrogates ("\ud800"); AT Protocol strings
    # must be valid UTF-8, so they become "?".
    return text.encode("utf-8", "replace").decode("utf-8")


def session_record(end: SessionEnd) -> Tuple[str, dict]:
    """An ended session -> (record key, record).

    The record is created when the session is over (`gap` of bet
    inactivity after the last bet, or the logout), the moment a live run
    finalises it: `createdAt` is that event time, never the wall clock, so a
    replay writes the same bytes."""
    if end.end < end.start:
        raise ValueError(f"session {end.gameplay_session_id} ends ({end.end}) before it starts ({end.start})")
    created_at = lexicon_datetime(end.closed_at)
    record = {
        "$type": COLLECTION,
        "status": "ended",
        "startedAt": lexicon_datetime(end.start),
        "endedAt": lexicon_datetime(end.end),
        "lastActivityAt": lexicon_datetime(end.end),
        "duration": end.end - end.start,
        "endReason": end.end_reason,  # the lexicon knows both: inactivity, logout
        "platform": lexicon_platform(end.platform),
        "clientVersion": _valid_unicode(end.client_version or DEFAULT_CLIENT_VERSION),
        "activitySummary": {"totalEvents": end.metrics.events},
        "createdAt": created_at,
        "updatedAt": created_at,
    }
    return session_rkey(end.user_id, end.start), record


def record_file(end: SessionEnd) -> Tuple[str, bytes]:
    """An ended session -> (path under the output folder, file bytes).

    One folder per player, since a record key is unique only within its
    player's repository; the file holds what `com.atproto.repo.putRecord`
    needs besides the repository itself (the player's DID, looked up from
    `user_id` by whoever loads it)."""
    rkey, record = session_record(end)
    document = {
        "user_id": end.user_id,
        "gs_gameplay_session_id": end.gameplay_session_id,
        "collection": COLLECTION,
        "rkey": rkey,
        "record": record,
    }
    # ASCII-only JSON is valid UTF-8 whatever the user_id holds.
    body = json.dumps(document, separators=(",", ":")) + "\n"
    return f"{player_folder(end.user_id)}/{rkey}.json", body.encode("ascii")


def player_folder(user_id: str) -> str:
    """A user_id as one safe folder name: percent-encoded, dots included, so
    no id can climb out of the output folder or hide as a dot-file."""
    return quote(user_id, safe="", errors="surrogatepass").replace(".", "%2E")
