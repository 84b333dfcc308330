"""Several generated days in one file: day k is `tools.generate_events`'
day with seed `seed + k`, moved k days later. Player ids repeat from day to
day (the generator numbers players from 1 every day), so players come back
on later days and some are new: what the dashboard's "new user", value tier
and stickiness reports need.

    python -m tools.generate_days --days=7 --events=3000 --output=week.jsonl.gz
"""
import argparse
import json
from datetime import datetime, timedelta

from tools.generate_events import generate, write

DAY_MS = 86_400_000


def _moved(line: str, day: int) -> str:
    try:
        event = json.loads(line)
    except ValueError:
        return line  # a malformed line stays malformed
    if not isinstance(event, dict):
        return line
    if "event_id" in event:
        # Every generated day numbers its events from 1; ids must stay unique
        # per player across days, or later days would be dropped as duplicates.
        event["event_id"] = f"d{day}-{event['event_id']}"
    occurred_at = event.get("occurred_at")
    if isinstance(occurred_at, int):
        event["occurred_at"] = occurred_at + day * DAY_MS
    elif isinstance(occurred_at, str):
        try:
            moment = datetime.fromisoformat(occurred_at)
        except ValueError:
            return json.dumps(event, separators=(",", ":"))
        if moment.tzinfo is not None:  # a time without offset stays invalid, as generated
            event["occurred_at"] = (moment + timedelta(days=day)).isoformat(timespec="milliseconds")
    return json.dumps(event, separators=(",", ":"))


def generate_days(days: int, events_per_day: int, seed: int = 7) -> list:
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    return [_moved(line, day) if line else line
            for day in range(days) for line in generate(events_per_day, seed + day)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--events", type=int, default=3000, help="about how many lines per day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", required=True, help="a .jsonl or .jsonl.gz path")
    args = parser.parse_args(argv)
    lines = generate_days(args.days, args.events, args.seed)
    write(args.output, lines)
    print(f"wrote {len(lines):,} lines of {args.days} days to {args.output}")


if __name__ == "__main__":
    main()
