"""The replay job (SPEC §4, §5.1): Beam transforms and the CLI end to end."""
import csv
import filecmp
import gzip
import json
import os
import random
import zlib
from decimal import Decimal

import apache_beam as beam
import fastavro
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

import schemas
from pipelines.game_sessions import main
from sessions.events import parse_event
from tests.helpers import (CHANGED, DEAD, ENDED, avro_records, dumps, expected_from_lines, jsonl_records,
                           table_files, write_lines)
from tests.reference import canonical, dedupe, expected_records
from tools.generate_events import generate
from transforms.read import (DEAD_LETTERS, LINE_COUNTS, LineBatch, LineNumbers, ReadEvents, match_inputs,
                             plan_shards)
from transforms.batches import Batch, BatchCoder
from transforms.sessions import (CLOSED, BucketPlan, ReplaySessions, SpilledSegment, _CloseBucket,
                                 _SegmentByBucket, _segment_bytes, decode_segment, encode_lines,
                                 encode_segment, inline_segment, user_buckets, user_hash)

T0 = 1767731000000
GAP_MS = 300_000


def ev(i, t, kind="bet", user="u1", game="A", amount="1"):
    event = {"event_id": f"e{i}", "user_id": user, "event_type": kind, "occurred_at": T0 + t}
    if kind in ("bet", "win", "bet_win"):
        event["game_id"] = game
    event["win_amount" if kind == "win" else "bet_amount"] = amount
    return event


def replay(tmp_path, inputs, *extra, name="out"):
    out = str(tmp_path / name)
    code = main([*(f"--input={i}" for i in inputs), f"--output_dir={out}", *extra])
    assert code == 0
    return out


# --- transforms ------------------------------------------------------------

def test_read_events_keeps_file_and_line_across_shards_and_lines_are_parsed_in_their_bucket(tmp_path):
    path = str(tmp_path / "day.jsonl")
    lines = [dumps(ev(i, i * 1000, user=f"u{i % 7}")) for i in range(200)]
    lines[10] = '{"truncated'
    lines[20] = ""
    lines[30] = dumps({**ev(30, 0), "event_type": "login"})
    write_lines(path, lines)
    with BeamTestPipeline() as p:
        read = p | ReadEvents(match_inputs([path]), shard_bytes=500)
        read_lines = read.events | beam.FlatMap(lambda batch: [(batch.path, raw) for raw in batch])
        assert_that(read_lines, equal_to([(path, line.encode()) for line in lines if line]), label="lines")
        sessions = read.events | ReplaySessions(300, buckets=3)
        bets = sessions.sessions | beam.FlatMap(
            lambda batch: [e.result.metrics.bets_count for e in batch if e.table == ENDED])
        dead = (sessions.dead_letters | LineNumbers(read[LINE_COUNTS])
                | beam.Map(lambda d: (d.reason, d.file, d.line, d.payload)))
        assert_that(bets | beam.CombineGlobally(sum), equal_to([197]), label="bets")
        assert_that(dead, equal_to([("invalid_json", path, 11, b'{"truncated')]), label="dead")


def test_dead_letters_keep_their_line_numbers_and_first_copies_win_across_many_shards(tmp_path):
    """Shards of a few hundred bytes, cut anywhere: every dead letter has the
    number of its line as enumerating the file's lines gives it (blank lines,
    CRLF, no final newline, a CSV header, a gzipped and an Avro file), and of
    copies in different shards or files the first in input order is kept."""
    rng = random.Random(11)
    events, dead = [], []  # every event in input order; (file, line, reason, payload) expected

    def chunk(lines, path):
        """JSONL/CSV lines -> the file's bytes with random line endings and
        blank lines, no final newline; the expected dead letters noted."""
        data = b""
        for raw, reason in lines:
            for _ in range(rng.choice([0, 0, 0, 1, 2]) if data else 0):  # not before a CSV header
                data += rng.choice([b"\n", b"  \n", b"\r\n", b"\t\r\n"])
            if reason:
                dead.append((path, data.count(b"\n") + 1, reason, raw))
            data += raw + rng.choice([b"\n", b"\r\n"])
        return data.rstrip(b"\r\n")

    a, b, c, d = (str(tmp_path / name) for name in ("a.jsonl", "b.jsonl.gz", "c.csv", "d.avro"))
    day = [ev(i, i * 20_000, user=f"u{i % 5}", game="AB"[i // 7 % 2], amount=str(i % 9 + 1)) for i in range(300)]
    lines = []
    for i, event in enumerate(day):
        lines.append((dumps(event).encode(), None))
        events.append(event)
        if i % 17 == 3:
            lines.append((b'{"truncated %d' % i, "invalid_json"))
        if i % 29 == 5:
            # A later copy with another amount, several shards on: the first copy wins.
            lines.append((dumps({**day[i // 2], "bet_amount": "500"}).encode(), None))
    with open(a, "wb") as f:
        f.write(chunk(lines, a))
    with gzip.open(b, "wb") as f:
        f.write(chunk([(dumps({**day[1], "bet_amount": "600"}).encode(), None), (b"[]", "not_an_object"),
                       (dumps(ev(901, 1000, user="g")).encode(), None)], b))
    events.append(ev(901, 1000, user="g"))
    columns = ["event_id", "user_id", "event_type", "occurred_at", "game_id", "bet_amount"]
    rows = [(",".join(columns).encode(), None)]
    for i in range(40):
        event = ev(1000 + i, i * 30_000, user=f"c{i % 3}")
        if i % 6 == 2:
            rows.append((b"%d,short" % i, "invalid_field"))
        rows.append((",".join(str(event[k]) for k in columns).encode(), None))
        events.append(event)
    rows.append((",".join(str(v) for v in ev(5, 0, user="u0", amount="700").values()).encode(), None))
    with open(c, "wb") as f:
        f.write(chunk(rows, c))
    schema = {"type": "record", "name": "Event", "fields": [
        {"name": k, "type": ["null", "long" if k == "occurred_at" else "string"], "default": None} for k in columns]}
    records = [ev(2000, 0, user="v"), {**ev(2001, 1000, user="v"), "event_type": None}, ev(2002, 2000, user="v")]
    with open(d, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), records)
    dead.append((d, 2, "missing_field", json.dumps(records[1], ensure_ascii=False).encode()))
    events.extend([records[0], records[2]])
    ref_ended, ref_changed, _ = expected_records(dedupe([parse_event(dumps(e).encode()) for e in events]), GAP_MS)

    files = match_inputs([a, b, c, d])
    assert len(plan_shards(files, 256)) > 100
    with BeamTestPipeline() as p:
        read = p | ReadEvents(files, shard_bytes=256)
        sessions = read.events | ReplaySessions(300, buckets=3)
        numbered = ((read[DEAD_LETTERS], sessions.dead_letters) | beam.Flatten() | LineNumbers(read[LINE_COUNTS])
                    | beam.Map(lambda d: (d.file, d.line, d.reason, d.payload)))
        assert_that(numbered, equal_to(dead), label="dead letters")
        results = sessions.sessions | beam.FlatMap(
            lambda batch: [(e.table, json.dumps(e.record, default=str)) for e in batch])
        assert_that(results, _same_records([(ENDED, json.dumps(r, default=str)) for r in ref_ended] + [
            (CHANGED, json.dumps(r, default=str)) for r in ref_changed]), label="sessions")


def _rows(segment):
    return [(arrival, event.event_id) for arrival, event in decode_segment(_segment_bytes(segment))[1]]


def _bucket_of(user_id, buckets):
    bucket, _ = BucketPlan(buckets).place(user_hash(user_id))
    return bucket


def _segments(keyed):
    """_SegmentByBucket's (key, SegmentsOfBatch)s -> (key, bucket, part, segment)s."""
    return [(key, bucket, part, where[0] if path is None else SpilledSegment(path, *where))
            for key, (path, entries) in keyed for bucket, part, *where in entries]


def _inline(*segments):
    """Segments of bucket 0 as _CloseBucket's element."""
    return 0, [(None, tuple((0, 0, inline_segment(segment)) for segment in segments))]


def test_a_batch_leaves_as_one_segment_per_user_bucket():
    events = [parse_event(dumps(e).encode()) for e in
              [ev(1, 0), ev(2, 100_000, user="u4"), ev(3, 200_000, "win"), ev(4, GAP_MS * 3, user="u4")]]
    assert _bucket_of("u1", 2) != _bucket_of("u4", 2)
    out = _segments(_SegmentByBucket(BucketPlan(2), None).process([(("f", i), e) for i, e in enumerate(events)]))
    assert all(key == bucket and part == 0 for key, bucket, part, _ in out)  # a key per bucket
    assert sorted((bucket, _rows(segment)) for _, bucket, _, segment in out) == sorted([
        (_bucket_of("u1", 2), [(("f", 0), "e1"), (("f", 2), "e3")]),
        (_bucket_of("u4", 2), [(("f", 1), "e2"), (("f", 3), "e4")]),
    ])


def test_lines_go_to_their_users_bucket_unparsed_and_are_parsed_where_it_closes():
    raws = [dumps(e).encode() for e in [ev(1, 0), ev(2, 100_000, user="u4"), ev(3, 200_000, "win"),
                                        ev(4, 1000, game="B")]] + [b'{"truncated', b'{"event_type":"login"}']
    batch = LineBatch("day.jsonl", list(range(1, len(raws) + 1)), raws)
    fn = _SegmentByBucket(BucketPlan(2), None)
    fn.setup()
    out = list(fn.process(batch))
    routed = {bucket: decode_segment(_segment_bytes(segment)) for _, bucket, _, segment in _segments(out)}
    assert all(lines for lines, _ in routed.values())
    by_bucket = {bucket: [(user, arrival[1]) for user, arrival, _ in rows] for bucket, (_, rows) in routed.items()}
    assert {("u1", 1), ("u1", 3), ("u1", 4)} <= set(by_bucket[_bucket_of("u1", 2)])
    assert ("u4", 2) in by_bucket[_bucket_of("u4", 2)]
    # The truncated line and the login are no event: no user.
    assert sorted((n, user) for rows in by_bucket.values() for user, n in rows) == [
        (1, "u1"), (2, "u4"), (3, "u1"), (4, "u1"), (5, None), (6, None)]
    close = _CloseBucket(GAP_MS)
    close.setup()
    outputs = [o for key, placed in out for o in close.process((key, [placed]))]
    dead = [o.value for o in outputs if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == DEAD_LETTERS]
    assert [(d.reason, d.file, d.line, d.payload) for d in dead] == [("invalid_json", "day.jsonl", 5, b'{"truncated')]
    results = [r for o in outputs if isinstance(o, Batch) for r in o]
    assert sorted((r.result.user_id, type(r.result).__name__) for r in results) == [
        ("u1", "GameSwitch"), ("u1", "SessionEnd"), ("u4", "SessionEnd")]


def test_a_users_parsed_events_and_lines_meet_in_one_session():
    """CSV/Avro events cross parsed, JSONL lines unparsed: one user's of both
    kinds are sessionized together."""
    bet = parse_event(dumps(ev(1, 0)).encode())
    switch_line = dumps(ev(2, 1000, game="B")).encode()
    close = _CloseBucket(GAP_MS)
    close.setup()
    results, closed = close.process(_inline(encode_segment([(("a.csv", 2), bet)]),
                                            encode_lines("b.jsonl", [1], [switch_line], ["u1"], [0])))
    assert (closed.tag, closed.value) == (CLOSED, None)
    assert sorted((type(r.result).__name__, r.result.metrics.bets_count) for r in results) == [
        ("GameSwitch", 1), ("SessionEnd", 2)]


def test_a_segment_keeps_every_field_exactly():
    event = parse_event(dumps({**ev(1, 0, kind="bet_win"), "bet_bonus_amount": "0.000000001", "win_amount": "12.5",
                               "game_name": "Book of Dead", "platform": "ios", "client_version": "5.1",
                               "currency": "EUR"}).encode())
    lines, items = decode_segment(encode_segment([(("day.jsonl", 7), event)]))
    ((arrival, decoded),) = items
    assert not lines
    assert arrival == ("day.jsonl", 7)
    assert decoded == event
    assert (str(decoded.stake), str(decoded.payout)) == ("1.000000001", "12.5")


def test_a_segment_of_several_files_keeps_each_arrival():
    events = [parse_event(dumps(ev(i, i * 1000)).encode()) for i in range(4)]
    arrivals = [("b.jsonl", 1), ("a.jsonl", 1), ("b.jsonl", 2), ("c.jsonl", 9)]
    assert list(decode_segment(encode_segment(list(zip(arrivals, events))))[1]) == list(zip(arrivals, events))
    raws = [dumps(ev(i, i * 1000)).encode() for i in range(4)]
    lines, rows = decode_segment(encode_lines("b.jsonl", [3, 5, 8, 13], raws, ["u1", None], [0, 0, 1, 0]))
    assert lines and list(rows) == list(zip(["u1", "u1", None, "u1"], [("b.jsonl", n) for n in (3, 5, 8, 13)], raws))


def test_spilled_segments_are_addresses_in_one_file_per_batch(tmp_path):
    events = [parse_event(dumps(ev(i, i * 1000, user=f"u{i % 5}")).encode()) for i in range(40)]
    batch = [(("f", i), e) for i, e in enumerate(events)]
    inline = {key: segment for key, _, _, segment in _segments(_SegmentByBucket(BucketPlan(3), None).process(batch))}
    spilled = {key: segment for key, _, _, segment in
               _segments(_SegmentByBucket(BucketPlan(3), str(tmp_path / "spill")).process(batch))}
    assert set(spilled) == set(inline)
    assert len({segment.path for segment in spilled.values()}) == 1
    for key, segment in spilled.items():
        assert isinstance(segment, SpilledSegment)
        with open(segment.path, "rb") as f:
            f.seek(segment.offset)
            # Uncompressed in the file, compressed inline: the same columns.
            assert f.read(segment.length) == zlib.decompress(inline[key]) == _segment_bytes(segment)
        assert _rows(segment) == _rows(inline[key])


def test_copies_are_one_event_even_with_different_times_in_different_batches():
    """The first copy in input order wins, across the user's whole input."""
    first = parse_event(dumps(ev(1, 0)).encode())
    later_copy = parse_event(dumps(ev(1, GAP_MS * 2)).encode())
    with BeamTestPipeline() as p:
        sessions = ((p | beam.Create([[(("b", 9), later_copy)], [(("a", 1), first)]]) | ReplaySessions(300)).sessions
                    | beam.FlatMap(lambda batch: [(e.result.start, e.result.metrics.bets_count) for e in batch]))
        assert_that(sessions, equal_to([(T0, 1)]))


def test_close_bucket_counts_duplicates_and_applies_the_rules():
    bet = parse_event(dumps(ev(1, 0)).encode())
    switch = parse_event(dumps(ev(2, 1000, game="B")).encode())
    other = parse_event(dumps(ev(3, 0, user="u2")).encode())
    fn = _CloseBucket(GAP_MS)
    fn.setup()
    results, _ = fn.process(_inline(encode_segment([(("f", 2), bet), (("f", 3), switch), (("f", 4), other)]),
                                    encode_segment([(("f", 1), bet)])))
    assert isinstance(results, Batch)
    assert sorted((r.user_id, type(r).__name__, d) for r, d, _ in results) == [
        ("u1", "GameSwitch", 0), ("u1", "SessionEnd", 300), ("u2", "SessionEnd", 300)]


def test_close_bucket_fires_the_triggers_of_each_users_session_events():
    from sessions.triggers import load_rules
    bets = [parse_event(dumps(ev(n, n * 1000, game="AB"[n % 2], user=user)).encode())
            for user in ("u1", "u2") for n in range(1, 4)]
    fn = _CloseBucket(GAP_MS, load_rules("- {name: hop, on: gs_game_session_changed, when: 'true', cooldown_seconds: 60}"))
    fn.setup()
    results, _ = fn.process(_inline(encode_segment([(("f", n), e) for n, e in enumerate(bets)])))
    firings = [r for r in results if r.table == "campaign_trigger"]
    # Each player's second switch is in their cooldown; the other player's firing is not.
    assert sorted((f.user_id, f.trigger, f.fired_at) for f in firings) == [
        ("u1", "hop", T0 + 2000), ("u2", "hop", T0 + 2000)]


def test_a_batch_is_sized_from_its_length_not_by_pickling_it():
    """Beam samples emitted elements' sizes by encoding them: a pickled batch
    of thousands of events cost seconds per million events."""
    batch = Batch([(("f", n), parse_event(dumps(ev(n, n)).encode())) for n in range(1000)])
    coder = BatchCoder()
    assert coder.decode(coder.encode(batch)) == batch
    assert coder.get_impl().estimate_size(batch) < 250_000
    lines = LineBatch("day.jsonl", [4, 9], [b'{"a":1}', b'{"b":2}'])
    decoded = coder.decode(coder.encode(lines))
    assert (type(decoded), decoded.path, decoded.positions, list(decoded)) == (
        LineBatch, "day.jsonl", [4, 9], [b'{"a":1}', b'{"b":2}'])


def test_user_buckets_follow_the_input_size(tmp_path, monkeypatch):
    import transforms.sessions as replay_sessions
    monkeypatch.setattr(replay_sessions, "BUCKET_INPUT_BYTES", 1000)
    small, large, packed = tmp_path / "small.jsonl", tmp_path / "large.jsonl", tmp_path / "large.jsonl.gz"
    small.write_bytes(b"x" * 10)
    large.write_bytes(b"x" * 4500)
    packed.write_bytes(b"x" * 500)
    assert user_buckets(match_inputs([str(small)])) == 1
    assert user_buckets(match_inputs([str(large)])) == 5
    assert user_buckets(match_inputs([str(small), str(large)])) == 5
    assert user_buckets(match_inputs([str(packed)])) == 4


@pytest.mark.parametrize("buckets,spill,workers", [
    (1, False, None), (7, False, None), (7, True, None),
    # Local workers claiming the buckets, the last ones in parts: 7 buckets
    # for 2 workers, the only bucket for 2, 5 for 3, 3 for 1 (none cut).
    (7, True, 2), (1, True, 2), (5, True, 3), (3, True, 1)])
def test_sessions_are_exact_whatever_the_batching_and_bucketing(buckets, spill, workers, tmp_path):
    """A day split into random batches (so sessions span bundles and arrive
    out of order) gives exactly the reference sessions, in any number of
    buckets, with a key per bucket or buckets claimed by local workers,
    shuffled inline or spilled; the spill is removed at the end. A bucket
    closed in parts leaves as one list, as a whole one does."""
    rng = random.Random(5)
    lines = [line for line in generate(3000, seed=3) if line]
    events = []
    for n, line in enumerate(lines):
        try:
            event = parse_event(line.encode())
        except ValueError:
            continue
        if event is not None:
            events.append(((("day", n + 1)), event))
    ref_ended, ref_changed, _ = expected_records(dedupe([e for _, e in events]), GAP_MS)
    rng.shuffle(events)
    batches = [events[i:i + 97] for i in range(0, len(events), 97)]
    spill_dir = str(tmp_path / "spill") if spill else None
    with BeamTestPipeline() as p:
        batches_out = (p | beam.Create(batches) | ReplaySessions(300, buckets, spill_dir, workers=workers)).sessions
        results = batches_out | beam.FlatMap(lambda batch: [
            (rd[0].event_type, json.dumps(rd[0].record(rd[1]), default=str)) for rd in batch])
        expected = [(ENDED, json.dumps(r, default=str)) for r in ref_ended] + [
            (CHANGED, json.dumps(r, default=str)) for r in ref_changed]
        assert_that(results, _same_records(expected))
        # One list per bucket: no user is in two lists.
        users = batches_out | beam.Map(lambda batch: frozenset(rd[0].user_id for rd in batch))
        assert_that(users | beam.combiners.ToList(), _disjoint_and_at_most(buckets), label="lists")
    assert not os.path.exists(tmp_path / "spill")


def _disjoint_and_at_most(buckets):
    def check(actual):
        (user_sets,) = actual
        assert len(user_sets) <= buckets
        assert sum(map(len, user_sets)) == len(frozenset().union(*user_sets))
    return check


def test_a_win_at_a_bets_millisecond_in_another_bundle_joins_its_session():
    """Found on real data with an earlier, window-merging construction."""
    bet = parse_event(dumps(ev(1, 0)).encode())
    win = parse_event(dumps(ev(2, 0, kind="win", amount="4.2")).encode())
    with BeamTestPipeline() as p:
        wins = ((p | beam.Create([[(("f", 1), bet)], [(("f", 2), win)]]) | ReplaySessions(300)).sessions
                | beam.FlatMap(lambda batch: [rd[0].metrics.wins_count for rd in batch]))
        assert_that(wins, equal_to([1]))


def _same_records(expected):
    def check(actual):
        def load(items):
            return sorted((t, canonical([json.loads(r, parse_float=Decimal)])[0]) for t, r in items)
        assert load(actual) == load(expected)
    return check


# --- the CLI ---------------------------------------------------------------

@pytest.fixture(scope="module")
def generated_day(tmp_path_factory):
    folder = tmp_path_factory.mktemp("day")
    path = str(folder / "day.jsonl")
    lines = generate(20_000, seed=21)
    write_lines(path, lines)
    return path, lines


@pytest.fixture(scope="module")
def day_output(generated_day, tmp_path_factory):
    path, _ = generated_day
    return replay(tmp_path_factory.mktemp("replay"), [path], "--output_format=both")


def test_cli_replay_of_a_generated_day_equals_the_reference(generated_day, day_output):
    _, lines = generated_day
    ended, changed, _ = expected_from_lines([line.encode() for line in lines], GAP_MS)
    assert len(ended) > 100 and len(changed) > 100
    assert canonical(jsonl_records(day_output, ENDED)) == canonical(ended)
    assert canonical(jsonl_records(day_output, CHANGED)) == canonical(changed)


def test_avro_and_jsonl_hold_the_same_valid_records(day_output):
    for table in (ENDED, CHANGED):
        records = avro_records(day_output, table)
        parsed = schemas.avro_schema(table)
        for record in records:
            fastavro.validation.validate(_to_avro_types(record), parsed)
        as_json = [{k: (int(v.timestamp() * 1000) if hasattr(v, "timestamp") else v) for k, v in r.items()}
                   for r in records]
        assert canonical(as_json) == canonical(jsonl_records(day_output, table))


def _to_avro_types(record):
    return {k: (int(v.timestamp() * 1000) if hasattr(v, "timestamp") else v) for k, v in record.items()}


def test_output_is_partitioned_by_session_start_date_and_has_no_temp_files(day_output):
    for table in (ENDED, CHANGED):
        for path in table_files(day_output, table, "jsonl"):
            dt = os.path.basename(os.path.dirname(path))
            for line in open(path):
                record = json.loads(line)
                start = record["gs_gameplay_session_id"][:8]
                assert dt == f"dt={start[:4]}-{start[4:6]}-{start[6:8]}"
    leftovers = [f for _, _, files in os.walk(day_output) for f in files if f.startswith(".")]
    assert leftovers == []


def test_dead_letters_keep_original_bytes_reason_and_line(generated_day, day_output):
    path, lines = generated_day
    dead = jsonl_records(day_output, DEAD)
    assert dead, "the generated day has malformed lines"
    for record in dead:
        line_no = record["source"]["line"]
        assert record["source"]["file"] == path
        assert lines[line_no - 1] == record["payload"]
        assert record["dead_letter_reason"] in ("invalid_json", "not_an_object", "missing_field", "invalid_field")
        assert record["error"]


def test_replaying_twice_gives_identical_files(generated_day, day_output, tmp_path):
    again = replay(tmp_path, [generated_day[0]], "--output_format=both")
    comparison = filecmp.dircmp(day_output, again)

    def same(c):
        assert not c.left_only and not c.right_only and not c.diff_files, c.report()
        for sub in c.subdirs.values():
            same(sub)
    same(comparison)


def test_every_format_and_several_inputs_give_the_same_sessions(tmp_path):
    events = [ev(i, i * 7000, kind="win" if i % 3 == 0 else "bet", user=f"u{i % 4}",
                 game="AB"[i // 10 % 2], amount=str(Decimal(i) / 10)) for i in range(120)]
    jsonl = str(tmp_path / "a.jsonl")
    write_lines(jsonl, [dumps(e) for e in events])
    gz_first, gz_second = str(tmp_path / "b1.jsonl.gz"), str(tmp_path / "b2.jsonl.gz")
    write_lines(gz_first, [dumps(e) for e in events[:60]])
    write_lines(gz_second, [dumps(e) for e in events[60:]])
    csv_path = str(tmp_path / "c.csv")
    columns = ["event_id", "user_id", "event_type", "occurred_at", "game_id", "bet_amount", "win_amount"]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(events)
    avro_path = str(tmp_path / "d.avro")
    avro_schema = {"type": "record", "name": "Event", "fields": [
        {"name": c, "type": ["null", "long" if c == "occurred_at" else "string"], "default": None}
        for c in columns]}
    with open(avro_path, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(avro_schema), events)

    outputs = [replay(tmp_path, inputs, "--output_format=jsonl", name=name) for name, inputs in [
        ("jsonl", [jsonl]), ("gz", [str(tmp_path / "b*.jsonl.gz")]), ("csv", [csv_path]), ("avro", [avro_path]),
        ("two_globs", [gz_first, gz_second])]]
    ended, changed, _ = expected_records(
        [parse_event(dumps(e).encode()) for e in events], GAP_MS)
    for out in outputs:
        assert canonical(jsonl_records(out, ENDED)) == canonical(ended), out
        assert canonical(jsonl_records(out, CHANGED)) == canonical(changed), out


def test_csv_rows_dead_letter_with_their_line(tmp_path):
    path = str(tmp_path / "bad.csv")
    with open(path, "wb") as f:
        f.write(b"event_id,user_id,event_type,occurred_at,game_id,bet_amount\n")
        f.write(b"1,u,bet,1767731000000,A,1\n")
        f.write(b"2,u,bet,1767731000000,A\n")
        f.write(b"3,u,bet,2026-01-06T20:23:20,A,1\n")
        f.write(b"4,u\xff,bet,1767731000000,A,1\n")
    out = replay(tmp_path, [path], "--output_format=jsonl")
    dead = sorted((d["source"]["line"], d["dead_letter_reason"]) for d in jsonl_records(out, DEAD))
    assert dead == [(3, "invalid_field"), (4, "invalid_field"), (5, "invalid_json")]
    assert len(jsonl_records(out, ENDED)) == 1


def test_a_dead_letter_file_can_be_fed_back_as_input(tmp_path):
    path = str(tmp_path / "in.jsonl")
    write_lines(path, [dumps(ev(1, 0)), dumps({**ev(2, 1000), "occurred_at": "2026-01-06T20:23:21"})])
    first = replay(tmp_path, [path], "--output_format=jsonl", name="first")
    dead_files = table_files(first, DEAD, "jsonl")
    # The operator fixes the producer's timestamps in the dead letter, then replays it with the rest.
    fixed = str(tmp_path / "fixed.jsonl")
    with open(dead_files[0]) as src, open(fixed, "w") as dst:
        for line in src:
            dst.write(line.replace("2026-01-06T20:23:21", "2026-01-06T20:23:21Z"))
    second = replay(tmp_path, [path, fixed], "--output_format=jsonl", name="second")
    # The original line is still bad; its fixed copy from the dead-letter file is used.
    assert [d["source"]["file"] for d in jsonl_records(second, DEAD)] == [path]
    assert jsonl_records(second, ENDED)[0]["gs_bets_count"] == 2


def test_exit_status_is_zero_with_dead_letters_only(tmp_path):
    path = str(tmp_path / "junk.jsonl")
    write_lines(path, [b"\xff\xfe", b"not json", b"[]"])
    out = replay(tmp_path, [path], "--output_format=avro")
    assert len(jsonl_records(out, DEAD)) == 3
    assert table_files(out, ENDED, "avro") == []


@pytest.mark.parametrize("args, message", [
    ([], "--input=GLOB is required"),
    (["--input=/nonexistent/*.jsonl"], "matches no file"),
    (["--input={day}", "--session_gap_seconds=0"], "--session_gap_seconds must be a positive"),
    (["--input={day}"], "--output_dir=DIR is required"),
    (["--input={day}", "--output_dir=/tmp/x", "--output_format=parquet"], "invalid choice"),
])
def test_unusable_arguments_fail_with_one_clear_line(tmp_path, capsys, args, message):
    day = str(tmp_path / "day.jsonl")
    write_lines(day, [dumps(ev(1, 0))])
    args = [a.format(day=day) for a in args]
    if not any(a.startswith("--output_dir") for a in args) and "--output_dir=DIR" not in message:
        args.append(f"--output_dir={tmp_path / 'out'}")
    with pytest.raises(SystemExit) if "invalid choice" in message else _no_exit():
        code = main(args)
        assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    if "invalid choice" not in message:
        assert len(err.splitlines()) == 1


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_output_records_follow_the_schema_field_order(day_output):
    for table in (ENDED, CHANGED):
        record = jsonl_records(day_output, table)[0]
        assert tuple(record) == schemas.field_names(table)


def test_the_replay_needs_no_window_merging_from_the_runner():
    """Flink's batch runner merges session windows wrongly (sorted by end);
    the replay runs in the global window, so every runner gives the same."""
    p = beam.Pipeline()
    _ = p | beam.Create([[]]) | ReplaySessions(300)
    proto = p.to_runner_api()
    urns = {s.window_fn.urn for s in proto.components.windowing_strategies.values()}
    assert urns == {"beam:window_fn:global_windows:v1"}


@given(buckets=st.integers(1, 64), workers=st.one_of(st.none(), st.integers(1, 8)),
       sizes=st.lists(st.integers(1, 10 ** 6), min_size=64, max_size=64),
       hashes=st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=100))
def test_a_bucket_plan_closes_every_bucket_once_whole_or_in_all_its_parts(buckets, workers, sizes, hashes):
    plan = BucketPlan(buckets, workers)
    for user_hash in hashes:
        bucket, part = plan.place(user_hash)
        assert bucket == user_hash % buckets  # the bucket, so the files, never change
        assert 0 <= part < plan.parts
    bucket_sizes = dict(zip(range(buckets), sizes))
    units = plan.units(bucket_sizes)
    assert sorted((bucket, part) for bucket, parts in units for part in parts) == sorted(
        (bucket, part) for bucket in range(buckets) for part in range(plan.parts))
    cut = [bucket for bucket, parts in units if len(parts) < plan.parts]
    if workers is None:
        assert [bucket for bucket, _ in units] == list(range(buckets)) and not cut
    else:
        # Largest first; the last (smallest) buckets, one per worker, in parts.
        order = list(dict.fromkeys(bucket for bucket, _ in units))
        assert [bucket_sizes[b] for b in order] == sorted(bucket_sizes.values(), reverse=True)
        assert set(cut) == (set(order[-workers:]) if workers > 1 else set())
        assert all(keys == range(workers) for keys in map(plan.keys, range(buckets)))


def test_a_bucket_plan_needs_buckets_and_workers():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        BucketPlan(3, 0)
    with pytest.raises(ValueError, match="buckets must be >= 1"):
        BucketPlan(0)
    with pytest.raises(ValueError, match="give spill_dir too"):
        ReplaySessions(300, 3, workers=2)
