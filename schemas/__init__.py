"""The one source of truth for every output schema.

`<event type>.avsc` is the Avro schema of the files the job writes;
`<event type>.bigquery.json` the matching BigQuery table schema (for
`bq mk --table` / `bq load --schema`). Records are built in
`sessions.records` with exactly these fields, in this order.
"""
import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import fastavro

ENDED = "gs_game_session_ended"
CHANGED = "gs_game_session_changed"
EVENT_TYPES = (ENDED, CHANGED)
DEAD_LETTER = "dead_letter"

_HERE = Path(__file__).parent


def avsc_path(event_type: str) -> Path:
    return _HERE / f"{event_type}.avsc"


def bigquery_schema_path(event_type: str) -> Path:
    return _HERE / f"{event_type}.bigquery.json"


@lru_cache(maxsize=None)
def avro_schema(event_type: str) -> dict:
    """The parsed Avro schema, ready for fastavro's writer."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"no schema for {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    return fastavro.parse_schema(json.loads(avsc_path(event_type).read_text()))


def field_names(event_type: str) -> tuple:
    return tuple(f["name"] for f in json.loads(avsc_path(event_type).read_text())["fields"])


@lru_cache(maxsize=None)
def decimal_fields(event_type: str) -> frozenset:
    return frozenset(f["name"] for f in json.loads(avsc_path(event_type).read_text())["fields"]
                     if isinstance(f["type"], dict) and f["type"].get("logicalType") == "decimal")


def avro_record(event_type: str, record: dict) -> dict:
    """A record read back from its JSON line, with its amounts as the
    Decimals the Avro decimal type takes (JSON renders 3200.0 as 3200)."""
    decimals = decimal_fields(event_type)
    return {k: Decimal(v) if k in decimals else v for k, v in record.items()}


def bigquery_schema(event_type: str) -> list:
    return json.loads(bigquery_schema_path(event_type).read_text())
