"""Reading historical event files (SPEC §5): JSONL (optionally gzipped), CSV
and Avro, local or on any Beam filesystem (gs://...), several globs.

Large uncompressed files are cut into shards at line boundaries so both
workers read; every event keeps its file and line for dead letters and for
the replay's duplicate rule (the first copy in input order wins). Records
travel as batches, not one element each: per-element overhead is what
dominates a Python Beam job.

JSONL lines leave unparsed, as `LineBatch`es: whoever groups them parses
them there (`parse_line`; the replay parses a bucket's lines where it
sessionizes them), so a line is decoded once and crosses the shuffle as the
bytes it was, and needs only its user_id (`line_user_id`) to find its group.
CSV rows and Avro records leave parsed, as `Batch`es of (arrival, Event).
"""
import csv
import functools
import io
import itertools
import json
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Tuple

import apache_beam as beam
import fastavro
from apache_beam.io.filesystem import CompressionTypes, FileMetadata
from apache_beam.io.filesystems import FileSystems

from sessions.events import INVALID_FIELD, INVALID_JSON, Event, InvalidEvent, parse_event, user_id_of, validate_event
from transforms.batches import Batch
from transforms.counters import InputCounters
from transforms.dead_letters import DeadLetter, original_payload
from transforms.worker import tune_gc

DEAD_LETTERS = "dead_letters"
SHARD_BYTES = 4 * 1024 * 1024
BATCH_EVENTS = 16384
_READ_BLOCK = 16 * 1024 * 1024
_DEAD_LETTER_PREFIX = b'{"dead_letter_reason"'

# (file, line): where an event was read, and its place in input order.
Arrival = Tuple[str, int]


class LineBatch(Batch):
    """JSONL lines of one shard (`path`), not parsed yet, and their line
    numbers (`line_numbers`, in step): columns, with no tuple per line."""

    def __init__(self, path: str, line_numbers: List[int], lines: List[bytes]):
        super().__init__(lines)
        self.path = path
        self.line_numbers = line_numbers


def parse_line(raw: bytes, strict_event_types: bool = False) -> Optional[Event]:
    """A JSONL line -> its Event (parse_event), a replayed dead letter's line
    -> its payload's. None for an ignored type; InvalidEvent for a dead letter."""
    if raw.startswith(_DEAD_LETTER_PREFIX):
        raw = _unwrap_dead_letter(raw)
    return parse_event(raw, strict_event_types)


def line_user_id(raw: bytes, strict_event_types: bool = False) -> Optional[str]:
    """The user_id of parse_line's Event, cheaply (user_id_of); a line that
    gives no Event may get None or any user_id."""
    if raw.startswith(_DEAD_LETTER_PREFIX):
        raw = _unwrap_dead_letter(raw)
    return user_id_of(raw, strict_event_types)


class EventParser:
    """Turns read records into events as the read counts them: every record
    read, the ignored types, a dead letter per reason (SPEC §1.1)."""

    def __init__(self, strict_event_types: bool):
        self._parse_line = functools.partial(parse_line, strict_event_types=strict_event_types)
        self._counters = InputCounters()

    def events(self, records: Iterable[Tuple[Arrival, bytes, Callable[[bytes], Optional[Event]]]],
               dead_letters: List[DeadLetter]) -> Iterable[Tuple[Arrival, Event]]:
        """(arrival, raw record, its parse) -> (arrival, Event) for every record
        that is an event; dead letters are appended to `dead_letters`."""
        read = ignored = 0
        for arrival, raw, parse in records:
            read += 1
            try:
                event = parse(raw)
            except InvalidEvent as e:
                self._counters.dead_letter(e.reason)
                dead_letters.append(DeadLetter(raw, e.reason, e.error, *arrival))
                continue
            if event is None:
                ignored += 1
                continue
            yield arrival, event
        self._counters.read.inc(read)
        self._counters.ignored.inc(ignored)

    def line_events(self, arrivals_lines: Iterable[Tuple[Arrival, bytes]],
                    dead_letters: List[DeadLetter]) -> Iterable[Tuple[Arrival, Event]]:
        """`events` of JSONL lines (parse_line)."""
        parse = self._parse_line
        return self.events(((arrival, raw, parse) for arrival, raw in arrivals_lines), dead_letters)


@dataclass(frozen=True)
class Shard:
    """A byte range of one file, starting at a line start."""
    path: str
    start: int
    end: Optional[int]  # None: to the end (compressed or record-oriented files)
    first_line: int
    header: Optional[bytes] = None  # CSV header line, for shards after the first


def file_format(path: str) -> str:
    name = path.lower()
    for suffix in (".gz", ".gzip", ".bz2", ".zst", ".deflate"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".avro"):
        return "avro"
    return "jsonl"


def match_inputs(patterns: Iterable[str]) -> List[FileMetadata]:
    """Every file the --input globs name (path and size), in path order;
    ValueError if one names nothing."""
    files = {}
    for pattern in patterns:
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as e:  # Beam raises its own error types per filesystem
            raise ValueError(f"cannot read --input={pattern}: {e}") from None
        if not matched:
            raise ValueError(f"--input={pattern} matches no file")
        files.update((m.path, m) for m in matched)
    return [files[path] for path in sorted(files)]


class _PlanShards(beam.DoFn):
    """Cuts an uncompressed JSONL/CSV file into shards of about `shard_bytes`,
    counting lines on the way (a C-speed scan) so every shard knows its first
    line number. The scan runs before any shard is parsed, so it reads each
    block once and cuts it in place: no bytes are copied."""

    def __init__(self, shard_bytes: int, read_block: int = _READ_BLOCK):
        self._shard_bytes = shard_bytes
        self._read_block = read_block

    def process(self, path: str) -> Iterable[Shard]:
        fmt = file_format(path)
        if fmt == "avro" or CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
            yield Shard(path, 0, None, 1)
            return
        header = None
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            if fmt == "csv":
                header = f.readline()
            start = block_start = len(header or b"")
            first_line = line = 2 if header else 1
            while True:
                block = f.read(self._read_block)
                if not block:
                    break
                counted = 0  # lines of the block before this index are counted
                while True:
                    # A shard ends at the first newline at or after its
                    # (shard_bytes)th byte.
                    due = start + self._shard_bytes - 1 - block_start
                    if due >= len(block):
                        break
                    cut = block.find(b"\n", max(due, counted))
                    if cut < 0:
                        break
                    line += block.count(b"\n", counted, cut + 1)
                    counted = cut + 1
                    yield Shard(path, start, block_start + counted, first_line, header)
                    start, first_line = block_start + counted, line
                line += block.count(b"\n", counted)
                block_start += len(block)
            yield Shard(path, start, None, first_line, header)


class _ReadShard(beam.DoFn):
    """Reads one shard: a JSONL shard leaves as LineBatches, a CSV or Avro
    one as Batches of (arrival, Event) with its dead letters on the
    DEAD_LETTERS output."""

    def __init__(self, strict_event_types: bool):
        self._strict = strict_event_types

    def setup(self):
        tune_gc()
        self._parser = EventParser(self._strict)

    def process(self, shard: Shard):
        if file_format(shard.path) == "jsonl":
            yield from self._line_batches(shard)
            return
        records = (((shard.path, line_no), raw, parse) for line_no, raw, parse in self._records(shard))
        # A batch's worth of records at a time: a compressed file is one
        # shard, and neither its events nor its dead letters wait for its end.
        while True:
            chunk = list(itertools.islice(records, BATCH_EVENTS))
            if not chunk:
                return
            dead_letters: List[DeadLetter] = []
            batch = Batch(self._parser.events(chunk, dead_letters))
            if batch:
                yield batch
            for dead_letter in dead_letters:
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter)

    @staticmethod
    def _line_batches(shard: Shard) -> Iterable[LineBatch]:
        numbers, lines = [], []
        for line_no, raw in _lines(shard):
            numbers.append(line_no)
            lines.append(raw)
            if len(lines) >= BATCH_EVENTS:
                yield LineBatch(shard.path, numbers, lines)
                numbers, lines = [], []
        if lines:
            yield LineBatch(shard.path, numbers, lines)

    def _records(self, shard: Shard):
        if file_format(shard.path) == "avro":
            yield from self._avro_records(shard)
        else:
            yield from self._csv_records(shard)

    def _csv_records(self, shard: Shard):
        lines = _lines(shard)
        header = shard.header
        if header is None:
            header = next((raw for _, raw in lines), b"")
        columns = next(csv.reader([header.decode("utf-8-sig", "replace")]))

        def parse(raw: bytes) -> Optional[Event]:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InvalidEvent(INVALID_JSON, f"not UTF-8: {e.reason} at byte {e.start}") from None
            cells = next(csv.reader([text]), [])
            if len(cells) != len(columns):
                raise InvalidEvent(INVALID_FIELD, f"row has {len(cells)} cells, the header has {len(columns)}")
            return validate_event(_typed_cells(columns, cells), self._strict)

        for line_no, raw in lines:
            yield line_no, raw, parse

    def _avro_records(self, shard: Shard):
        with FileSystems.open(shard.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for number, record in enumerate(fastavro.reader(f), start=1):
                raw = json.dumps(record, default=str, ensure_ascii=False).encode("utf-8")
                yield number, raw, lambda _raw, record=record: validate_event(record, self._strict)


def _typed_cells(columns, cells) -> dict:
    """CSV has only text: empty cells are absent and an all-digit occurred_at
    is epoch milliseconds."""
    row = {c: v for c, v in zip(columns, cells) if v != ""}
    occurred_at = row.get("occurred_at")
    # ASCII digits only ("²" is a digit to isdigit), and few enough for int().
    if occurred_at is not None and occurred_at.isascii() and occurred_at.isdigit() and len(occurred_at) < 20:
        row["occurred_at"] = int(occurred_at)
    return row


def _unwrap_dead_letter(raw: bytes) -> bytes:
    try:
        payload = original_payload(json.loads(raw))
    except (ValueError, RecursionError):
        return raw
    return raw if payload is None else payload


def _lines(shard: Shard) -> Iterable[Tuple[int, bytes]]:
    """(line number, line) for the shard's non-blank lines."""
    with FileSystems.open(
            shard.path,
            compression_type=(CompressionTypes.AUTO if shard.end is None and shard.start == 0
                              else CompressionTypes.UNCOMPRESSED)) as f:
        if shard.start:
            f.seek(shard.start)
        remaining = None if shard.end is None else shard.end - shard.start
        stream = io.BufferedReader(_Limited(f, remaining), buffer_size=1 << 20)
        for line_no, line in enumerate(stream, start=shard.first_line):
            line = line.rstrip(b"\r\n")
            if line and not line.isspace():  # what strip() would leave empty, without copying the line
                yield line_no, line


class _Limited(io.RawIOBase):
    """A raw stream of at most `limit` bytes of another stream."""

    def __init__(self, stream, limit):
        self._stream, self._left = stream, limit

    def readable(self):
        return True

    def readinto(self, buffer):
        want = len(buffer) if self._left is None else min(len(buffer), self._left)
        data = self._stream.read(want) if want else b""
        buffer[: len(data)] = data
        if self._left is not None:
            self._left -= len(data)
        return len(data)


class ReadEvents(beam.PTransform):
    """Files -> LineBatches (JSONL) and Batches of (arrival, Event) (CSV,
    Avro), plus a DEAD_LETTERS output for the rows that are no event."""

    def __init__(self, paths: List[str], strict_event_types: bool = False, shard_bytes: int = SHARD_BYTES):
        super().__init__()
        self._paths = paths
        self._strict = strict_event_types
        self._shard_bytes = shard_bytes

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(self._paths)
            | "PlanShards" >> beam.ParDo(_PlanShards(self._shard_bytes))
            | "SpreadShards" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadShard(self._strict)).with_output_types(Batch).with_outputs(
                DEAD_LETTERS, main="events"))
