"""The live job under load, against Google's real Pub/Sub emulator.

Plays enough generated players to publish `--rate` events a second for
`--seconds` (spins every 0.2-1.5 s, wins, game hopping, breaks longer than the
gap; each message leaves up to 0.8 x `--max_disorder_seconds` after it
happened), runs the streaming job on the DirectRunner, waits until every
player's last session has ended, replays the very same messages with the
replay job and compares. Reports the publish rate achieved, the rate the job
sustained, correctness against the replay (late_event dead letters, split
sessions, missing and extra records) and latencies:

    python -m tools.live_load [--rate=1000] [--seconds=120] [--prefill]

With `--prefill` the whole stream is published (event times in the past)
before the job starts: the job begins with the stream's whole length of
backlog and must still give the replay's output.
"""
import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

from sessions.records import from_json
from tools.live_scenario import (
    SUBSCRIPTIONS, TOPICS, Collector, Received, _player_plan, _wait_until_live, create_all, is_probe,
    live_records, percentile, start_job, stop_job)
from tools.pubsub_emulator import PubSubEmulator

# Events a generated player makes per second of play (spins, wins, breaks), measured over many players.
_EVENTS_PER_PLAYER_SECOND = 1.3


@dataclass
class Message:
    send_at_ms: int
    body: bytes
    event: dict


@dataclass
class LoadResult:
    messages: List[Message]
    published_ms: List[int]  # wall ms each message was handed to the client, in order
    received: Dict[str, List[Received]]
    job_alive_at_end: bool
    job_log: str
    finished: bool  # every player's last session came out before the deadline

    @property
    def bodies(self) -> List[bytes]:
        return [m.body for m in self.messages]


def plan(rate: float, seconds: float, gap_s: int, disorder_s: int, origin_ms: int, seed: int,
         phase: str = "") -> List[Message]:
    """The stream in publish order: shuffled within 0.8 x the disorder bound.
    Streams played to one job need phases of their own: event ids repeat
    across seeds, and the job drops a repeated id as a duplicate."""
    rng = random.Random(seed)
    users = max(1, round(rate / _EVENTS_PER_PLAYER_SECOND))
    messages = []
    for offset, event in _player_plan(rng, users, seconds, gap_s, phase=phase):
        event = {**event, "occurred_at": origin_ms + offset}
        send_at = event["occurred_at"] + int(rng.uniform(0, disorder_s * 1000 * 0.8))
        messages.append(Message(send_at, json.dumps(event, separators=(",", ":")).encode(), event))
    messages.sort(key=lambda m: m.send_at_ms)
    return messages


def _publisher():
    from google.cloud import pubsub_v1
    # Bigger batches than the client's default 100 messages / 10 ms: fewer RPCs at 1,000 events/s.
    return pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(
        max_messages=500, max_bytes=1_000_000, max_latency=0.02))


def publish(publisher, messages: List[Message], on_schedule: bool) -> List[int]:
    """Publishes in order, each at its send time (or all at once); returns the
    wall ms each was handed to the client."""
    published, futures = [], []
    for message in messages:
        if on_schedule:
            wait = message.send_at_ms / 1000 - time.time()
            if wait > 0:
                time.sleep(wait)
        futures.append(publisher.publish(TOPICS["events"], message.body, event_ts=str(message.event["occurred_at"])))
        published.append(int(time.time() * 1000))
    for future in futures:
        future.result(timeout=120)
    return published


def run_load(work_dir: str, rate: float = 1000, seconds: float = 120, gap_s: int = 5, disorder_s: int = 1,
             prefill: bool = False, seed: int = 3, timeout: Optional[float] = None) -> LoadResult:
    """Plays the stream (live, or all before the job starts with `prefill`)
    and waits until every player's last session has ended, or `timeout`."""
    os.makedirs(work_dir, exist_ok=True)
    received = {name: [] for name in ("ended", "changed", "dead")}
    timeout = timeout if timeout is not None else 120 + 4 * seconds
    with PubSubEmulator() as emulator:
        env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator.host}
        create_all(emulator)
        collectors = [Collector(emulator, SUBSCRIPTIONS[name], received[name]) for name in received]
        for c in collectors:
            c.start()
        publisher = _publisher()
        log_path = os.path.join(work_dir, "job.log")
        job = None
        try:
            if prefill:
                messages = plan(rate, seconds, gap_s, disorder_s, int(time.time() * 1000) - int(seconds * 1000) -
                                (gap_s + disorder_s) * 1000, seed)
                published = publish(publisher, messages, on_schedule=False)
                job = start_job(env, work_dir, log_path, gap_s, disorder_s)
            else:
                job = start_job(env, work_dir, log_path, gap_s, disorder_s)
                _wait_until_live(publisher, received, job)
                messages = plan(rate, seconds, gap_s, disorder_s, int(time.time() * 1000) + 500, seed)
                published = publish(publisher, messages, on_schedule=True)
            finished = wait_for_last_sessions(messages, received, job, deadline=time.time() + timeout)
            time.sleep(3)  # what is still in flight to the collectors
        finally:
            alive = job is not None and job.poll() is None
            for c in collectors:
                c.stop()
            if job is not None:
                stop_job(job)
            for c in collectors:
                c.join(timeout=10)
    with open(log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")[-5000:]
    return LoadResult(messages, published, received, alive, log, finished)


def wait_for_last_sessions(messages: List[Message], received, job, deadline: float) -> bool:
    """Every player's last session ends at the player's last bet; it comes
    out once the watermark passes it plus the gap (empty pulls move the
    DirectRunner's watermark once the backlog is read)."""
    last_bet = {}
    for m in messages:
        if m.event["event_type"] == "bet":
            last_bet[m.event["user_id"]] = max(last_bet.get(m.event["user_id"], 0), m.event["occurred_at"])
    seen, counted = set(), 0
    while time.time() < deadline and job.poll() is None:
        # A copy: the collector appends meanwhile, and what it appends after
        # the copy is read in the next round.
        arrived = received["ended"][counted:]
        for message in arrived:
            record = json.loads(message.data)
            seen.add((record["user_id"], record["gs_session_end_date"]))
        counted += len(arrived)
        if all(item in seen for item in last_bet.items()):
            return True
        time.sleep(1)
    return False


# --- comparison with the replay ---------------------------------------------

def replay(work_dir: str, bodies: List[bytes], gap_s: int) -> Tuple[List[dict], List[dict]]:
    """The replay job over the same messages: (ended, changed) records."""
    import glob
    from pipelines.game_sessions import main
    path = os.path.join(work_dir, "published.jsonl")
    with open(path, "wb") as f:
        f.writelines(body + b"\n" for body in bodies)
    out = os.path.join(work_dir, "replay")
    shutil.rmtree(out, ignore_errors=True)
    if main([f"--input={path}", f"--output_dir={out}", "--output_format=jsonl",
             f"--session_gap_seconds={gap_s}"]) != 0:
        raise RuntimeError("the replay job failed")

    def records(table):
        return [from_json(line)
                for path in sorted(glob.glob(os.path.join(out, table, "**", "*.jsonl"), recursive=True))
                for line in open(path, encoding="utf-8") if line.strip()]
    return records("gs_game_session_ended"), records("gs_game_session_changed")


def _without_delay(record: dict) -> str:
    return json.dumps({k: v for k, v in record.items() if k != "gs_event_delay_seconds"}, sort_keys=True,
                      default=str)


@dataclass
class Comparison:
    missing: int  # reference records the live run did not produce
    extra: int  # live records the reference does not have
    split: int  # reference sessions that came out as two or more live sessions
    late_events: int
    other_dead_letters: Counter = field(default_factory=Counter)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.extra or self.split or self.late_events)


def compare(live_ended, live_changed, ref_ended, ref_changed, dead: List[Received]) -> Comparison:
    missing = extra = 0
    for live, ref in ((live_ended, ref_ended), (live_changed, ref_changed)):
        live_c, ref_c = Counter(map(_without_delay, live)), Counter(map(_without_delay, ref))
        missing += sum((ref_c - live_c).values())
        extra += sum((live_c - ref_c).values())
    starts = {}
    for r in live_ended:
        starts.setdefault(r["user_id"], []).append(r["gs_session_start_date"])
    split = sum(1 for r in ref_ended
                if sum(r["gs_session_start_date"] <= s <= r["gs_session_end_date"]
                       for s in starts.get(r["user_id"], ())) > 1)
    reasons = Counter(m.attributes.get("reason") for m in dead)
    late = reasons.pop("late_event", 0)
    return Comparison(missing, extra, split, late, reasons)


# --- figures -----------------------------------------------------------------

@dataclass
class Figures:
    events: int
    publish_rate: float  # events/s the publisher achieved
    published_late: int  # handed to the client more than the disorder bound after they happened
    publisher_lag: List[float]  # s, handed to the client - occurred_at
    processing_rate: float  # events/s the job sustained (see processing_rate())
    changed: List[float]  # s, switching bet published -> changed available (see `available`)
    ended: List[float]  # s, end + gap -> ended available
    changed_first_quarter_p50: float
    changed_last_quarter_p50: float
    # What "available" means: "publish_time" (the emulator accepted the output
    # message: from then on any subscriber can pull it) or "arrived" (the
    # load tool's own collector pulled it).
    available: str = "arrived"
    changed_arrived: List[float] = field(default_factory=list)  # the same, to the collector's pull
    changed_after_due: List[float] = field(default_factory=list)  # s, switch + disorder bound -> available
    accepted_lag: List[float] = field(default_factory=list)  # s, switching bet handed to the client -> accepted


def _available_ms(message: Received, available: str) -> int:
    if available == "publish_time" and message.published_ms is not None:
        return message.published_ms
    return message.arrived_ms


def figures(result: LoadResult, gap_s: int, disorder_s: int, available: str = "arrived",
            accepted_ms: Optional[Dict[bytes, int]] = None) -> Figures:
    """Latency figures. `available`: "arrived" (when the collector pulled an
    output message) or "publish_time" (when the emulator accepted it, i.e.
    when any subscriber could have it). `accepted_ms`: input body -> when the
    emulator accepted it, if known."""
    published = result.published_ms
    span_s = max(published[-1] - published[0], 1) / 1000
    lag = [(at - m.event["occurred_at"]) / 1000 for m, at in zip(result.messages, published)]
    late = sum(1 for seconds in lag if seconds > disorder_s)
    switch_index = {}  # (user, time, new game) -> (publish order, published ms, body)
    for index, (m, at) in enumerate(zip(result.messages, published)):
        if m.event["event_type"] == "bet":
            switch_index.setdefault((m.event["user_id"], m.event["occurred_at"], m.event["game_id"]),
                                    (index, at, m.body))
    changed = []
    for message in result.received["changed"]:
        record = json.loads(message.data)
        key = (record["user_id"], record["gs_session_end_date"], record["gs_game_new_id"])
        if key in switch_index:
            index, at, body = switch_index[key]
            changed.append(_ChangedLatency(index, at, _available_ms(message, available), message.arrived_ms,
                                           record["gs_session_end_date"], body))
    changed.sort()
    ended = [(_available_ms(m, available) - json.loads(m.data)["gs_session_end_date"] - gap_s * 1000) / 1000
             for m in result.received["ended"] if not is_probe(json.loads(m.data)["user_id"])]
    latencies = [(c.available_ms - c.published_ms) / 1000 for c in changed]
    quarter = max(1, len(latencies) // 4)
    accepted = accepted_ms or {}
    return Figures(
        events=len(published), publish_rate=len(published) / span_s, published_late=late, publisher_lag=lag,
        processing_rate=processing_rate([(c.order, c.published_ms, c.available_ms) for c in changed], published[0]),
        changed=latencies, ended=ended,
        changed_first_quarter_p50=statistics.median(latencies[:quarter]) if latencies else float("nan"),
        changed_last_quarter_p50=statistics.median(latencies[-quarter:]) if latencies else float("nan"),
        available=available,
        changed_arrived=[(c.arrived_ms - c.published_ms) / 1000 for c in changed],
        changed_after_due=[(c.available_ms - c.switch_ms - disorder_s * 1000) / 1000 for c in changed],
        accepted_lag=[(accepted[c.body] - c.published_ms) / 1000 for c in changed if c.body in accepted])


class _ChangedLatency(NamedTuple):
    """A changed event matched to its switching bet; sorts by publish order."""
    order: int  # the switching bet's place in the published stream
    published_ms: int  # when the switching bet was handed to the publisher client
    available_ms: int  # see figures(available=...)
    arrived_ms: int  # when the load tool's collector pulled the changed event
    switch_ms: int  # the switching bet's event time
    body: bytes  # the switching bet's message


def processing_rate(changed: List[Tuple[int, int, int]], first_published_ms: int) -> float:
    """A changed event is emitted once the job has read everything published
    before its switching bet (the watermark is held until then): the last
    one's publish position over the time it took is the rate the job kept up."""
    if not changed:
        return float("nan")
    index, _, arrived = changed[-1]
    return (index + 1) / max(arrived - first_published_ms, 1) * 1000


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000, help="events a second to publish (default 1000)")
    parser.add_argument("--seconds", type=float, default=120, help="how long to play (default 120)")
    parser.add_argument("--gap_seconds", type=int, default=5)
    parser.add_argument("--max_disorder_seconds", type=int, default=1)
    parser.add_argument("--prefill", action="store_true", help="publish everything before the job starts")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--timeout_seconds", type=float, default=None,
                        help="stop waiting for the last sessions after this long (default 120 + 4 x --seconds)")
    parser.add_argument("--work_dir", default=None, help="keep the job's log and outputs here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or tmp
        result = run_load(work, args.rate, args.seconds, args.gap_seconds, args.max_disorder_seconds,
                          prefill=args.prefill, seed=args.seed, timeout=args.timeout_seconds)
        ref_ended, ref_changed = replay(work, result.bodies, args.gap_seconds)
    live_ended, live_changed = live_records(result, "ended"), live_records(result, "changed")
    comparison = compare(live_ended, live_changed, ref_ended, ref_changed, result.received["dead"])
    f = figures(result, args.gap_seconds, args.max_disorder_seconds)
    report(f"target {args.rate:,.0f} events/s for {args.seconds:.0f} s{' (prefilled)' if args.prefill else ''}",
           result, comparison, f, (live_ended, live_changed), (ref_ended, ref_changed))
    if not (comparison.exact and result.finished):
        sys.exit(1)


def report(title: str, result: LoadResult, comparison: Comparison, f: Figures,
           live: Tuple[List[dict], List[dict]], reference: Tuple[List[dict], List[dict]]) -> None:
    """The figures of a load run, (ended, changed) records live and in the
    replay (also tools.flink_live's load on Flink)."""
    (live_ended, live_changed), (ref_ended, ref_changed) = live, reference
    print(f"{title}: published {f.events:,} events at {f.publish_rate:,.0f}/s "
          f"({f.published_late:,} published later than the disorder bound; publisher lag p95 "
          f"{percentile(f.publisher_lag, 0.95):.2f} s, max {max(f.publisher_lag):.2f} s)")
    print(f"job sustained ~{f.processing_rate:,.0f} events/s; changed latency p50 {f.changed_first_quarter_p50:.2f} s "
          f"in the first quarter, {f.changed_last_quarter_p50:.2f} s in the last")
    print(f"vs replay: {len(live_changed):,}/{len(ref_changed):,} changed, {len(live_ended):,}/{len(ref_ended):,} "
          f"ended; missing {comparison.missing}, extra {comparison.extra}, split sessions {comparison.split}, "
          f"late_event {comparison.late_events}, other dead letters {dict(comparison.other_dead_letters)}"
          f"{'' if result.finished else '; NOT FINISHED before the deadline'}"
          f"{'' if result.job_alive_at_end else '; THE JOB DIED (see its log)'}")
    if f.available == "publish_time":
        print("latency: until the output message is available in its topic (its publish time in the "
              "emulator), from when the switching bet was handed to the publisher client")
        rows = ((f.changed, "switching bet published -> changed available"),
                (f.ended, "end + gap -> ended available"),
                (f.changed_arrived, "  (changed, to the load tool's pull)"),
                (f.changed_after_due, "  (changed, switch + disorder bound -> avail.)"),
                (f.accepted_lag, "  (switching bet handed -> emulator accepted)"))
    else:
        rows = ((f.changed, "switching bet published -> changed arrives"),
                (f.ended, "end + gap -> ended arrives"))
    print(f"{'latency (s)':<48}{'p50':>8}{'p95':>8}{'max':>8}{'n':>7}")
    for values, label in rows:
        if values:
            print(f"{label:<48}{statistics.median(values):>8.2f}{percentile(values, 0.95):>8.2f}"
                  f"{max(values):>8.2f}{len(values):>7}")
    print("EXACT" if comparison.exact and result.finished else "NOT EXACT", file=sys.stderr)


if __name__ == "__main__":
    main()
