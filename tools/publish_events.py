"""Replays a historical event file into a Pub/Sub topic, live: the way to try
the streaming job on your own data.

Events are published in event-time order at their own pace (`--speed=10`
plays ten times faster), with `occurred_at` re-based so the first event
happens now, and the timestamp attribute set to the new time. At a speed
other than 1 the whole timeline is compressed, gaps included: run the job
with `--session_gap_seconds` divided by the same factor to get the same
sessions. Lines that are not events are published too (they should come
out as dead letters).

    PUBSUB_EMULATOR_HOST=127.0.0.1:8085 python -m tools.publish_events \\
        --input=sample/sample_day.jsonl.gz --topic=projects/demo/topics/events --speed=60
"""
import argparse
import gzip
import json
import time
from dataclasses import dataclass
from typing import Iterable, List, Optional

from sessions.events import InvalidEvent, parse_event


@dataclass(frozen=True)
class Scheduled:
    """A message and the event-time offset (ms from the first event) it plays at."""
    offset_ms: int
    body: dict  # None for a line that is not an event
    raw: bytes


def schedule(lines: Iterable[bytes]) -> List[Scheduled]:
    """Events in time order; a line that is not a valid event keeps its place
    after the event before it."""
    timed, start, previous = [], None, 0
    for raw in lines:
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            event = parse_event(raw)
        except InvalidEvent:
            event = None
        if event is None:
            timed.append((previous, len(timed), None, raw))
            continue
        start = event.occurred_at if start is None else min(start, event.occurred_at)
        previous = event.occurred_at
        timed.append((event.occurred_at, len(timed), json.loads(raw), raw))
    timed.sort(key=lambda item: (item[0], item[1]))
    start = start or 0
    return [Scheduled(max(0, t - start), body, raw) for t, _, body, raw in timed]



def publish(items: List[Scheduled], topic: str, speed: float = 1.0, timestamp_attribute: Optional[str] = "event_ts",
            publisher=None, origin_ms: Optional[int] = None, max_pause_seconds: Optional[float] = None) -> List[bytes]:
    """Publishes in real time (divided by `speed`); returns the bodies sent."""
    if speed <= 0:
        raise ValueError(f"--speed must be positive, got {speed}")
    if publisher is None:
        from google.cloud import pubsub_v1
        publisher = pubsub_v1.PublisherClient()
    origin_ms = origin_ms or int(time.time() * 1000)
    sent, futures, shift_ms = [], [], 0
    previous_ms = 0
    for item in items:
        at_ms = item.offset_ms / speed - shift_ms
        if max_pause_seconds is not None and at_ms - previous_ms > max_pause_seconds * 1000:
            shift_ms += at_ms - previous_ms - max_pause_seconds * 1000
            at_ms = previous_ms + max_pause_seconds * 1000
        previous_ms = at_ms
        wait = (origin_ms + at_ms) / 1000 - time.time()
        if wait > 0:
            time.sleep(wait)
        body = item.raw if item.body is None else json.dumps(
            {**item.body, "occurred_at": origin_ms + int(at_ms)}, separators=(",", ":")).encode("utf-8")
        attributes = {}
        if timestamp_attribute and item.body is not None:
            attributes[timestamp_attribute] = str(origin_ms + int(at_ms))
        futures.append(publisher.publish(topic, body, **attributes))
        sent.append(body)
    for future in futures:
        future.result(timeout=60)
    return sent


def read_lines(path: str) -> List[bytes]:
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        return f.read().splitlines()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="a .jsonl or .jsonl.gz file of events")
    parser.add_argument("--topic", required=True, help="projects/P/topics/T")
    parser.add_argument("--speed", type=float, default=1.0, help="play this many times faster (default 1)")
    parser.add_argument("--timestamp_attribute", default="event_ts",
                        help="attribute carrying occurred_at in epoch ms ('' for none)")
    parser.add_argument("--max_pause_seconds", type=float, default=None,
                        help="shorten longer silences (after --speed) to this many seconds; keep it above the "
                             "job's gap so sessions stay the same")
    args = parser.parse_args(argv)
    items = schedule(read_lines(args.input))
    sent = publish(items, args.topic, args.speed, args.timestamp_attribute or None,
                   max_pause_seconds=args.max_pause_seconds)
    print(f"published {len(sent):,} messages to {args.topic}")


if __name__ == "__main__":
    main()
