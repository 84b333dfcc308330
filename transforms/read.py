"""Reading historical event files (SPEC §5): JSONL (optionally gzipped), CSV
and Avro, local or on any Beam filesystem (gs://...), several globs.

Large uncompressed files are cut into byte ranges of about SHARD_BYTES, so
both workers read. The cuts are planned from the files' sizes alone, in the
job process (no worker reads a whole file before any can start), and each
shard finds its own line boundaries (Hadoop's TextInputFormat rule, `Shard`).

So no shard knows how many lines come before it: every record keeps its file
and its *position*, the shard's start byte plus the record's index in the
shard (every line counted, blank ones too). A shard has no more lines than
bytes, so positions grow with lines through a file: they order the records
as line numbers would, for the replay's duplicate rule (the first copy in
input order wins). Dead letters leave with the position in `line`, and
`LineNumbers` makes it the line number, from the line counts the shards
report (LINE_COUNTS): a small step over the few dead letters, after the
reading, instead of a count of every line before it. (An Avro file is one
shard: a record's position is its index.)

Records travel as batches, not one element each: per-element overhead is
what dominates a Python Beam job.

JSONL lines leave unparsed, as `LineBatch`es: whoever groups them parses
them there (`parse_line`; the replay parses a bucket's lines where it
sessionizes them), so a line is decoded once and crosses the shuffle as the
bytes it was, and needs only its user_id (`line_user_id`) to find its group.
CSV rows and Avro records leave parsed, as `Batch`es of (arrival, Event).
"""
import bisect
import csv
import functools
import io
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

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
LINE_COUNTS = "line_counts"
SHARD_BYTES = 4 * 1024 * 1024
BATCH_EVENTS = 16384
_DEAD_LETTER_PREFIX = b'{"dead_letter_reason"'

# (file, position): where an event was read, and its place in input order.
Arrival = Tuple[str, int]


class LineBatch(Batch):
    """JSONL lines of one shard (`path`), not parsed yet, and their positions
    (`positions`, in step): columns, with no tuple per line."""

    def __init__(self, path: str, positions: List[int], lines: List[bytes]):
        super().__init__(lines)
        self.path = path
        self.positions = positions


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
    """The bytes [start, end) of one file, planned without reading it. Its
    lines are those whose first byte is in the range: from the first line
    start at or after `start` (the byte after the first newline at or after
    start - 1, or 0), up to the last one before `end`, read whole even when
    it runs past `end`. So the shards of a file hold each of its lines once,
    wherever the cuts fall, and none has more lines than bytes."""
    path: str
    start: int
    end: Optional[int]  # None: to the end of the file
    header: Optional[bytes] = None  # an uncompressed CSV file's first line, which every shard needs


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


def plan_shards(files: Sequence[FileMetadata], shard_bytes: int = SHARD_BYTES) -> List[Shard]:
    """Cuts every uncompressed JSONL/CSV file into shards of `shard_bytes`
    from its size alone; a compressed or Avro file is one shard (it can only
    be read from its start). Of a CSV file only the header line is read."""
    shards = []
    for file in files:
        path = file.path
        fmt = file_format(path)
        if fmt == "avro" or CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
            shards.append(Shard(path, 0, None))
            continue
        header = None
        if fmt == "csv":
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                header = f.readline()
        starts = range(0, max(file.size_in_bytes, 1), shard_bytes)
        # The last shard reads to the end, wherever the size said it was.
        ends = [*starts[1:], None]
        shards.extend(Shard(path, start, end, header) for start, end in zip(starts, ends))
    return shards


class _ReadShard(beam.DoFn):
    """Reads one shard: a JSONL shard leaves as LineBatches, a CSV or Avro
    one as Batches of (arrival, Event) with its dead letters on the
    DEAD_LETTERS output. A shard read by lines then reports how many lines
    it had, blank ones included, on LINE_COUNTS: (path, shard start, count),
    which it knows for free once it has read them."""

    def __init__(self, strict_event_types: bool):
        self._strict = strict_event_types

    def setup(self):
        tune_gc()
        self._parser = EventParser(self._strict)

    def process(self, shard: Shard):
        fmt = file_format(shard.path)
        if fmt == "avro":
            yield from self._events(shard.path, self._avro_records(shard))
            return
        lines = _ShardLines(shard)
        if fmt == "jsonl":
            yield from self._line_batches(shard.path, lines)
        else:
            yield from self._events(shard.path, self._csv_records(shard, lines))
        yield beam.pvalue.TaggedOutput(LINE_COUNTS, (shard.path, shard.start, lines.count))

    def _events(self, path: str, positioned_records):
        records = (((path, position), raw, parse) for position, raw, parse in positioned_records)
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
    def _line_batches(path: str, lines: Iterable[Tuple[int, bytes]]) -> Iterable[LineBatch]:
        positions, raws = [], []
        for position, raw in lines:
            positions.append(position)
            raws.append(raw)
            if len(raws) >= BATCH_EVENTS:
                yield LineBatch(path, positions, raws)
                positions, raws = [], []
        if raws:
            yield LineBatch(path, positions, raws)

    def _csv_records(self, shard: Shard, lines: Iterable[Tuple[int, bytes]]):
        lines = iter(lines)
        header = shard.header
        if header is None:  # a compressed file, read from its start: its first non-blank line
            header = next((raw for _, raw in lines), b"")
        elif shard.start == 0:
            # The header is the file's first line (position 0) even if blank,
            # in which case it is not among the lines.
            lines = itertools.dropwhile(lambda position_raw: position_raw[0] == 0, lines)
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

        for position, raw in lines:
            yield position, raw, parse

    def _avro_records(self, shard: Shard):
        with FileSystems.open(shard.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for position, record in enumerate(fastavro.reader(f)):
                raw = json.dumps(record, default=str, ensure_ascii=False).encode("utf-8")
                yield position, raw, lambda _raw, record=record: validate_event(record, self._strict)


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


class _ShardLines:
    """(position, line) for a shard's non-blank lines, without their line
    endings; once iterated, `count` is how many lines the shard had, blank
    ones included."""

    def __init__(self, shard: Shard):
        self._shard = shard
        self.count = 0

    def __iter__(self) -> Iterator[Tuple[int, bytes]]:
        shard = self._shard
        # One of several shards of a file is a byte range of an uncompressed
        # file; a file in one shard may be compressed, and is read from its start.
        ranged = shard.start > 0 or shard.end is not None
        with FileSystems.open(shard.path,
                              compression_type=CompressionTypes.UNCOMPRESSED if ranged else CompressionTypes.AUTO) as f:
            start = _seek_line_start(f, shard.start)
            limit = None if shard.end is None else max(0, shard.end - start)
            stream = io.BufferedReader(_ToLineEnd(f, limit), buffer_size=1 << 20)
            position = shard.start - 1  # a shard with no line counts 0
            for position, line in enumerate(stream, start=shard.start):
                line = line.rstrip(b"\r\n")
                if line and not line.isspace():  # what strip() would leave empty, without copying the line
                    yield position, line
            self.count = position + 1 - shard.start


def _seek_line_start(f, offset: int) -> int:
    """Moves `f`, open at its start, to the first line start at or after
    `offset`, and returns it."""
    if offset:
        f.seek(offset - 1)
        f.readline()  # up to and including the first newline at or after offset - 1
    return f.tell()


class _ToLineEnd(io.RawIOBase):
    """A raw stream of another stream's next `limit` bytes (None: all of
    them) and then, if those end inside a line, the rest of that line: a
    shard's lines in one sequential read, with no seek ahead to find where
    its last line ends."""

    def __init__(self, stream, limit: Optional[int]):
        self._stream, self._left = stream, limit
        self._in_line = False  # the bytes given so far end inside a line

    def readable(self):
        return True

    def readinto(self, buffer):
        if self._left is None:
            data = self._stream.read(len(buffer))
        elif self._left:
            data = self._stream.read(min(len(buffer), self._left))
            self._left -= len(data)
            self._in_line = bool(data) and not data.endswith(b"\n")
        elif self._in_line:
            data = self._stream.readline(len(buffer))
            self._in_line = bool(data) and not data.endswith(b"\n")
        else:
            data = b""
        buffer[: len(data)] = data
        return len(data)


class ReadEvents(beam.PTransform):
    """Files (as match_inputs gives them) -> LineBatches (JSONL) and Batches
    of (arrival, Event) (CSV, Avro), plus a DEAD_LETTERS output for the rows
    that are no event and the LINE_COUNTS output that LineNumbers needs for
    them and for the lines' dead letters (made where the lines are parsed).

    The shards are planned here, while the graph is built: the first stage
    only hands them out (Create's own Reshuffle, for more than one)."""

    def __init__(self, files: Sequence[FileMetadata], strict_event_types: bool = False,
                 shard_bytes: int = SHARD_BYTES):
        super().__init__()
        self._files = list(files)
        self._strict = strict_event_types
        self._shard_bytes = shard_bytes

    def expand(self, pbegin):
        return (
            pbegin
            | "Shards" >> beam.Create(plan_shards(self._files, self._shard_bytes))
            | "Read" >> beam.ParDo(_ReadShard(self._strict)).with_output_types(Batch).with_outputs(
                DEAD_LETTERS, LINE_COUNTS, main="events"))


class LineNumbers(beam.PTransform):
    """Dead letters of ReadEvents' records, with a position in `line` -> the
    same with the line's number (from 1, blank lines counted), from the
    shards' LINE_COUNTS: a side input, complete once the reading is done."""

    def __init__(self, line_counts: beam.PCollection):
        super().__init__()
        self._line_counts = line_counts

    def expand(self, dead_letters):
        return dead_letters | beam.ParDo(_NumberLines(), beam.pvalue.AsList(self._line_counts))


class _NumberLines(beam.DoFn):
    def start_bundle(self):
        self._first_lines = None  # from the side input, once per bundle

    def process(self, dead_letter: DeadLetter, line_counts: List[Tuple[str, int, int]]):
        if self._first_lines is None:
            self._first_lines = first_lines(line_counts)
        # A file that reported no count (Avro) is one shard.
        starts, numbers = self._first_lines.get(dead_letter.file, ([0], [1]))
        position = dead_letter.line
        shard = bisect.bisect_right(starts, position) - 1
        yield replace(dead_letter, line=numbers[shard] + position - starts[shard])


def first_lines(line_counts: Iterable[Tuple[str, int, int]]) -> Dict[str, Tuple[List[int], List[int]]]:
    """(path, shard start, lines) of every shard read by lines -> per file,
    its shards' starts in order and the numbers of their first lines."""
    by_path = defaultdict(list)
    for path, start, count in line_counts:
        by_path[path].append((start, count))
    table = {}
    for path, shards in by_path.items():
        starts, numbers, number = [], [], 1
        for start, count in sorted(shards):
            starts.append(start)
            numbers.append(number)
            number += count
        table[path] = (starts, numbers)
    return table
