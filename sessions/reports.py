"""The sessions dashboard's reports (the eight of the product page), as pure
functions over our own output records: `gs_game_session_ended` and
`gs_game_session_changed` (SPEC §3). No Beam here: `transforms.report` wires
these functions into a pipeline, and the BigQuery SQL in `reports/sql/` must
give the same numbers. Definitions and the choices behind them: docs/dashboard.md.

The unit everything hangs on is a *session*, and a session's *day* is the UTC
date of its start, so a session running over midnight counts once, on the day
it began. Amounts stay `Decimal`; averages are rounded half-up to 2 places and
are 0 when there is nothing to average (as in the session records themselves).
"""
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from sessions.records import average

CENT = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TOP_GAMES = 50

# Value tiers: players ranked by their stake over the whole reported period.
# A tier takes players while their rank (1 + players with a strictly larger
# stake, so equal stakes share a tier) is within the first ceil(share) percent.
TIERS = ("Top", "High", "Medium", "Low")
TIER_CUMULATIVE_PERCENT = (5, 20, 50)  # Top 5%, High next 15%, Medium next 30%, Low the rest


# ---------------------------------------------------------------- the reports' shape

@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "day" (ISO date), "text", "count" (int) or "amount" (Decimal, 2 places)
    doc: str


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    columns: Tuple[Column, ...]

    @property
    def column_names(self) -> Tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _day(doc="UTC date of the session start"):
    return Column("day", "day", doc)


def _count(name, doc):
    return Column(name, "count", doc)


def _amount(name, doc):
    return Column(name, "amount", doc)


SESSION_LENGTH = Report("session_length", "Chart 1: Daily trend - session length (sec)", (
    _day(),
    _count("users_with_sessions", "distinct players with a session that day"),
    _count("sessions", "sessions that started that day"),
    _amount("median_user_session_seconds", "median over the day's players of their summed session seconds"),
    _amount("median_session_length_seconds", "median of the day's session lengths"),
))
SESSIONS_PER_USER = Report("sessions_per_user", "Chart 2: Sessions count and session length (sec) per user", (
    _day(),
    _count("users_with_sessions", "distinct players with a session that day"),
    _count("sessions", "sessions that started that day"),
    _count("session_seconds", "sum of the day's session lengths"),
    _amount("avg_sessions_per_user", "sessions / users_with_sessions"),
    _amount("avg_session_seconds_per_user", "session_seconds / users_with_sessions"),
))
BETS_PER_SESSION = Report("bets_per_session", "Chart 3: Avg bet amount and avg bet count per session", (
    _day(),
    _count("sessions", "sessions that started that day"),
    _count("bets", "bets of those sessions"),
    _amount("stake", "total stake (real + bonus) of those sessions"),
    _amount("avg_stake_per_session", "stake / sessions"),
    _amount("avg_bets_per_session", "bets / sessions"),
))
GAMES_PER_SESSION = Report("games_per_session", "Chart 4: Avg unique games per session", (
    _day(),
    _count("sessions", "sessions that started that day"),
    _count("session_games", "sum over those sessions of their distinct games"),
    _amount("avg_unique_games_per_session", "session_games / sessions"),
))
NEW_USERS = Report("new_users", "Chart 5: Acquisition quality - sessions and duration of new users", (
    _day(),
    _count("new_users", "players whose first session in the data started that day"),
    _count("sessions", "their sessions that day"),
    _count("session_seconds", "sum of those sessions' lengths"),
    _amount("avg_sessions_per_new_user", "sessions / new_users"),
    _amount("avg_session_seconds_per_new_user", "session_seconds / new_users"),
))
VALUE_TIERS = Report("value_tiers", "Charts 6, 7: Users and sessions per user by value tier", (
    _day(),
    Column("value_tier", "text", "Top, High, Medium or Low, by the player's stake over the period"),
    _count("users_with_sessions", "the tier's players with a session that day"),
    _count("sessions", "their sessions that day"),
    _amount("avg_sessions_per_user", "sessions / users_with_sessions"),
))
TOP_GAMES_REPORT = Report("top_games", "Table 8: Session length and retention per game - top 50 games", (
    _count("rank", "1 = most players; ties by sessions, then game id"),
    Column("game_id", "text", "the game"),
    Column("game_name", "text", "its name from the changed events, else the game id"),
    _count("players", "distinct players of the game over the period"),
    _count("player_days", "distinct (player, day) pairs with the game"),
    _count("sessions", "sessions that include the game"),
    _count("play_seconds", "seconds spent on the game (its segments)"),
    _amount("sessions_per_user", "sessions / player_days"),
    _amount("duration_per_user_seconds", "play_seconds / player_days"),
    _count("returning_players", "players of the game in two or more sessions"),
    _amount("stickiness_pct", "100 * returning_players / players"),
))

REPORTS: Tuple[Report, ...] = (SESSION_LENGTH, SESSIONS_PER_USER, BETS_PER_SESSION, GAMES_PER_SESSION,
                               NEW_USERS, VALUE_TIERS, TOP_GAMES_REPORT)
REPORTS_BY_NAME: Dict[str, Report] = {r.name: r for r in REPORTS}


def sort_key(row: dict) -> tuple:
    """Tidy files list rows by day (tiers in their own order), games by rank."""
    if "rank" in row:
        return (row["rank"],)
    return (row["day"], TIERS.index(row["value_tier"]) if "value_tier" in row else 0)


# ---------------------------------------------------------------- from records to facts

def epoch_ms(value) -> int:
    """Avro readers give timestamp-millis as aware datetimes, JSONL as ints."""
    if isinstance(value, datetime):
        return (value - _EPOCH) // timedelta(milliseconds=1)
    return int(value)


def utc_day(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class GamePlay:
    """One session's time on one game."""
    game_id: str
    seconds: int
    name: Optional[str]  # only segments that ended with a switch carry a name


@dataclass(frozen=True)
class SessionFacts:
    session_id: str
    user_id: str
    day: str
    seconds: int
    stake: Decimal
    bets: int
    games: Tuple[GamePlay, ...]  # one per distinct game, in order of first bet


def session_facts(ended: dict, changes: Iterable[dict]) -> SessionFacts:
    """One ended record and the changed records of the same session.

    Each changed record is a finished segment of its old game. The last
    segment emits no changed record: it runs from the last switch (the latest
    changed record's end) to the session end, on that switch's new game, or is
    the whole session when there was no switch. Segment lengths are floored to
    whole seconds one by one, as in the records, so a session's game seconds
    can add up to slightly less than its length."""
    start, end = epoch_ms(ended["gs_session_start_date"]), epoch_ms(ended["gs_session_end_date"])
    seconds: Dict[str, int] = defaultdict(int)
    names: Dict[str, str] = {}
    last_switch = None
    for change in changes:
        game = change["gs_game_old_id"]
        seconds[game] += change["gs_session_length_seconds"]
        names[game] = min(names.get(game, change["gs_game_name"]), change["gs_game_name"])
        # Several switches in one millisecond: the later segment starts later.
        order = (epoch_ms(change["gs_session_end_date"]), epoch_ms(change["gs_session_start_date"]))
        if last_switch is None or order > last_switch[0]:
            last_switch = (order, change["gs_game_new_id"])
    game_ids = list(ended["gs_all_game_ids"])
    if last_switch is None:
        seconds[game_ids[0]] += ended["gs_session_length_seconds"]
    else:
        (switched_at, _), last_game = last_switch
        seconds[last_game] += (end - switched_at) // 1000
    return SessionFacts(
        session_id=ended["gs_gameplay_session_id"],
        user_id=ended["user_id"],
        day=utc_day(start),
        seconds=ended["gs_session_length_seconds"],
        stake=ended["gs_total_bet_amount"],
        bets=ended["gs_bets_count"],
        games=tuple(GamePlay(g, seconds.get(g, 0), names.get(g)) for g in game_ids))


# ---------------------------------------------------------------- players and their days

@dataclass(frozen=True)
class ValueTiers:
    """The lowest period stake that still makes Top, High and Medium."""
    floors: Tuple[Decimal, ...]

    @classmethod
    def from_stakes(cls, stakes: Iterable[Decimal]) -> "ValueTiers":
        ranked = sorted(stakes, reverse=True)
        if not ranked:
            return cls(())
        # A player is in the first p% when fewer than p% of all players (rounded
        # up) have a larger stake; the last such position holds the tier's floor.
        return cls(tuple(ranked[(percent * len(ranked) + 99) // 100 - 1]
                         for percent in TIER_CUMULATIVE_PERCENT))

    def tier(self, stake: Decimal) -> str:
        for name, floor in zip(TIERS, self.floors):
            if stake >= floor:
                return name
        return TIERS[-1]


@dataclass(frozen=True)
class UserDay:
    """A player's sessions of one day."""
    user_id: str
    day: str
    tier: str
    new: bool  # the player's first day with a session in the data
    session_seconds: Tuple[int, ...]
    stake: Decimal
    bets: int
    session_games: int  # distinct games per session, summed

    @property
    def sessions(self) -> int:
        return len(self.session_seconds)

    @property
    def seconds(self) -> int:
        return sum(self.session_seconds)


@dataclass(frozen=True)
class Player:
    user_id: str
    sessions: Tuple[SessionFacts, ...]

    @property
    def stake(self) -> Decimal:
        return sum((s.stake for s in self.sessions), Decimal(0))

    def days(self, tiers: ValueTiers) -> List[UserDay]:
        tier = tiers.tier(self.stake)
        by_day: Dict[str, List[SessionFacts]] = defaultdict(list)
        for session in self.sessions:
            by_day[session.day].append(session)
        first_day = min(by_day)
        return [UserDay(
            user_id=self.user_id, day=day, tier=tier, new=day == first_day,
            session_seconds=tuple(sorted(s.seconds for s in sessions)),
            stake=sum((s.stake for s in sessions), Decimal(0)),
            bets=sum(s.bets for s in sessions),
            session_games=sum(len(s.games) for s in sessions),
        ) for day, sessions in sorted(by_day.items())]


# ---------------------------------------------------------------- one day's rows

def median(values: Sequence[int]) -> Decimal:
    """Halfway between the middle two for an even count (PERCENTILE_CONT 0.5)."""
    ordered = sorted(values)
    if not ordered:
        return Decimal(0)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[middle])
    return (Decimal(ordered[middle - 1]) + ordered[middle]) / 2


def session_length_rows(day: str, users: Sequence[UserDay]) -> List[dict]:
    return [{
        "day": day,
        "users_with_sessions": len(users),
        "sessions": sum(u.sessions for u in users),
        "median_user_session_seconds": median([u.seconds for u in users]),
        "median_session_length_seconds": median([s for u in users for s in u.session_seconds]),
    }]


def _per_user(users: Sequence[UserDay]) -> dict:
    sessions, seconds = sum(u.sessions for u in users), sum(u.seconds for u in users)
    return {"sessions": sessions, "session_seconds": seconds,
            "avg_sessions_per_user": average(Decimal(sessions), len(users)),
            "avg_session_seconds_per_user": average(Decimal(seconds), len(users))}


def sessions_per_user_rows(day: str, users: Sequence[UserDay]) -> List[dict]:
    return [{"day": day, "users_with_sessions": len(users), **_per_user(users)}]


def bets_per_session_rows(day: str, users: Sequence[UserDay]) -> List[dict]:
    sessions, bets = sum(u.sessions for u in users), sum(u.bets for u in users)
    stake = sum((u.stake for u in users), Decimal(0))
    return [{"day": day, "sessions": sessions, "bets": bets, "stake": stake,
             "avg_stake_per_session": average(stake, sessions),
             "avg_bets_per_session": average(Decimal(bets), sessions)}]


def games_per_session_rows(day: str, users: Sequence[UserDay]) -> List[dict]:
    sessions, games = sum(u.sessions for u in users), sum(u.session_games for u in users)
    return [{"day": day, "sessions": sessions, "session_games": games,
             "avg_unique_games_per_session": average(Decimal(games), sessions)}]


def new_users_rows(day: str, users: Sequence[UserDay]) -> List[dict]:
    new = [u for u in users if u.new]
    per_user = _per_user(new)
    return [{"day": day, "new_users": len(new), "sessions": per_user["sessions"],
             "session_seconds": per_user["session_seconds"],
             "avg_sessions_per_new_user": per_user["avg_sessions_per_user"],
             "avg_session_seconds_per_new_user": per_user["avg_session_seconds_per_user"]}]


def value_tier_rows(day: str, users: Sequence[UserDay]) -> List[dict]:
    """Every tier every day, 0 when none of its players played."""
    rows = []
    for tier in TIERS:
        members = [u for u in users if u.tier == tier]
        sessions = sum(u.sessions for u in members)
        rows.append({"day": day, "value_tier": tier, "users_with_sessions": len(members),
                     "sessions": sessions, "avg_sessions_per_user": average(Decimal(sessions), len(members))})
    return rows


DAY_REPORTS = {
    SESSION_LENGTH.name: session_length_rows,
    SESSIONS_PER_USER.name: sessions_per_user_rows,
    BETS_PER_SESSION.name: bets_per_session_rows,
    GAMES_PER_SESSION.name: games_per_session_rows,
    NEW_USERS.name: new_users_rows,
    VALUE_TIERS.name: value_tier_rows,
}


def day_rows(day: str, users: Iterable[UserDay]) -> List[Tuple[str, dict]]:
    """(report name, row) of every per-day report for one day's players."""
    users = sorted(users, key=lambda u: u.user_id)
    return [(name, row) for name, rows_of in DAY_REPORTS.items() for row in rows_of(day, users)]


# ---------------------------------------------------------------- games

@dataclass(frozen=True)
class GameSession:
    """A session's play on one game, by the game."""
    user_id: str
    day: str
    seconds: int
    name: Optional[str]


def game_sessions(session: SessionFacts) -> List[Tuple[str, GameSession]]:
    return [(g.game_id, GameSession(session.user_id, session.day, g.seconds, g.name)) for g in session.games]


def game_row(game_id: str, plays: Iterable[GameSession]) -> dict:
    """A game's totals over the period; rank is set by `top_games`.

    Per user means per player-day, as the page's "per day"; a player comes back
    (stickiness) when they play the game in a second session, that is after a
    break of at least the session gap."""
    plays = list(plays)
    sessions_by_player: Dict[str, int] = defaultdict(int)
    for play in plays:
        sessions_by_player[play.user_id] += 1
    player_days = len({(p.user_id, p.day) for p in plays})
    seconds = sum(p.seconds for p in plays)
    returning = sum(1 for n in sessions_by_player.values() if n >= 2)
    names = [p.name for p in plays if p.name is not None]
    return {
        "rank": 0,
        "game_id": game_id,
        "game_name": min(names) if names else game_id,
        "players": len(sessions_by_player),
        "player_days": player_days,
        "sessions": len(plays),
        "play_seconds": seconds,
        "sessions_per_user": average(Decimal(len(plays)), player_days),
        "duration_per_user_seconds": average(Decimal(seconds), player_days),
        "returning_players": returning,
        "stickiness_pct": average(Decimal(100 * returning), len(sessions_by_player)),
    }


def top_games(rows: Iterable[dict], limit: int = TOP_GAMES) -> List[dict]:
    """The `limit` most popular games: most players, then most sessions."""
    ranked = sorted(rows, key=lambda r: (-r["players"], -r["sessions"], r["game_id"]))
    return [{**row, "rank": rank} for rank, row in enumerate(ranked[:limit], start=1)]
