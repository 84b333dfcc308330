"""The one source of truth for every output schema.

`<event type>.avsc` is the Avro schema of the files the job writes;
`<event type>.bigquery.json` the matching BigQuery table schema (for
`bq mk --table` / `bq load --schema`). Records are built in
`sessions.records` with exactly these fields, in this order.
"""
import json
from decimal import Context, Decimal, Inexact, InvalidOperation
from functools import lru_cache
from pathlib import Path

import fastavro

from sessions.records import to_json  # exact decimals inside nested objects

ENDED = "gs_game_session_ended"
CHANGED = "gs_game_session_changed"
EVENT_TYPES = (ENDED, CHANGED)
CAMPAIGN_TRIGGER = "campaign_trigger"
TABLES = (*EVENT_TYPES, CAMPAIGN_TRIGGER)  # every table with a schema here
DEAD_LETTER = "dead_letter"

_HERE = Path(__file__).parent


def avsc_path(event_type: str) -> Path:
    return _HERE / f"{event_type}.avsc"


def bigquery_schema_path(event_type: str) -> Path:
    return _HERE / f"{event_type}.bigquery.json"


@lru_cache(maxsize=None)
def avro_schema(event_type: str) -> dict:
    """The parsed Avro schema, ready for fastavro's writer."""
    if event_type not in TABLES:
        raise ValueError(f"no schema for {event_type!r}; known: {', '.join(TABLES)}")
    source = json.loads(avsc_path(event_type).read_text())
    parsed = fastavro.parse_schema(source)
    # fastavro copies a field's doc and default from a set, so their order in
    # the file header would follow the process's hash seed: put every field's
    # keys back in the .avsc's order, so the same records give the same bytes.
    for parsed_field, field in zip(parsed["fields"], source["fields"]):
        order = {key: n for n, key in enumerate(field)}
        reordered = sorted(parsed_field.items(), key=lambda item: order.get(item[0], len(order)))
        parsed_field.clear()
        parsed_field.update(reordered)
    return parsed


@lru_cache(maxsize=None)
def avsc_fields(event_type: str) -> tuple:
    """The fields of a table's .avsc as written (read once; do not modify)."""
    return tuple(json.loads(avsc_path(event_type).read_text())["fields"])


def field_names(event_type: str) -> tuple:
    return tuple(f["name"] for f in avsc_fields(event_type))


@lru_cache(maxsize=None)
def decimal_fields(event_type: str) -> frozenset:
    return frozenset(f["name"] for f in avsc_fields(event_type)
                     if isinstance(f["type"], dict) and f["type"].get("logicalType") == "decimal")


@lru_cache(maxsize=None)
def json_fields(event_type: str) -> frozenset:
    """Avro strings that BigQuery loads as JSON columns (`"sqlType": "JSON"`)."""
    def is_json(avro_type) -> bool:
        if isinstance(avro_type, list):
            return any(is_json(t) for t in avro_type)
        return isinstance(avro_type, dict) and avro_type.get("sqlType") == "JSON"
    return frozenset(f["name"] for f in avsc_fields(event_type) if is_json(f["type"]))


# Output amounts have at most 18 places (SPEC §1), but a sum keeps the
# trailing zeros of its terms ("0.50000000000000000000" has 20 places), which
# is still exactly 18 places' worth: the amount goes into Avro as the unscaled
# integer of exactly 18 places. A 19th non-zero place raises (Inexact): never
# rounded away.
AVRO_DECIMAL_SCALE = 18
AVRO_DECIMAL_PRECISION = 38
_AVRO_CONTEXT = Context(prec=80, traps=[InvalidOperation, Inexact])
_AVRO_UNSCALED_LIMIT = 10 ** AVRO_DECIMAL_PRECISION


def avro_decimal(value) -> bytes:
    """An amount (Decimal, or the int/str JSON reads back) as Avro's
    decimal(38, 18) stores it: the unscaled integer, big-endian two's
    complement, in as few bytes as fastavro's own writer uses. Done here
    because fastavro's writer walks the digits in Python, ~2 us an amount
    (half of writing a record); it passes bytes through unchanged."""
    if not value:  # a zero Decimal or int: the commonest amount (no rollbacks, no wins)
        return b"\x00"
    scaled = Decimal(value).scaleb(AVRO_DECIMAL_SCALE, _AVRO_CONTEXT)  # exact: 80 digits
    unscaled = int(scaled)
    if unscaled != scaled:
        raise Inexact(f"{value} has more than {AVRO_DECIMAL_SCALE} decimal places")
    if not -_AVRO_UNSCALED_LIMIT < unscaled < _AVRO_UNSCALED_LIMIT:
        raise ValueError(f"{value} has more than {AVRO_DECIMAL_PRECISION} digits")
    return unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)


def avro_record(event_type: str, record: dict) -> dict:
    """An output record (as built, or read back from its JSON line) as Avro
    takes it: amounts encoded by `avro_decimal`, nested JSON objects as their
    JSON text."""
    decimals, objects = decimal_fields(event_type), json_fields(event_type)
    return {k: avro_decimal(v) if k in decimals
            else to_json(v) if k in objects and v is not None else v
            for k, v in record.items()}


def bigquery_schema(event_type: str) -> list:
    return json.loads(bigquery_schema_path(event_type).read_text())
