"""Several generated days in one file: day k is `tools.generate_events`'
day with seed `seed + k`, moved k days later. Player ids repeat from day to
day (the generator numbers players from 1 every day), so players come back
on later days and some are new: what the dashboard's "new user", value tier
and stickiness reports need.

Options make the days look more like a casino's month than one day repeated:
- `--arrivals=N`: each day the numbering starts N players later, so about N
  players a day are new for good and as many leave;
- `--games_per_title=N`: each title exists as N games (ids `TITLE`, `TITLE_2`,
  ...), one per group of players, for more games than the generator's 24.

    python -m tools.generate_days --days=7 --events=3000 --output=week.jsonl.gz \
        [--arrivals=4] [--games_per_title=3]
"""
import argparse
import json
import zlib
from datetime import datetime, timedelta

from tools.generate_events import generate, write

DAY_MS = 86_400_000


def _player(user_id, shift: int):
    """The generator's player n as player n + shift, in the same id style."""
    if isinstance(user_id, int):
        return user_id + shift
    if isinstance(user_id, str) and user_id.startswith("player-"):
        return f"player-{int(user_id[len('player-'):]) + shift}"
    return user_id


def _game_copy(user_id, copies: int) -> int:
    """Each player plays one copy of every title, always the same."""
    return 1 + zlib.crc32(f"{user_id}/games".encode()) % copies


def _moved(line: str, day: int, arrivals: int = 0, games_per_title: int = 1) -> str:
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
    if arrivals and "user_id" in event:
        event["user_id"] = _player(event["user_id"], day * arrivals)
    if games_per_title > 1 and "game_id" in event and "user_id" in event:
        copy = _game_copy(event["user_id"], games_per_title)
        if copy > 1:
            event["game_id"] = f"{event['game_id']}_{copy}"
            event["game_name"] = f"{event.get('game_name', event['game_id'])} #{copy}"
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


def generate_days(days: int, events_per_day: int, seed: int = 7, arrivals: int = 0,
                  games_per_title: int = 1) -> list:
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    if arrivals % 2:
        raise ValueError(f"arrivals must be even (players alternate two id styles), got {arrivals}")
    return [_moved(line, day, arrivals, games_per_title) if line else line
            for day in range(days) for line in generate(events_per_day, seed + day)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--events", type=int, default=3000, help="about how many lines per day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--arrivals", type=int, default=0, help="new players a day (even)")
    parser.add_argument("--games_per_title", type=int, default=1)
    parser.add_argument("--output", required=True, help="a .jsonl or .jsonl.gz path")
    args = parser.parse_args(argv)
    try:
        lines = generate_days(args.days, args.events, args.seed, args.arrivals, args.games_per_title)
    except ValueError as e:
        parser.error(str(e))
    write(args.output, lines)
    print(f"wrote {len(lines):,} lines of {args.days} days to {args.output}")


if __name__ == "__main__":
    main()
