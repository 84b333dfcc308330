"""Reading JSONL/CSV lines (transforms/read.py), without a pipeline: line
numbers, blank lines, line endings and shard boundaries."""
import gzip
import os
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.read import Shard, _lines, _PlanShards


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


def sharded_lines(path, shard_bytes, read_block=16 * 1024 * 1024):
    return [line for shard in _PlanShards(shard_bytes, read_block).process(path) for line in _lines(shard)]


MIXED = b'{"a":1}\n\n  \t\n{"b":2}\r\n{"c":3}\r\r\n\r\nd\re\n\x0c\nlast'


def test_numbers_count_blank_lines_and_line_endings_are_dropped(tmp_path):
    path = write(str(tmp_path / "day.jsonl"), MIXED)
    assert list(_lines(Shard(path, 0, None, 1))) == [
        (1, b'{"a":1}'), (4, b'{"b":2}'), (5, b'{"c":3}'), (7, b"d\re"), (9, b"last")]


def test_a_gzipped_file_reads_as_the_plain_one(tmp_path):
    plain = write(str(tmp_path / "day.jsonl"), MIXED)
    packed = write(str(tmp_path / "day.jsonl.gz"), MIXED)
    assert list(_lines(Shard(packed, 0, None, 1))) == list(_lines(Shard(plain, 0, None, 1)))


def test_a_shard_reads_only_its_byte_range(tmp_path):
    path = write(str(tmp_path / "day.jsonl"), b"one\ntwo\nthree\nfour")
    assert list(_lines(Shard(path, 4, 14, 2))) == [(2, b"two"), (3, b"three")]
    assert list(_lines(Shard(path, 14, None, 4))) == [(4, b"four")]


def test_empty_and_blank_files_have_no_lines(tmp_path):
    for name, data in (("empty.jsonl", b""), ("blank.jsonl", b"\n\r\n \n")):
        assert list(_lines(Shard(write(str(tmp_path / name), data), 0, None, 1))) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"x", b"{}", b" ", b"\t", b"\r", b"\n", b"\n", b"\r\n"]), max_size=80).map(b"".join),
       st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=50))
def test_shards_together_read_the_whole_file(data, shard_bytes, read_block):
    """Whatever the shard size and wherever the scan's reads end (a shard's
    newline in the next block, several cuts in one block)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write(os.path.join(tmp, "day.jsonl"), data)
        assert sharded_lines(path, shard_bytes, read_block) == reference_lines(data)


def test_a_csv_file_is_cut_after_its_header_and_every_shard_keeps_it(tmp_path):
    path = write(str(tmp_path / "day.csv"), b"user_id,event_id\n" + b"".join(b"u%d,e%d\n" % (i, i) for i in range(50)))
    shards = list(_PlanShards(40, 16).process(path))
    assert len(shards) > 3
    assert {shard.header for shard in shards} == {b"user_id,event_id\n"}
    assert shards[0].start == len(b"user_id,event_id\n") and shards[0].first_line == 2
    assert [line for shard in shards for line in _lines(shard)] == [
        (n + 2, b"u%d,e%d" % (n, n)) for n in range(50)]


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
    import apache_beam as beam
    import transforms.read as read
    from transforms.batches import Batch
    monkeypatch.setattr(read, "BATCH_EVENTS", 2)
    rows = ["event_id,user_id,event_type,occurred_at,game_id,bet_amount"] + [
        f"e{n},u1,bet,{1767731000000 + n},G,{'x' if n % 2 else '1'}" for n in range(6)]
    path = write(str(tmp_path / "day.csv.gz"), ("\n".join(rows) + "\n").encode())
    fn = read._ReadShard(False)
    fn.setup()
    (shard,) = _PlanShards(1 << 20).process(path)
    out = [("dead", o.value.line) if isinstance(o, beam.pvalue.TaggedOutput) else ("events", [a[1] for a, _ in o])
           for o in fn.process(shard)]
    assert all(isinstance(o, Batch) for o in fn.process(shard) if not isinstance(o, beam.pvalue.TaggedOutput))
    assert out == [("events", [2]), ("dead", 3), ("events", [4]), ("dead", 5), ("events", [6]), ("dead", 7)]
