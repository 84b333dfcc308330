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
  of input each), and each batch leaves as one segment per bucket: a few
  thousand elements for a million events, where one element per event is
  what makes naive Beam sessions slow.
- A JSONL line crosses as the bytes it was, with the user_id that routed it
  (`line_user_id`), and is parsed in its bucket, where it is sessionized:
  decoded once, with no Events to encode and decode again (that was a sixth
  of a replay's CPU). The bucket parses one user's lines at a time, so its
  Events are never all in memory at once. A bucket's dead letters leave from
  there. Events parsed before the shuffle (CSV, Avro) cross as columns of
  primitives.
- The DirectRunner holds a batch shuffle in its own memory, so there the
  segments are spilled to local files and only their addresses are shuffled;
  a bucket's events are in memory only while that bucket is sessionized.
  Spilled segments are not compressed: they go through the page cache and
  are read back within the run, and compressing them cost about 1 us an
  event, a tenth of a 2-worker replay's CPU (temporary disk about the size
  of the uncompressed input instead of a quarter of it, removed when the
  run ends).
  Runners with a real shuffle (Dataflow, Flink) carry the segments inline,
  compressed (zlib, fastest level): those bytes cross the network.
- A bucket's results leave as one list, so its files are written without
  another shuffle (transforms/write.py).
- Locally the workers claim the buckets as they go instead of taking the
  runner's fixed share of them (BucketPlan, transforms/claims.py), so a
  worker is never idle while buckets are left.
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
from typing import Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes, FileMetadata

from sessions.events import Event
from sessions.sessionizer import GameSwitch, first_copies, sessionize
from transforms.batches import Batch
from transforms.claims import WorkClaims
from sessions.triggers import TriggerRule
from transforms.counters import SessionCounters
from transforms.read import DEAD_LETTERS, EventParser, LineBatch, line_user_id
from transforms.triggers import TriggerFiring
from transforms.worker import tune_gc

BUCKET_INPUT_BYTES = 16 * 1024 * 1024
# Rough inflation of compressed and binary inputs, only to size the buckets.
_EXPANSION = {CompressionTypes.UNCOMPRESSED: 1, CompressionTypes.GZIP: 8, CompressionTypes.BZIP2: 10,
              CompressionTypes.ZSTD: 8, CompressionTypes.DEFLATE: 8}
_AVRO_EXPANSION = 3

class SpilledSegment(NamedTuple):
    """Where a spilled segment's bytes are: a range of a local file."""
    path: str
    offset: int
    length: int


Segment = Union[bytes, SpilledSegment]

# What crosses the GroupByKey, one value per batch and key: (None,
# ((bucket, part, compressed segment), ...)) inline, or (spill file,
# ((bucket, part, offset, length), ...)): tuples of primitives, which Beam
# encodes without pickling (a dataclass per segment was pickled, and a local
# run gives every worker every segment's address).
SegmentsOfBatch = Tuple[Optional[str], Tuple[tuple, ...]]


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


def user_hash(user_id: str) -> int:
    """What places a user in a bucket (BucketPlan.place): stable across
    processes and runs (str hash() is salted per process)."""
    return zlib.crc32(user_id.encode("utf-8"))


# The last buckets a local run's workers claim are cut in this many parts.
PARTS_OF_LAST_BUCKETS = 2


@dataclass(frozen=True)
class BucketPlan:
    """How the user buckets are grouped and closed.

    `workers` None: a GroupByKey key per bucket, for runners whose shuffle
    spreads keys over their workers (Flink, Dataflow). A number (a local
    run, its segments spilled to local files): a key per worker, each with
    every bucket's segments, and the workers claim the work as they go
    (transforms/claims.py): whole buckets, largest first, then the last
    `workers` buckets in parts, each bucket joined again by the worker that
    closes its last part. Either way a bucket's results leave as one list,
    so its files are the same."""
    buckets: int
    workers: Optional[int] = None

    def __post_init__(self):
        if self.buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {self.buckets}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    @property
    def parts(self) -> int:
        """Parts a bucket's users are placed in."""
        return 1 if self.workers is None else PARTS_OF_LAST_BUCKETS

    def place(self, user_hash: int) -> Tuple[int, int]:
        """(bucket, part) of a user, or of a line with no user, by its hash."""
        return user_hash % self.buckets, (user_hash // self.buckets) % self.parts

    def keys(self, bucket: int) -> Sequence[int]:
        """The GroupByKey keys a segment of the bucket goes to."""
        return (bucket,) if self.workers is None else range(self.workers)

    def units(self, bucket_sizes: Mapping[int, int]) -> List[Tuple[int, Tuple[int, ...]]]:
        """The buckets present (their segments' bytes) -> the order they are
        closed or claimed in: (bucket, the parts closed together)."""
        every = tuple(range(self.parts))
        if self.workers is None:
            return [(bucket, every) for bucket in sorted(bucket_sizes)]
        largest_first = sorted(bucket_sizes, key=lambda bucket: (-bucket_sizes[bucket], bucket))
        whole = len(largest_first) - (min(self.workers, len(largest_first)) if self.workers > 1 else 0)
        return ([(bucket, every) for bucket in largest_first[:whole]]
                + [(bucket, (part,)) for bucket in largest_first[whole:] for part in every])


# marshal's version 2 writes no back-references: faster to write than the
# default, and the columns compress about as well without them.
_MARSHAL_VERSION = 2
_EVENTS, _LINES = 0, 1  # what a segment holds


def encode_segment(items: Sequence[Tuple[Tuple[str, int], Event]]) -> bytes:
    """(arrival, Event)s -> columns of primitives: marshal is the cheapest
    serializer of str/int/None, and columns compress best. A batch comes
    from one shard, so its file names are stored once and indexed."""
    files, positions, events = [], [], []
    for (file, position), event in items:
        files.append(file)
        positions.append(position)
        events.append(event)
    file_names = list(dict.fromkeys(files))
    file_index = None
    if len(file_names) > 1:
        position = {name: i for i, name in enumerate(file_names)}
        file_index = [position[name] for name in files]
    columns = list(zip(*events))
    columns[6] = [None if stake is None else str(stake) for stake in columns[6]]
    columns[7] = [None if payout is None else str(payout) for payout in columns[7]]
    return marshal.dumps((_EVENTS, file_names, file_index, positions, *columns), _MARSHAL_VERSION)


def encode_lines(path: str, positions: Sequence[int], lines: Sequence[bytes], users: Sequence[Optional[str]],
                 user_index: Sequence[int]) -> bytes:
    """JSONL lines of one file, their positions (transforms/read.py) and
    their users (`users`, the distinct ones, None for a line that is no
    event; `user_index`, a line's user in it) -> a segment of the lines as
    they were."""
    return marshal.dumps((_LINES, [path], None, positions, lines, users, user_index), _MARSHAL_VERSION)


def inline_segment(data: bytes) -> bytes:
    """A segment as it crosses a runner's shuffle: compressed."""
    return zlib.compress(data, 1)


def decode_segment(data: bytes) -> Tuple[bool, Iterable[tuple]]:
    """(whether the segment holds lines, its rows): (user_id, arrival, line)
    for JSONL lines to parse, (arrival, Event) otherwise, the Events built
    column-wise: each distinct amount string becomes a Decimal once, and the
    Events are made in C."""
    kind, file_names, file_index, positions, *columns = marshal.loads(data)
    files = (file_names[:1] * len(positions) if file_index is None
             else list(map(file_names.__getitem__, file_index)))
    arrivals = zip(files, positions)
    if kind == _LINES:
        raws, users, user_index = columns
        return True, zip(map(users.__getitem__, user_index), arrivals, raws)
    decimals = {None: None}
    for amounts in (columns[6], columns[7]):
        for text in set(amounts).difference(decimals):
            decimals[text] = Decimal(text)
    columns[6] = list(map(decimals.__getitem__, columns[6]))
    columns[7] = list(map(decimals.__getitem__, columns[7]))
    return False, zip(arrivals, map(_make_event, zip(*columns)))


_make_event = functools.partial(tuple.__new__, Event)  # Event(*fields) without its Python __new__


class _SegmentByBucket(beam.DoFn):
    """One batch of (arrival, Event) or LineBatch -> a segment per part of a
    user bucket in it (BucketPlan), spilled to a file under `spill_dir` when
    one is given, and a (key, SegmentsOfBatch) per key they go to."""

    # Users whose place is remembered (a dict lookup instead of a CRC).
    _KNOWN_USERS = 1 << 16

    def __init__(self, plan: BucketPlan, spill_dir: Optional[str], strict_event_types: bool = False):
        self._plan = plan
        self._spill_dir = spill_dir
        self._strict = strict_event_types
        self._user_places = {}

    def setup(self):
        tune_gc()

    def process(self, batch) -> Iterable[Tuple[int, SegmentsOfBatch]]:
        if not batch:
            return
        if isinstance(batch, LineBatch):
            by_place = defaultdict(lambda: ([], [], {}, []))
            for position, raw in zip(batch.positions, batch):
                user_id = line_user_id(raw, self._strict)
                # A line that is no event can leave its dead letter from any bucket.
                place = self._plan.place(zlib.crc32(raw)) if user_id is None else self._place_of_user(user_id)
                positions, lines, users, user_index = by_place[place]
                positions.append(position)
                lines.append(raw)
                user_index.append(users.setdefault(user_id, len(users)))
            encoded = ((place, encode_lines(batch.path, positions, lines, list(users), user_index))
                       for place, (positions, lines, users, user_index) in sorted(by_place.items()))
            first_arrival = batch.path, batch.positions[0]
        else:
            by_place = defaultdict(list)
            for arrival_event in batch:
                by_place[self._place_of_user(arrival_event[1].user_id)].append(arrival_event)
            encoded = ((place, encode_segment(items)) for place, items in sorted(by_place.items()))
            first_arrival = batch[0][0]
        by_key = defaultdict(list)
        if self._spill_dir is None:
            path = None
            for (bucket, part), data in encoded:
                for key in self._plan.keys(bucket):
                    by_key[key].append((bucket, part, inline_segment(data)))
        else:
            segments = list(encoded)
            # Named by the batch's first arrival: a retried bundle rewrites the same file.
            name = hashlib.sha1("{}\n{}".format(*first_arrival).encode("utf-8", "surrogateescape")).hexdigest()
            path = os.path.join(self._spill_dir, f"{name}.segments")
            os.makedirs(self._spill_dir, exist_ok=True)
            offset = 0
            with open(path, "wb") as f:
                for (bucket, part), data in segments:
                    f.write(data)
                    for key in self._plan.keys(bucket):
                        by_key[key].append((bucket, part, offset, len(data)))
                    offset += len(data)
        for key, entries in by_key.items():
            yield key, (path, tuple(entries))

    def _place_of_user(self, user_id: str) -> Tuple[int, int]:
        place = self._user_places.get(user_id)
        if place is None:
            if len(self._user_places) >= self._KNOWN_USERS:
                self._user_places.clear()
            place = self._user_places[user_id] = self._plan.place(user_hash(user_id))
        return place


def _segment_bytes(segment: Segment) -> bytes:
    if isinstance(segment, bytes):
        return zlib.decompress(segment)
    with open(segment.path, "rb") as f:
        f.seek(segment.offset)
        return f.read(segment.length)


# Tag of _CloseBucket's output with one None per element closed: the spill
# can go once every element is.
CLOSED = "closed"


class _CloseBucket(beam.DoFn):
    """Segments of user buckets -> per bucket, the list of its users'
    sessions' game switches and ends, computed by the shared pure rules, each
    with the delay a perfect live run would have (SPEC §3.1, §3.2), and the
    campaign triggers they fire (SPEC §7). Its lines' dead letters go to the
    DEAD_LETTERS output.

    With `claims_dir` (a local run's BucketPlan with workers), the buckets
    are the work every worker is given, and this closes only what it claims
    there."""

    def __init__(self, gap_ms: int, trigger_rules: Sequence[TriggerRule] = (), strict_event_types: bool = False,
                 plan: Optional[BucketPlan] = None, claims_dir: Optional[str] = None):
        self._gap_ms = gap_ms
        self._trigger_rules = tuple(trigger_rules)
        self._strict = strict_event_types
        self._plan = plan or BucketPlan(1)
        self._claims_dir = claims_dir

    def setup(self):
        tune_gc()
        self._counters = SessionCounters()
        self._parser = EventParser(self._strict)
        self._triggers = TriggerFiring(self._trigger_rules) if self._trigger_rules else None
        self._claims = WorkClaims(self._claims_dir) if self._claims_dir else None

    def process(self, keyed_segments):
        _, batches = keyed_segments
        segments = defaultdict(list)
        bucket_sizes = defaultdict(int)
        for path, entries in batches:
            for bucket, part, *where in entries:
                segment = where[0] if path is None else SpilledSegment(path, *where)
                segments[bucket, part].append(segment)
                bucket_sizes[bucket] += segment.length if path else len(segment)
        # A bucket (or part) at a time: only its events and results are ever in memory.
        for bucket, parts in self._plan.units(bucket_sizes):
            if self._claims is not None and not self._claims.claim(".".join(map(str, (bucket, *parts)))):
                continue
            yield from self._close(bucket, parts, [s for part in parts for s in segments.pop((bucket, part), ())])
        yield beam.pvalue.TaggedOutput(CLOSED, None)

    def _close(self, bucket: int, parts: Tuple[int, ...], segments: List[Segment]):
        """Parts of one bucket: their lines' dead letters, and the bucket's
        list of results once every part of it is closed."""
        by_user = defaultdict(list)  # (arrival, Event)s parsed before the shuffle
        lines_by_user = defaultdict(list)  # (arrival, line)s, parsed one user at a time
        for segment in segments:
            lines, rows = decode_segment(_segment_bytes(segment))
            if lines:
                for user_id, arrival, raw in rows:
                    lines_by_user[user_id].append((arrival, raw))
            else:
                for arrival_event in rows:
                    by_user[arrival_event[1][0]].append(arrival_event)
        dead_letters = []
        # Lines with no user are no event (dead letters, ignored types).
        for arrival_event in self._parser.line_events(lines_by_user.pop(None, ()), dead_letters):
            by_user[arrival_event[1][0]].append(arrival_event)
        results = Batch()
        # A user's lines become Events only when the user is sessionized: a
        # bucket's Events are never all in memory at once (the memory they
        # took cost more in page faults than parsing them).
        for user_id in [*lines_by_user, *(user for user in by_user if user not in lines_by_user)]:
            arrivals_events = by_user.pop(user_id, [])
            arrivals_events.extend(self._parser.line_events(lines_by_user.pop(user_id, ()), dead_letters))
            events, duplicates = first_copies(arrivals_events)
            self._counters.used.inc(len(events))
            self._counters.duplicates.inc(duplicates)
            emitted = list(self._counters.emitted(sessionize(user_id, events, self._gap_ms), self._delay))
            results.extend(emitted)
            if self._triggers is not None:
                results.extend(self._triggers.fire(emitted, cooldowns={}))
        for dead_letter in dead_letters:
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter)
        if len(parts) < self._plan.parts:
            results = self._claims.join(bucket, parts[0], self._plan.parts, results)
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


class ReplayOutputs(NamedTuple):
    sessions: beam.PCollection  # lists of SessionEvents and trigger Firings, one per user bucket
    dead_letters: beam.PCollection  # the lines' DeadLetters


class ReplaySessions(beam.PTransform):
    """LineBatches and Batches of (arrival, Event) -> lists of SessionEvents
    and trigger Firings, one list per user bucket, and the dead letters of
    the lines, with their positions for transforms.read.LineNumbers to number
    (ReplayOutputs).

    `spill_dir`: a local folder, unique to the run, for the segments between
    reading and sessionizing (DirectRunner); removed once every bucket is
    closed. None: the runner's shuffle carries them.
    `workers`: the local worker processes that claim the buckets as they go
    (BucketPlan; needs `spill_dir`). None: a key per bucket, for the runner
    to spread."""

    def __init__(self, gap_seconds: int, buckets: int = 1, spill_dir: Optional[str] = None,
                 trigger_rules: Sequence[TriggerRule] = (), strict_event_types: bool = False,
                 workers: Optional[int] = None):
        super().__init__()
        if workers is not None and spill_dir is None:
            raise ValueError("workers claim their buckets in the spill folder: give spill_dir too")
        self._gap_seconds = gap_seconds
        self._plan = BucketPlan(buckets, workers)
        self._spill_dir = spill_dir
        self._trigger_rules = tuple(trigger_rules)
        self._strict = strict_event_types

    def expand(self, batches):
        claims_dir = os.path.join(self._spill_dir, "claims") if self._plan.workers is not None else None
        closed = (
            batches
            | "SegmentByBucket" >> beam.ParDo(_SegmentByBucket(self._plan, self._spill_dir, self._strict))
            | "GroupByBucket" >> beam.GroupByKey()
            | "CloseBuckets" >> beam.ParDo(_CloseBucket(self._gap_seconds * 1000, self._trigger_rules, self._strict,
                                                        self._plan, claims_dir))
            .with_output_types(Batch).with_outputs(DEAD_LETTERS, CLOSED, main="sessions"))
        if self._spill_dir is not None:
            # One group of a None per closed element: it exists once all are.
            _ = (closed[CLOSED]
                 | "Closed" >> beam.Map(lambda _: (None, None))
                 | "AllBucketsClosed" >> beam.GroupByKey()
                 | "RemoveSpill" >> beam.ParDo(_RemoveSpill(self._spill_dir)))
        return ReplayOutputs(closed.sessions, closed[DEAD_LETTERS])
