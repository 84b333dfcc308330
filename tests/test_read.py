"""Reading JSONL/CSV lines (transforms/read.py), without a pipeline: shards
planned from sizes, line numbers, blank lines, line endings and shard
boundaries."""
import gzip
import os
import tempfile

import apache_beam as beam
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.dead_letters import DeadLetter
from transforms.read import (LINE_COUNTS, Shard, _NumberLines, _ReadShard, _ShardLines, first_lines, match_inputs,
                             plan_shards)


def reference_lines(data: bytes):
    """Every line counts for the numbering; blank ones are skipped; CRs
    before the newline (or the end) are dropped."""
    lines = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if line.strip():
            lines.append((number, line))
    return lines


def write(path, data: bytes):
    with (gzip.open(path, "wb") if path.endswith(".gz") else open(path, "wb")) as f:
        f.write(data)
    return path


def number(dead_letters, line_counts):
    """Dead letters with positions -> with line numbers (LineNumbers' DoFn)."""
    fn = _NumberLines()
    fn.start_bundle()
    return [numbered for dead_letter in dead_letters for numbered in fn.process(dead_letter, line_counts)]


def sharded_lines(path, shard_bytes):
    """Every shard's lines in shard order, as (line number, line): numbered
    the way a dead letter is, from their positions and the shards' counts;
    the positions must grow from line to line."""
    positioned, line_counts = [], []
    for shard in plan_shards(match_inputs([path]), shard_bytes):
        lines = _ShardLines(shard)
        positioned.extend(lines)
        line_counts.append((path, shard.start, lines.count))
    positions = [position for position, _ in positioned]
    assert positions == sorted(set(positions))
    dead_letters = [DeadLetter(raw, "r", "", path, position) for position, raw in positioned]
    return [(d.line, d.payload) for d in number(dead_letters, line_counts)]


MIXED = b'{"a":1}\n\n  \t\n{"b":2}\r\n{"c":3}\r\r\n\r\nd\re\n\x0c\nlast'


def test_numbers_count_blank_lines_and_line_endings_are_dropped(tmp_path):
    path = write(str(tmp_path / "day.jsonl"), MIXED)
    expected = [(1, b'{"a":1}'), (4, b'{"b":2}'), (5, b'{"c":3}'), (7, b"d\re"), (9, b"last")]
    assert sharded_lines(path, 1 << 20) == expected
    assert sharded_lines(path, 3) == expected


def test_a_gzipped_file_reads_as_the_plain_one(tmp_path):
    plain = write(str(tmp_path / "day.jsonl"), MIXED)
    packed = write(str(tmp_path / "day.jsonl.gz"), MIXED)
    (shard,) = plan_shards(match_inputs([packed]), 3)
    assert shard == Shard(packed, 0, None)
    assert list(_ShardLines(shard)) == list(_ShardLines(Shard(plain, 0, None)))


def test_shards_are_planned_from_the_size_alone(tmp_path):
    path = write(str(tmp_path / "day.jsonl"), b"x" * 10)
    empty = write(str(tmp_path / "empty.jsonl"), b"")
    assert plan_shards(match_inputs([path, empty]), 4) == [
        Shard(path, 0, 4), Shard(path, 4, 8), Shard(path, 8, None), Shard(empty, 0, None)]
    assert plan_shards(match_inputs([path]), 10) == [Shard(path, 0, None)]


def test_a_shard_reads_the_lines_that_start_in_its_byte_range(tmp_path):
    path = write(str(tmp_path / "day.jsonl"), b"one\ntwo\nthree\nfour")
    assert list(_ShardLines(Shard(path, 0, 4))) == [(0, b"one")]
    # From the first line start at or after its start, up to the last line
    # starting before its end, read whole.
    assert list(_ShardLines(Shard(path, 4, 14))) == [(4, b"two"), (5, b"three")]
    assert list(_ShardLines(Shard(path, 1, 9))) == [(1, b"two"), (2, b"three")]
    assert list(_ShardLines(Shard(path, 14, None))) == [(14, b"four")]
    # A shard inside one line has none.
    within = _ShardLines(Shard(path, 9, 12))
    assert list(within) == [] and within.count == 0


def test_a_last_line_longer_than_the_read_buffer_is_read_whole(tmp_path):
    long = b"x" * 3_000_000
    path = write(str(tmp_path / "day.jsonl"), b"a\n" + long + b"\r\nb\n")
    first = _ShardLines(Shard(path, 0, 10))
    assert list(first) == [(0, b"a"), (1, long)] and first.count == 2
    assert list(_ShardLines(Shard(path, 10, None))) == [(10, b"b")]


def test_a_shard_counts_its_blank_lines_too(tmp_path):
    path = write(str(tmp_path / "day.jsonl"), b"a\n\n \r\nb\n\n")
    lines = _ShardLines(Shard(path, 1, None))
    assert list(lines) == [(3, b"b")] and lines.count == 4


def test_empty_and_blank_files_have_no_lines(tmp_path):
    for name, data in (("empty.jsonl", b""), ("blank.jsonl", b"\n\r\n \n")):
        assert list(_ShardLines(Shard(write(str(tmp_path / name), data), 0, None))) == []


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"x", b"{}", b" ", b"\t", b"\r", b"\n", b"\n", b"\r\n"]), max_size=80).map(b"".join),
       st.integers(min_value=1, max_value=40))
def test_shards_together_read_every_line_once_in_order_with_its_number(data, shard_bytes):
    """Whatever the shard size and wherever a cut falls (in a line, on a
    newline, between CR and LF, in a run of blank lines, past the end)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write(os.path.join(tmp, "day.jsonl"), data)
        assert sharded_lines(path, shard_bytes) == reference_lines(data)


def test_line_numbers_follow_the_counts_of_the_shards_before():
    table = first_lines([("b", 0, 5), ("a", 8, 2), ("a", 0, 3), ("a", 16, 4)])
    assert table == {"a": ([0, 8, 16], [1, 4, 6]), "b": ([0], [1])}
    dead_letters = [DeadLetter(b"", "r", "", path, position)
                    for path, position in [("a", 0), ("a", 2), ("a", 8), ("a", 9), ("a", 16), ("a", 19), ("b", 4),
                                           ("c.avro", 0), ("c.avro", 6)]]
    counts = [("b", 0, 5), ("a", 8, 2), ("a", 0, 3), ("a", 16, 4)]
    assert [(d.file, d.line) for d in number(dead_letters, counts)] == [
        ("a", 1), ("a", 3), ("a", 4), ("a", 5), ("a", 6), ("a", 9), ("b", 5), ("c.avro", 1), ("c.avro", 7)]


def read_shards(path, shard_bytes):
    """Every output of reading every shard of `path`: (events, dead letters, line counts)."""
    fn = _ReadShard(False)
    fn.setup()
    events, dead_letters, line_counts = [], [], []
    for shard in plan_shards(match_inputs([path]), shard_bytes):
        for out in fn.process(shard):
            if not isinstance(out, beam.pvalue.TaggedOutput):
                events.extend(out)
            elif out.tag == LINE_COUNTS:
                line_counts.append(out.value)
            else:
                dead_letters.append(out.value)
    return events, dead_letters, line_counts


CSV_COLUMNS = b"event_id,user_id,event_type,occurred_at,game_id,bet_amount"


def test_every_csv_shard_keeps_the_header_and_rows_keep_their_line_numbers(tmp_path):
    rows = [b"e%d,u%d,bet,%d,G,1" % (n, n % 3, 1767731000000 + n) if n % 7 else b"e%d,short" % n
            for n in range(60)]
    data = CSV_COLUMNS + b"\r\n" + b"\r\n".join(rows[:30]) + b"\n\n" + b"\n".join(rows[30:])
    path = write(str(tmp_path / "day.csv"), data)
    shards = plan_shards(match_inputs([path]), 64)
    assert len(shards) > 3
    assert {shard.header for shard in shards} == {CSV_COLUMNS + b"\r\n"}
    events, dead_letters, line_counts = read_shards(path, 64)
    assert len(events) == 60 - 9
    assert sorted(position for (_, position), _ in events) == [position for (_, position), _ in events]
    # Row n is on line n + 2 before the blank line, n + 3 after it.
    assert [(d.line, d.payload, d.reason) for d in number(dead_letters, line_counts)] == [
        (n + 2 + (n >= 30), b"e%d,short" % n, "invalid_field") for n in range(0, 60, 7)]


def test_a_csv_file_whose_first_line_is_blank_keeps_it_as_its_header(tmp_path):
    """As before the shards were planned from sizes: the header is the first
    line, whatever it is."""
    path = write(str(tmp_path / "day.csv"), b"\n" + CSV_COLUMNS + b"\ne1,u,bet,1767731000000,G,1\n")
    events, dead_letters, line_counts = read_shards(path, 16)
    assert events == []
    assert [(d.line, d.reason) for d in number(dead_letters, line_counts)] == [(2, "invalid_field"),
                                                                               (3, "invalid_field")]


def test_a_csv_occurred_at_is_a_number_only_when_it_is_ascii_digits():
    from transforms.read import _typed_cells
    assert _typed_cells(["occurred_at"], ["1767731000000"]) == {"occurred_at": 1767731000000}
    assert _typed_cells(["occurred_at"], ["²"]) == {"occurred_at": "²"}
    assert _typed_cells(["occurred_at"], ["9" * 5000]) == {"occurred_at": "9" * 5000}


def test_a_deeply_nested_dead_letter_lookalike_is_left_as_it_is():
    from transforms.read import _unwrap_dead_letter
    raw = b'{"dead_letter_reason":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert _unwrap_dead_letter(raw) == raw


def test_a_csv_shards_events_and_dead_letters_leave_a_batch_at_a_time(tmp_path, monkeypatch):
    """A compressed file is one shard: its dead letters must not wait for its end."""
    import transforms.read as read
    from transforms.batches import Batch
    monkeypatch.setattr(read, "BATCH_EVENTS", 2)
    rows = ["event_id,user_id,event_type,occurred_at,game_id,bet_amount"] + [
        f"e{n},u1,bet,{1767731000000 + n},G,{'x' if n % 2 else '1'}" for n in range(6)]
    path = write(str(tmp_path / "day.csv.gz"), ("\n".join(rows) + "\n").encode())
    fn = read._ReadShard(False)
    fn.setup()
    (shard,) = plan_shards(match_inputs([path]), 1 << 20)
    out = [(o.tag, o.value if o.tag == LINE_COUNTS else o.value.line) if isinstance(o, beam.pvalue.TaggedOutput)
           else ("events", [a[1] for a, _ in o]) for o in fn.process(shard)]
    assert all(isinstance(o, Batch) for o in fn.process(shard) if not isinstance(o, beam.pvalue.TaggedOutput))
    # Positions (line numbers from 0), and the shard's count once it is read.
    assert out == [("events", [1]), ("dead_letters", 2), ("events", [3]), ("dead_letters", 4), ("events", [5]),
                   ("dead_letters", 6), ("line_counts", (path, 0, 7))]
