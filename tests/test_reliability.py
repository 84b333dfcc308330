"""Nothing lost, nothing counted twice: garbage, redelivery, the books."""
import filecmp
import os
import random
import resource
import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.util import assert_that

from pipelines.game_sessions import build_pipeline
from pipelines.options import GameSessionsOptions
from pipelines.summary import run_counts
from sessions.events import parse_event
from sessions.records import to_json
from sessions.sessionizer import Unattributed, sessionize
from tests.helpers import CHANGED, DEAD, ENDED, expected_from_lines, jsonl_records, write_lines
from tests.reference import canonical
from tests.test_live import T0, generated_deliveries, stream_of
from tools.generate_events import generate
from transforms.live import LiveSessions

HERE = os.path.dirname(__file__)
GAP_MS = 300_000


def replay_with_counts(inputs, out, *extra):
    options = GameSessionsOptions([*(f"--input={i}" for i in inputs), f"--output_dir={out}", *extra])
    result = build_pipeline(options).run()
    result.wait_until_finish()
    return run_counts(result)


# --- garbage ---------------------------------------------------------------

def corrupt(line: str, kind: int, rng: random.Random) -> bytes:
    """One of the ways a line breaks in the wild; each is unusable."""
    raw = line.encode("utf-8")
    if kind == 0:
        return raw[: rng.randint(1, len(raw) - 2)]  # truncated JSON
    if kind == 1:
        return raw.replace(b'"user_id":', b'"user_id":[1],"x":', 1)  # wrong type
    if kind == 2:  # binary junk, never blank
        return b"\x00" + bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))).translate(None, b"\r\n")
    if kind == 3:
        return raw[:-1] + b',"padding":"' + b"x" * 70_000 + b'"}'  # huge line
    if kind == 4:
        return raw.replace(b'"event_type"', b'"event_\xff_type"', 1).replace(b'"user_id"', b'"u\xc3(ser"', 1)
    return raw.replace(b'"occurred_at":', b'"occurred_at":"soon","was":', 1)  # bad timestamp


def corrupted_day(events: int, share: float, seed: int):
    """(clean lines, lines with `share` of the gameplay events corrupted, the
    indexes corrupted). Only gameplay events are corrupted: a broken login
    would still be an ignored type."""
    rng = random.Random(seed)
    clean = [line for line in generate(events, seed=seed) if line.strip()]
    lines, corrupted = [], set()
    for n, line in enumerate(clean):
        if rng.random() < share and _is_gameplay(line):
            lines.append(corrupt(line, rng.randrange(6), rng))
            corrupted.add(n)
        else:
            lines.append(line.encode())
    return clean, lines, corrupted


def _is_gameplay(line: str) -> bool:
    try:
        return parse_event(line.encode()) is not None
    except ValueError:
        return False


def check_books(counts, lines, corrupted_count, already_bad):
    assert counts["events_read"] == len(lines)
    assert counts.balanced, counts.counters
    assert sum(counts.dead_lettered.values()) == corrupted_count + already_bad


def test_a_corrupted_day_keeps_its_books_and_loses_only_the_corrupted_events(tmp_path):
    clean, lines, corrupted = corrupted_day(30_000, 0.01, seed=4)
    path = str(tmp_path / "day.jsonl")
    write_lines(path, lines)
    out = str(tmp_path / "out")
    counts = replay_with_counts([path], out, "--output_format=jsonl")
    already_bad = len(jsonl_records(out, DEAD)) - len(corrupted)
    check_books(counts, lines, len(corrupted), already_bad)
    dead_lines = {d["source"]["line"] for d in jsonl_records(out, DEAD)}
    assert {n + 1 for n in corrupted} <= dead_lines
    survivors = [line.encode() for n, line in enumerate(clean) if n not in corrupted]
    ended, changed, unattributed = expected_from_lines(survivors, GAP_MS)
    assert canonical(jsonl_records(out, ENDED)) == canonical(ended)
    assert canonical(jsonl_records(out, CHANGED)) == canonical(changed)
    assert counts["unattributed_event"] == unattributed


@pytest.mark.e2e
def test_a_million_event_day_with_one_percent_corrupted(tmp_path):
    """The identity of the books, and the sessions of the clean day minus
    exactly the corrupted events, at full scale."""
    clean, lines, corrupted = corrupted_day(1_000_000, 0.01, seed=9)
    path = str(tmp_path / "day.jsonl")
    write_lines(path, lines)
    out = str(tmp_path / "out")
    counts = replay_with_counts([path], out, "--output_format=jsonl", "--direct_running_mode=multi_processing",
                                "--direct_num_workers=2")
    dead = jsonl_records(out, DEAD)
    check_books(counts, lines, len(corrupted), len(dead) - len(corrupted))
    assert {n + 1 for n in corrupted} <= {d["source"]["line"] for d in dead}
    survivors = [line.encode() for n, line in enumerate(clean) if n not in corrupted]
    ended, changed, _ = expected_from_lines(survivors, GAP_MS)
    assert canonical(jsonl_records(out, ENDED)) == canonical(ended)
    assert canonical(jsonl_records(out, CHANGED)) == canonical(changed)


def test_random_junk_never_stops_a_replay_and_every_line_is_accounted_for(tmp_path):
    rng = random.Random(8)
    junk = [bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))).replace(b"\n", b"").strip() or b"x"
            for _ in range(2000)]
    path = str(tmp_path / "junk.jsonl")
    write_lines(path, junk)
    counts = replay_with_counts([path], str(tmp_path / "out"))
    assert counts["events_read"] == len(junk) == sum(counts.dead_lettered.values())
    assert counts.balanced


def _limit_memory():
    """A real cap on the fuzzer's memory: a runaway allocation fails as a
    crash. (libFuzzer's own -rss_limit_mb reads ru_maxrss, which Linux carries
    over from the forking parent: after a big test it reports pytest's peak.)"""
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def test_atheris_finds_no_crash_in_the_parser():
    fuzzer = os.path.join(HERE, "fuzz", "fuzz_events.py")
    run = subprocess.run([sys.executable, fuzzer, "-runs=40000", "-max_len=2048", "-seed=1", "-rss_limit_mb=0"],
                         capture_output=True, text=True, timeout=600, preexec_fn=_limit_memory)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 40000 runs" in run.stderr


# --- redelivery ------------------------------------------------------------

def redelivered(lines, rng):
    """Every line 2-3 times, the copies a few lines apart (overlapping files,
    at-least-once delivery)."""
    out = []
    for n, line in enumerate(lines):
        for _ in range(rng.choice([2, 3])):
            out.append((n + rng.uniform(0, 40), line))
    return [line for _, line in sorted(out, key=lambda item: item[0])]


def test_replay_of_everything_delivered_two_or_three_times_is_byte_identical(tmp_path):
    lines = [line.encode() for line in generate(15_000, seed=13) if line.strip()]
    once, many = str(tmp_path / "once.jsonl"), str(tmp_path / "many.jsonl")
    write_lines(once, lines)
    write_lines(many, redelivered(lines, random.Random(2)))
    for name, path in (("once", once), ("many", many)):
        replay_with_counts([path], str(tmp_path / name), "--output_format=both")
    for table in (ENDED, CHANGED):
        comparison = filecmp.dircmp(str(tmp_path / "once" / table), str(tmp_path / "many" / table))
        assert not comparison.left_only and not comparison.right_only
        for dt, sub in comparison.subdirs.items():
            assert not sub.left_only and not sub.right_only and not sub.diff_files, (table, dt)
            match, mismatch, errors = filecmp.cmpfiles(sub.left, sub.right, sub.common_files, shallow=False)
            assert match and not mismatch and not errors


def test_live_stream_with_every_event_delivered_two_or_three_times_is_byte_identical():
    """Delivered once or two-three times (shuffled within the disorder
    bound), the live path emits the same bytes: those of the replay rules."""
    rng = random.Random(3)
    deliveries = generated_deliveries(400, seed=17)
    now_ms = 2_000_000_000_000
    unique = list({(d.event.user_id, d.event.event_id): d.event for d in deliveries}.values())
    expected = sorted(
        to_json(result.record((now_ms - result.event_ts) // 1000))
        for user in {e.user_id for e in unique}
        for result in sessionize(user, [e for e in unique if e.user_id == user], GAP_MS)
        if not isinstance(result, Unattributed))
    once = sorted(deliveries, key=lambda d: d.event.occurred_at)
    many = sorted((d for d in deliveries for _ in range(rng.choice([2, 3]))),
                  key=lambda d: d.event.occurred_at + rng.uniform(0, 900))

    def steps(arrivals):
        out = []
        for n, d in enumerate(arrivals):
            out.append(d)
            if n % 60 == 0:
                out.append(min(a.event.occurred_at for a in arrivals[n:]) - T0)
        return out

    for arrivals in (once, many):
        options = PipelineOptions()
        options.view_as(StandardOptions).streaming = True
        with beam.Pipeline(options=options) as p:
            lines = (p | stream_of(steps(arrivals)) | LiveSessions(300, 1, clock=lambda: now_ms / 1000)).sessions \
                | beam.Map(lambda rd: to_json(rd[0].record(rd[1])))
            assert_that(lines, lambda got: _same_bytes(sorted(got), expected))


def _same_bytes(got, expected):
    assert got == expected
