"""Generates a realistic day of casino gameplay events as JSONL.

Players spin every few seconds, take short breaks inside a session and long
ones between sessions, hop between games, and produce both separate bet/win
events and combined bet_win events (free spins included), rollbacks, logouts
(about 3 sessions in 10 end with one), several currencies (EUR, BRL, USD, ETH
to the wei, and players whose events carry none), redelivered duplicates,
event types the job ignores and a few malformed lines.
Deterministic for a given --seed.

    python -m tools.generate_events --events=100000 --output=day.jsonl[.gz]
"""
import argparse
import gzip
import json
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

GAMES = [
    ("GATES_OF_OLYMPUS", "Gates of Olympus"), ("SWEET_BONANZA", "Sweet Bonanza"),
    ("MAHJONG_WAYS", "Mahjong Ways"), ("MAHJONG_WAYS_2", "Mahjong Ways 2"),
    ("WILD_BANDITO", "Wild Bandito"), ("STARLIGHT_PRINCESS", "Starlight Princess"),
    ("BOOK_OF_DEAD", "Book of Dead"), ("BIG_BASS_BONANZA", "Big Bass Bonanza"),
    ("SUGAR_RUSH", "Sugar Rush"), ("THE_DOG_HOUSE", "The Dog House"),
    ("FRUIT_PARTY", "Fruit Party"), ("WOLF_GOLD", "Wolf Gold"),
    ("LIGHTNING_ROULETTE", "Lightning Roulette"), ("CRAZY_TIME", "Crazy Time"),
    ("BLACKJACK_VIP", "Blackjack VIP"), ("AVIATOR", "Aviator"),
    ("PLINKO", "Plinko"), ("MINES", "Mines"), ("STARBURST", "Starburst"),
    ("GONZOS_QUEST", "Gonzo's Quest"), ("REACTOONZ", "Reactoonz"),
    ("LEGACY_OF_DEAD", "Legacy of Dead"), ("MONEY_TRAIN_3", "Money Train 3"),
    ("JAMMIN_JARS", "Jammin' Jars"),
]
PLATFORMS = ["web", "mobile", "desktop", "pwa"]
# (currency, weight, stake multiplier): a multi-currency casino, a few players
# without a currency on their events.
CURRENCIES = [("EUR", 50, 1), ("BRL", 25, 5), ("USD", 15, 1), ("ETH", 5, None), (None, 5, 1)]
STAKES = ["0.10", "0.20", "0.40", "0.50", "1", "1.50", "2", "5", "10", "20", "50", "100"]
DAY = datetime(2026, 1, 6, tzinfo=timezone.utc)
GAP_SECONDS = 300


class _Day:
    def __init__(self, seed: int, target_events: int):
        self.rng = random.Random(seed)
        self.target = target_events
        self.lines = []  # (occurred_at ms, order, line)
        self.next_id = 0

    def event_id(self) -> str:
        self.next_id += 1
        return f"e{self.next_id:09d}"

    def emit(self, t_ms: int, event: dict) -> None:
        event["occurred_at"] = self._timestamp(t_ms)
        self.lines.append((t_ms, len(self.lines), json.dumps(event, separators=(",", ":"))))

    def _timestamp(self, t_ms: int):
        # Most producers send epoch ms; some send RFC 3339 with an offset.
        roll = self.rng.random()
        if roll < 0.9:
            return t_ms
        moment = datetime.fromtimestamp(t_ms / 1000, tz=timezone.utc)
        if roll < 0.95:
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t_ms % 1000:03d}Z"
        local = moment.astimezone(timezone(timedelta(hours=3)))
        return local.isoformat(timespec="milliseconds")

    def player(self, user_id) -> None:
        rng = self.rng
        tier = rng.choices([0, 1, 2, 3], weights=[50, 30, 15, 5])[0]
        stakes = STAKES[tier * 2: tier * 2 + 6]
        platform = rng.choice(PLATFORMS)
        client_version = f"{rng.randint(3, 5)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
        currency, _, multiplier = rng.choices(CURRENCIES, weights=[c[1] for c in CURRENCIES])[0]
        if multiplier is None:  # crypto: stakes in ETH, exact to the wei
            stakes = [str((Decimal(s) / Decimal("2437.19")).quantize(Decimal("1e-18"))) for s in stakes]
        elif multiplier != 1:
            stakes = [str(int(float(s) * multiplier * 100) / 100) for s in stakes]
        t = int((DAY + timedelta(seconds=rng.uniform(0, 20 * 3600))).timestamp() * 1000)
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
            game = rng.choice(GAMES)
            spins = int(rng.lognormvariate(3.5, 1.0)) + 1
            for _ in range(spins):
                if rng.random() < 0.03:
                    game = rng.choice(GAMES)  # game hopping
                self.spin(user_id, t, game, rng.choice(stakes), platform, client_version, currency)
                pause = rng.expovariate(1 / 4.0) + 0.5
                if rng.random() < 0.02:
                    pause = rng.uniform(60, GAP_SECONDS - 10)  # a break that keeps the session
                t += int(pause * 1000)
            if rng.random() < 0.3:  # the player leaves the lobby: an explicit end of the session
                self.emit(t + rng.randint(0, 60_000), {"event_id": self.event_id(), "user_id": user_id,
                                                       "event_type": "logout", "platform": platform})
            t += int(rng.uniform(GAP_SECONDS + 5, 3 * 3600) * 1000)  # the session ends
            if rng.random() < 0.1:
                self.emit(t - 60_000, {"event_id": self.event_id(), "user_id": user_id,
                                       "event_type": rng.choice(["login", "deposit", "logout"])})

    def spin(self, user_id, t, game, stake, platform, client_version, currency) -> None:
        rng = self.rng
        base = {"user_id": user_id, "game_id": game[0], "game_name": game[1],
                "platform": platform, "client_version": client_version}
        if currency:
            base["currency"] = currency
        free_spin = rng.random() < 0.04
        wins = rng.random() < 0.35
        payout = _times(stake, rng.choice(["0.5", "1", "1.5", "2", "3", "5", "10", "50"])) if wins else None
        if rng.random() < 0.3:
            event = {"event_id": self.event_id(), "event_type": "bet_win", **base}
            if free_spin:
                event.update(bet_amount=0, bet_bonus_amount=stake)
            else:
                event["bet_amount"] = stake
            event["win_amount"] = payout or 0
            self.emit(t, event)
        else:
            bet = {"event_id": self.event_id(), "event_type": "bet", **base,
                   "bet_amount": 0 if free_spin else stake}
            if free_spin:
                bet["bet_bonus_amount"] = stake
            self.emit(t, bet)
            if payout:
                win_at = t + rng.randint(200, 2500)
                self.emit(win_at, {"event_id": self.event_id(), "event_type": "win", **base,
                                   "win_amount": payout, "win_bonus_amount": "0"})
        if rng.random() < 0.003:
            kind = rng.choice(["bet_rollback", "win_rollback"])
            amount = {"bet_amount": stake} if kind == "bet_rollback" else {"win_amount": payout or stake}
            self.emit(t + 3000, {"event_id": self.event_id(), "event_type": kind, **base, **amount})

    def finish(self) -> list:
        rng = self.rng
        self.lines.sort()
        lines = [line for _, _, line in self.lines]
        out = []
        for line in lines:
            out.append(line)
            if rng.random() < 0.005:
                out.append(line)  # at-least-once delivery: an exact copy
            if rng.random() < 0.001:
                out.append(self.malformed(line))
            if rng.random() < 0.0005:
                out.append("")
        return out

    def malformed(self, line: str) -> str:
        rng = self.rng
        event = json.loads(line)
        event["event_id"] = self.event_id()
        kind = rng.randrange(6)
        if kind == 0:
            return line[: rng.randint(1, len(line) - 1)]  # truncated
        if kind == 1:
            event.pop("user_id")
        elif kind == 2:
            event["bet_amount" if "bet_amount" in event else "win_amount"] = -1
        elif kind == 3:
            event["occurred_at"] = "2026-01-06 12:00:00"  # no offset
        elif kind == 4:
            event["occurred_at"] = "yesterday"
        else:
            return "[1, 2, 3]"
        return json.dumps(event, separators=(",", ":"))


def _times(stake: str, multiplier: str) -> str:
    """stake x multiplier, exactly (crypto stakes have 18 places)."""
    return format(Decimal(stake) * Decimal(multiplier), "f")


def generate(target_events: int, seed: int = 7) -> list:
    """The lines of a generated day (about `target_events` lines)."""
    day = _Day(seed, target_events)
    user = 0
    while len(day.lines) < target_events:
        user += 1
        day.player(100_000 + user if user % 2 else f"player-{user}")
    return day.finish()


def write(path: str, lines: list) -> None:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="about how many lines to write")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", required=True, help="a .jsonl or .jsonl.gz path")
    args = parser.parse_args(argv)
    lines = generate(args.events, args.seed)
    write(args.output, lines)
    print(f"wrote {len(lines):,} lines to {args.output}")


if __name__ == "__main__":
    main()
