"""Shared test helpers: reading job outputs and computing expected ones."""
import glob
import gzip
import json
import os

import fastavro

from sessions.events import InvalidEvent, parse_event
from sessions.records import from_json
from tests.reference import dedupe, expected_records

ENDED, CHANGED, DEAD = "gs_game_session_ended", "gs_game_session_changed", "dead_letter"


def table_files(out_dir, table, ext):
    return sorted(glob.glob(os.path.join(out_dir, table, "**", f"*.{ext}"), recursive=True))


def jsonl_records(out_dir, table):
    return [from_json(line) for path in table_files(out_dir, table, "jsonl")
            for line in open(path, encoding="utf-8") if line.strip()]


def avro_records(out_dir, table):
    records = []
    for path in table_files(out_dir, table, "avro"):
        with open(path, "rb") as f:
            records.extend(fastavro.reader(f))
    return records


def open_text(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def expected_from_lines(raw_lines, gap_ms):
    """What a replay of these JSONL lines must produce (reference model)."""
    events = []
    for raw in raw_lines:
        if not raw.strip():
            continue
        try:
            event = parse_event(raw)
        except InvalidEvent:
            continue
        if event is not None:
            events.append(event)
    return expected_records(dedupe(events), gap_ms)


def write_lines(path, lines):
    with (gzip.open(path, "wb") if path.endswith(".gz") else open(path, "wb")) as f:
        for line in lines:
            f.write((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n")


def dumps(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"))
