"""Replay sessions: every user's events grouped once, cut by the shared rules.

The sessions of SPEC §2 are what Beam's `Sessions(gap)` windows would give if
every bet had the window [t, t + gap) and every win or rollback a 1 ms point
window [t, t + 1 ms): bets merge when less than `gap` apart, and a non-bet
joins the session with start <= t < end + gap without stretching it. The
replay computes exactly that, but lets the shared `Sessionizer` do the cutting
after one GroupByKey in the global window, instead of leaving the merge to
the runner:
- Flink's batch runner merges session windows by sorting them on their end
  (`SortingFlinkCombineRunner`, apache/beam#14120), which is only right when
  every window has the same length; windows pre-merged per worker do not, and
  sessions came out split on Flink with --parallelism=2.
- The same rules then run unchanged in replay and live (transforms/live.py),
  and duplicates are found across a user's whole input, not within one window.

What crosses the shuffle is sized for speed and flat memory:
- Users are hashed into a fixed number of buckets (about `BUCKET_INPUT_BYTES`
  of input each), and each parsed batch leaves as one columnar segment per
  bucket: a few thousand elements for a million events, where one element
  per event is what makes naive Beam sessions slow.
- The DirectRunner holds a batch shuffle in its own memory, so there the
  segments are spilled to local files and only their addresses are shuffled;
  a bucket's events are in memory only while that bucket is sessionized.
  Spilled segments are not compressed: they go through the page cache and
  are read back within the run, and compressing them cost about 1 us an
  event, a tenth of a 2-worker replay's CPU (~130 bytes an event of
  temporary disk instead of ~30, removed when the run ends).
  Runners with a real shuffle (Dataflow, Flink) carry the segments inline,
  compressed (zlib, fastest level): those bytes cross the network.
- A bucket's results leave as one list, so its files are written without
  another shuffle (transforms/write.py).
"""
import functools
import hashlib
import math
import marshal
import os
import shutil
import zlib
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Optional, Sequence, Tuple, Union

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes, FileMetadata

from sessions.events import Event
from sessions.sessionizer import GameSwitch, first_copies, sessionize
from transforms.batches import Batch
from sessions.triggers import TriggerRule
from transforms.counters import SessionCounters
from transforms.triggers import TriggerFiring
from transforms.worker import tune_gc

BUCKET_INPUT_BYTES = 16 * 1024 * 1024
# Rough inflation of compressed and binary inputs, only to size the buckets.
_EXPANSION = {CompressionTypes.UNCOMPRESSED: 1, CompressionTypes.GZIP: 8, CompressionTypes.BZIP2: 10,
              CompressionTypes.ZSTD: 8, CompressionTypes.DEFLATE: 8}
_AVRO_EXPANSION = 3

@dataclass(frozen=True)
class SpilledSegment:
    """Where a spilled segment's bytes are: a range of a local file."""
    path: str
    offset: int
    length: int


Segment = Union[bytes, SpilledSegment]


def user_buckets(files: Sequence[FileMetadata]) -> int:
    """How many user buckets a replay of these files uses: about one per
    BUCKET_INPUT_BYTES of (uncompressed) input."""
    total = 0
    for file in files:
        expansion = _EXPANSION.get(CompressionTypes.detect_compression_type(file.path), 1)
        if file.path.lower().endswith(".avro"):
            expansion = _AVRO_EXPANSION
        total += file.size_in_bytes * expansion
    return max(1, math.ceil(total / BUCKET_INPUT_BYTES))


def bucket_of(user_id: str, buckets: int) -> int:
    """Stable across processes and runs (str hash() is salted per process)."""
    return zlib.crc32(user_id.encode("utf-8")) % buckets


# marshal's version 2 writes no back-references: faster to write than the
# default, and the columns compress about as well without them.
_MARSHAL_VERSION = 2


def encode_segment(items: Sequence[Tuple[Tuple[str, int], Event]]) -> bytes:
    """(arrival, Event)s -> compressed columns of primitives: marshal is the
    cheapest serializer of str/int/None, and columns compress best. A batch
    comes from one shard, so its file names are stored once and indexed."""
    files, lines, events = [], [], []
    for (file, line), event in items:
        files.append(file)
        lines.append(line)
        events.append(event)
    file_names = list(dict.fromkeys(files))
    file_index = None
    if len(file_names) > 1:
        position = {name: i for i, name in enumerate(file_names)}
        file_index = [position[name] for name in files]
    columns = list(zip(*events))
    columns[6] = [None if stake is None else str(stake) for stake in columns[6]]
    columns[7] = [None if payout is None else str(payout) for payout in columns[7]]
    return marshal.dumps((file_names, file_index, lines, *columns), _MARSHAL_VERSION)


def inline_segment(items: Sequence[Tuple[Tuple[str, int], Event]]) -> bytes:
    """A segment as it crosses a runner's shuffle: compressed."""
    return zlib.compress(encode_segment(items), 1)


def decode_events(data: bytes) -> Iterable[Tuple[Tuple[str, int], Event]]:
    """The (arrival, Event)s of a segment, built column-wise: each distinct
    amount string becomes a Decimal once, and the Events are made in C."""
    file_names, file_index, lines, *columns = marshal.loads(data)
    files = (file_names[:1] * len(lines) if file_index is None
             else list(map(file_names.__getitem__, file_index)))
    decimals = {None: None}
    for amounts in (columns[6], columns[7]):
        for text in set(amounts).difference(decimals):
            decimals[text] = Decimal(text)
    columns[6] = list(map(decimals.__getitem__, columns[6]))
    columns[7] = list(map(decimals.__getitem__, columns[7]))
    return zip(zip(files, lines), map(_make_event, zip(*columns)))


_make_event = functools.partial(tuple.__new__, Event)  # Event(*fields) without its Python __new__


class _SegmentByBucket(beam.DoFn):
    """One batch of (arrival, Event) -> one (bucket, segment) per user bucket
    in it; spilled to a file under `spill_dir` when one is given."""

    def __init__(self, buckets: int, spill_dir: Optional[str]):
        self._buckets = buckets
        self._spill_dir = spill_dir

    def setup(self):
        tune_gc()

    def process(self, batch) -> Iterable[Tuple[int, Segment]]:
        if not batch:
            return
        by_bucket = defaultdict(list)
        for arrival_event in batch:
            by_bucket[bucket_of(arrival_event[1].user_id, self._buckets)].append(arrival_event)
        if self._spill_dir is None:
            for bucket, items in sorted(by_bucket.items()):
                yield bucket, inline_segment(items)
            return
        segments = [(bucket, encode_segment(items)) for bucket, items in sorted(by_bucket.items())]
        # Named by the batch's first arrival: a retried bundle rewrites the same file.
        first_file, first_line = batch[0][0]
        name = hashlib.sha1(f"{first_file}\n{first_line}".encode("utf-8", "surrogateescape")).hexdigest()
        path = os.path.join(self._spill_dir, f"{name}.segments")
        os.makedirs(self._spill_dir, exist_ok=True)
        offset = 0
        with open(path, "wb") as f:
            for bucket, data in segments:
                f.write(data)
                yield bucket, SpilledSegment(path, offset, len(data))
                offset += len(data)


def _segment_bytes(segment: Segment) -> bytes:
    if isinstance(segment, bytes):
        return zlib.decompress(segment)
    with open(segment.path, "rb") as f:
        f.seek(segment.offset)
        return f.read(segment.length)


class _CloseBucket(beam.DoFn):
    """All events of a bucket's users -> the list of their sessions' game
    switches and ends, computed by the shared pure rules, each with the delay
    a perfect live run would have (SPEC §3.1, §3.2), and the campaign
    triggers they fire (SPEC §7)."""

    def __init__(self, gap_ms: int, trigger_rules: Sequence[TriggerRule] = ()):
        self._gap_ms = gap_ms
        self._trigger_rules = tuple(trigger_rules)

    def setup(self):
        tune_gc()
        self._counters = SessionCounters()
        self._triggers = TriggerFiring(self._trigger_rules) if self._trigger_rules else None

    def process(self, bucket_segments) -> Iterable[Batch]:
        _, segments = bucket_segments
        by_user = defaultdict(list)
        for segment in segments:
            for arrival_event in decode_events(_segment_bytes(segment)):
                by_user[arrival_event[1][0]].append(arrival_event)
        results = []
        for user_id, arrivals_events in by_user.items():
            events, duplicates = first_copies(arrivals_events)
            self._counters.used.inc(len(events))
            self._counters.duplicates.inc(duplicates)
            emitted = list(self._counters.emitted(sessionize(user_id, events, self._gap_ms), self._delay))
            results.extend(emitted)
            if self._triggers is not None:
                results.extend(self._triggers.fire(emitted, cooldowns={}))
        if results:
            yield Batch(results)

    @staticmethod
    def _delay(result) -> int:
        return 0 if isinstance(result, GameSwitch) else result.replay_delay_seconds


class _RemoveSpill(beam.DoFn):
    def __init__(self, spill_dir: str):
        self._spill_dir = spill_dir

    def process(self, _):
        shutil.rmtree(self._spill_dir, ignore_errors=True)


class ReplaySessions(beam.PTransform):
    """Batches of (arrival, Event) -> lists of SessionEvents and trigger
    Firings, one list per user bucket.

    `spill_dir`: a local folder, unique to the run, for the segments between
    parsing and sessionizing (DirectRunner); removed once every bucket is
    closed. None: the runner's shuffle carries them."""

    def __init__(self, gap_seconds: int, buckets: int = 1, spill_dir: Optional[str] = None,
                 trigger_rules: Sequence[TriggerRule] = ()):
        super().__init__()
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets}")
        self._gap_seconds = gap_seconds
        self._buckets = buckets
        self._spill_dir = spill_dir
        self._trigger_rules = tuple(trigger_rules)

    def expand(self, batches):
        results = (
            batches
            | "SegmentByBucket" >> beam.ParDo(_SegmentByBucket(self._buckets, self._spill_dir))
            | "GroupByBucket" >> beam.GroupByKey()
            | "CloseBuckets" >> beam.ParDo(_CloseBucket(self._gap_seconds * 1000, self._trigger_rules)).with_output_types(Batch))
        if self._spill_dir is not None:
            _ = (results
                 | "AllBucketsClosed" >> beam.combiners.Count.Globally()
                 | "RemoveSpill" >> beam.ParDo(_RemoveSpill(self._spill_dir)))
        return results

