"""The sessions dashboard's reports (the eight of the product page), as pure
functions over our own output records: `gs_game_session_ended` and
`gs_game_session_changed` (SPEC §3). No Beam here: `transforms.report` wires
these functions into a pipeline, and the BigQuery SQL in `reports/sql/` must
give the same numbers. Definitions and the choices behind them: docs/dashboard.md.

The unit everything hangs on is a *session*, and a session's *day* is the UTC
date of its start, so a session running over midnight counts once, on the day
it began. Amounts stay `Decimal`; averages are rounded half-up to 2 places and
are 0 when there is nothing to average (as in the session records themselves).

The input is split by the reported **period** (`Period`): sessions before it
are **history**, used only to know who is new and what a player was worth;
sessions after it are never looked at, so a day's numbers never depend on
anything that happened later.
"""
import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from sessions.records import average

CENT = Decimal("0.01")
# Money keeps the amounts' own 18 places: 2 would turn an average ETH bet into 0.00.
MONEY_DIGITS = 18
MONEY_PLACES = Decimal(1).scaleb(-MONEY_DIGITS)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TOP_GAMES = 50

# Value tiers: on each day, players are ranked by their stake over the
# VALUE_WINDOW_DAYS days before it. A tier takes players while their rank (1 +
# players with a strictly larger stake, so equal stakes share a tier) is
# within the first ceil(share) percent.
TIERS = ("Top", "High", "Medium", "Low")
TIER_CUMULATIVE_PERCENT = (5, 20, 50)  # Top 5%, High next 15%, Medium next 30%, Low the rest
VALUE_WINDOW_DAYS = 30
# Less history than this before the period and "new" or a tier may be wrong:
# a regular back from a month's break looks new, a whale's stake is unseen.
ENOUGH_HISTORY_DAYS = 30
# The operator's segmentation leaves some players out (registered after the export).
UNSEGMENTED = "Unsegmented"


# ---------------------------------------------------------------- the reports' shape

@dataclass(frozen=True)
class Column:
    name: str
    # "day" (ISO date), "text", "currency" (text or None), "count" (int), "amount" (Decimal, 2 places)
    # or "money" (Decimal, 18 places: a currency's own units, down to crypto's smallest)
    kind: str
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


def _money(name, doc):
    return Column(name, "money", doc)


PERIOD = Report("period", "The reported period and the history before it", (
    Column("from_date", "day", "first reported day (--from_date, else the input's first day)"),
    Column("to_date", "day", "last reported day (--to_date, else the input's last day)"),
    Column("history_from", "day", "the input's first day; history runs from it to the day before from_date"),
    _count("history_days", "days from history_from to the day before from_date (0: no history)"),
    _count("history_sessions", "sessions before from_date: never reported, only used for new users and tiers"),
    _count("sessions", "sessions in the period"),
    _count("currencies", "distinct currencies of the period's sessions (a session without one counts as one)"),
    _count("registered_players", "players whose registration date the --players file gives"),
    _count("segments", "distinct segments in the --players file (0: value tiers from stakes)"),
))
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
BETS_PER_SESSION = Report("bets_per_session", "Chart 3: Avg bet count per session", (
    _day(),
    _count("sessions", "sessions that started that day"),
    _count("bets", "bets of those sessions"),
    _amount("avg_bets_per_session", "bets / sessions"),
))
BET_AMOUNTS = Report("bet_amounts", "Chart 3: Avg bet amount and stake per session, per currency", (
    _day(),
    Column("currency", "currency", "the sessions' currency (empty: sessions without one)"),
    _count("sessions", "sessions in that currency that started that day"),
    _count("bets", "bets of those sessions"),
    _money("stake", "total stake (real + bonus) of those sessions"),
    _money("avg_bet_amount", "stake / bets: the average single bet"),
    _money("avg_stake_per_session", "stake / sessions: what a session wagers"),
))
GAMES_PER_SESSION = Report("games_per_session", "Chart 4: Avg unique games per session", (
    _day(),
    _count("sessions", "sessions that started that day"),
    _count("session_games", "sum over those sessions of their distinct games"),
    _amount("avg_unique_games_per_session", "session_games / sessions"),
))
NEW_USERS = Report("new_users", "Chart 5: Acquisition quality - sessions and duration of new users", (
    _day(),
    _count("new_users", "players registered that day (--players), else whose first session in all the input "
                        "(history included) started that day"),
    _count("sessions", "their sessions that day"),
    _count("session_seconds", "sum of those sessions' lengths"),
    _amount("avg_sessions_per_new_user", "sessions / new_users"),
    _amount("avg_session_seconds_per_new_user", "session_seconds / new_users"),
))
VALUE_TIERS = Report("value_tiers", "Charts 6, 7: Users and sessions per user by value tier", (
    _day(),
    Column("value_tier", "text", "the operator's segment (--players), else Top, High, Medium or Low by the "
                                 "player's stake over the 30 days before that day"),
    _count("tier_rank", "the tier's place, 1 = most valuable"),
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
    _count("returning_players", "players of the game on two or more days of the period"),
    _amount("stickiness_pct", "100 * returning_players / players"),
))

REPORTS: Tuple[Report, ...] = (PERIOD, SESSION_LENGTH, SESSIONS_PER_USER, BETS_PER_SESSION, BET_AMOUNTS,
                               GAMES_PER_SESSION, NEW_USERS, VALUE_TIERS, TOP_GAMES_REPORT)
REPORTS_BY_NAME: Dict[str, Report] = {r.name: r for r in REPORTS}


def sort_key(row: dict) -> tuple:
    """Tidy files list rows by day (tiers in their order, currencies by code), games by rank."""
    if "rank" in row:
        return (row["rank"],)
    if "day" not in row:
        return ()
    return row["day"], row.get("tier_rank", 0), row.get("currency") or ""


# ---------------------------------------------------------------- the period

def parse_day(text: str, what: str) -> str:
    """A UTC date as YYYY-MM-DD; ValueError naming `what` otherwise."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise ValueError(f"{what} must be a date as YYYY-MM-DD, got {text!r}")


def days_between(first: str, last: str) -> int:
    """Calendar days from `first` to `last` (negative when `last` is earlier)."""
    return (date.fromisoformat(last) - date.fromisoformat(first)).days


@dataclass(frozen=True)
class Period:
    """The reported days, both ends included. An open end (None) is the
    input's first or last day, which `resolve` fills in once it is known."""
    first_day: Optional[str] = None
    last_day: Optional[str] = None

    def __post_init__(self):
        if self.first_day and self.last_day and self.first_day > self.last_day:
            raise ValueError(f"--from_date {self.first_day} is after --to_date {self.last_day}")

    def resolve(self, input_days: Iterable[str]) -> "Period":
        days = sorted(input_days)
        if not days:
            return self
        return Period(self.first_day or days[0], self.last_day or days[-1])

    def __contains__(self, day: str) -> bool:
        return (self.first_day is None or day >= self.first_day) and (self.last_day is None or day <= self.last_day)

    def is_history(self, day: str) -> bool:
        return self.first_day is not None and day < self.first_day


# ---------------------------------------------------------------- the operator's players

@dataclass(frozen=True)
class PlayerProfile:
    """One line of a --players file."""
    user_id: str
    registered_day: Optional[str] = None  # UTC date of registration
    segment: Optional[str] = None


def _registered_day(value) -> Optional[str]:
    """A date, an RFC 3339 time with offset, or epoch milliseconds -> UTC date."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"registered_at must be a date, a time with offset or epoch ms, got {value!r}")
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return utc_day(int(value))
    if isinstance(value, str):
        if len(value) == 10:
            return parse_day(value, "registered_at")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(timezone.utc).date().isoformat()
    raise ValueError(f"registered_at must be a date, a time with offset or epoch ms, got {value!r}")


def player_profile(fields: Mapping) -> PlayerProfile:
    """One player of the operator's file; other columns are ignored (exports carry many)."""
    user_id = fields.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id:
        raise ValueError(f"user_id must be a non-empty string or integer, got {user_id!r}")
    segment = fields.get("segment")
    if segment == "":
        segment = None
    if segment is not None and not isinstance(segment, str):
        raise ValueError(f"segment must be a string, got {segment!r}")
    return PlayerProfile(user_id, _registered_day(fields.get("registered_at")), segment)


class PlayersFile:
    """How to read one line of a --players file: JSONL (one object a line)
    or CSV with a header line. CSV fields must not span lines."""

    def __init__(self, path: str, header: Optional[Sequence[str]] = None):
        self.path = path
        self.header = tuple(header) if header is not None else None

    @property
    def is_csv(self) -> bool:
        return self.path.lower().endswith((".csv", ".csv.gz"))

    @classmethod
    def format_of(cls, path: str) -> "PlayersFile":
        if not path.lower().endswith((".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            raise ValueError(f"--players={path}: name it .csv or .jsonl (optionally .gz)")
        return cls(path)

    def with_header(self, line: str) -> "PlayersFile":
        header = next(csv.reader([line]), [])
        if "user_id" not in header:
            raise ValueError(f"--players={self.path}: the CSV header has no user_id column: {line.strip()!r}")
        return PlayersFile(self.path, header)

    def profile(self, line: str) -> Optional[PlayerProfile]:
        """None for a blank line; ValueError for a bad one."""
        if not line.strip():
            return None
        if self.is_csv:
            values = next(csv.reader([line]))
            if len(values) != len(self.header):
                raise ValueError(f"{len(values)} fields where the header has {len(self.header)}")
            fields = dict(zip(self.header, values))
        else:
            try:
                fields = json.loads(line)
            except ValueError:
                raise ValueError("not JSON") from None
            if not isinstance(fields, dict):
                raise ValueError("not a JSON object")
        return player_profile(fields)


@dataclass(frozen=True)
class Players:
    """What a whole --players file says, as far as the reports care."""
    registered: int = 0
    segments: Tuple[str, ...] = ()  # in tier order (`segment_order`)

    @classmethod
    def of(cls, profiles: Iterable[PlayerProfile]) -> "Players":
        registered, segments = 0, set()
        for profile in profiles:
            registered += profile.registered_day is not None
            if profile.segment is not None:
                segments.add(profile.segment)
        return cls(registered, segment_order(segments))

    @property
    def tier_labels(self) -> Tuple[str, ...]:
        return self.segments + (UNSEGMENTED,) if self.segments else TIERS


def segment_order(segments: Iterable[str]) -> Tuple[str, ...]:
    """Segments named like our tiers keep the tiers' order, the rest follow by name."""
    return tuple(sorted(set(segments), key=lambda s: (TIERS.index(s) if s in TIERS else len(TIERS), s)))


def read_players(lines: Iterable[str], path: str) -> Tuple[PlayersFile, List[PlayerProfile]]:
    """Every profile of a whole file, checked, and how to read its lines
    (the job reads the file again line by line, in parallel)."""
    players_file, profiles, seen = PlayersFile.format_of(path), [], set()
    for number, line in enumerate(lines, start=1):
        if players_file.is_csv and players_file.header is None:
            players_file = players_file.with_header(line)
            continue
        try:
            profile = players_file.profile(line)
        except ValueError as e:
            raise ValueError(f"--players={path} line {number}: {e}") from None
        if profile is None:
            continue
        if profile.user_id in seen:
            raise ValueError(f"--players={path} line {number}: user_id {profile.user_id!r} appears twice")
        seen.add(profile.user_id)
        profiles.append(profile)
    if players_file.is_csv and players_file.header is None:
        raise ValueError(f"--players={path}: empty, not even a CSV header")
    return players_file, profiles


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
    currency: Optional[str] = None


def session_facts(ended: dict, changes: Iterable[dict]) -> SessionFacts:
    """One ended record and the changed records of the same session.

    Each changed record is a finished segment of its old game. The last
    segment emits no changed record: it runs from the last switch (the latest
    changed record's end) to the session end, on that switch's new game, or is
    the whole session when there was no switch. Segment lengths are floored to
    whole seconds one by one, as in the records, so a session's game seconds
    can add up to slightly less than its length.

    Records written before sessions carried a currency have no `currency`
    field: their sessions have none, as do sessions whose bets named none."""
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
        stake=Decimal(ended["gs_total_bet_amount"]),
        bets=ended["gs_bets_count"],
        games=tuple(GamePlay(g, seconds.get(g, 0), names.get(g)) for g in game_ids),
        currency=ended.get("currency"))


# ---------------------------------------------------------------- players and their days

@dataclass(frozen=True)
class ValueTiers:
    """The lowest stake that still makes Top, High and Medium."""
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
class CurrencyPlay:
    """A player's sessions of one day in one currency."""
    currency: Optional[str]
    sessions: int
    bets: int
    stake: Decimal


@dataclass(frozen=True)
class UserDay:
    """A player's sessions of one reported day."""
    user_id: str
    day: str
    new: bool
    session_seconds: Tuple[int, ...]
    bets: int
    session_games: int  # distinct games per session, summed
    amounts: Tuple[CurrencyPlay, ...] = ()  # by currency, None first
    segment: Optional[str] = None  # from --players

    @property
    def sessions(self) -> int:
        return len(self.session_seconds)

    @property
    def seconds(self) -> int:
        return sum(self.session_seconds)


def _currency_order(currency: Optional[str]) -> Tuple[bool, str]:
    return currency is not None, currency or ""


# (day it counts for, user, currency, stake over the window before that day)
PastStake = Tuple[str, str, Optional[str], Decimal]


@dataclass(frozen=True)
class Player:
    """A player's every session in the input, history included."""
    user_id: str
    sessions: Tuple[SessionFacts, ...]

    @property
    def first_day(self) -> str:
        return min(s.day for s in self.sessions)

    def days(self, period: Period, profile: Optional[PlayerProfile] = None) -> List[UserDay]:
        """The player's reported days. New on a day: registered that day when
        the operator says when, else the first session of all the input."""
        new_day = profile.registered_day if profile and profile.registered_day else self.first_day
        by_day: Dict[str, List[SessionFacts]] = defaultdict(list)
        for session in self.sessions:
            if session.day in period:
                by_day[session.day].append(session)
        return [UserDay(
            user_id=self.user_id, day=day, new=day == new_day,
            session_seconds=tuple(sorted(s.seconds for s in sessions)),
            bets=sum(s.bets for s in sessions),
            session_games=sum(len(s.games) for s in sessions),
            amounts=_by_currency(sessions),
            segment=profile.segment if profile else None,
        ) for day, sessions in sorted(by_day.items())]

    def daily_stakes(self) -> List[Tuple[str, Optional[str], Decimal]]:
        """(day, currency, stake) of every day the player staked, all the input."""
        daily: Dict[Tuple[str, Optional[str]], Decimal] = defaultdict(Decimal)
        for session in self.sessions:
            daily[session.day, session.currency] += session.stake
        return [(day, currency, stake) for (day, currency), stake in daily.items()]

    def past_stakes(self, period: Period) -> List[PastStake]:
        return past_stakes(self.user_id, self.daily_stakes(), period)


def past_stakes(user_id: str, daily: Iterable[Tuple[str, Optional[str], Decimal]], period: Period) -> List[PastStake]:
    """For each reported day whose window holds some of the player's play,
    their stake per currency over the VALUE_WINDOW_DAYS days before it: only
    earlier days, so later data cannot move it."""
    first = date.fromisoformat(period.first_day).toordinal() if period.first_day else 0
    last = date.fromisoformat(period.last_day).toordinal() if period.last_day else date.max.toordinal()
    window: Dict[Tuple[str, Optional[str]], Decimal] = defaultdict(Decimal)
    for played, currency, stake in daily:
        ordinal = date.fromisoformat(played).toordinal()
        for later in range(max(ordinal + 1, first), min(ordinal + VALUE_WINDOW_DAYS, last) + 1):
            window[date.fromordinal(later).isoformat(), currency] += stake
    return [(day, user_id, currency, stake) for (day, currency), stake in
            sorted(window.items(), key=lambda item: (item[0][0], _currency_order(item[0][1])))]


def _by_currency(sessions: Sequence[SessionFacts]) -> Tuple[CurrencyPlay, ...]:
    grouped: Dict[Optional[str], List[SessionFacts]] = defaultdict(list)
    for session in sessions:
        grouped[session.currency].append(session)
    return tuple(CurrencyPlay(currency, len(group), sum(s.bets for s in group),
                              sum((s.stake for s in group), Decimal(0)))
                 for currency, group in sorted(grouped.items(), key=lambda item: _currency_order(item[0])))


def stake_tiers(past: Iterable[PastStake]) -> Dict[str, str]:
    """One day's tier of every player with a stake in the window before it.

    Stakes in different currencies are not comparable, so each currency ranks
    its own players, and a player with several keeps their best tier. A
    player without a session in the window is not here (`Low`)."""
    by_currency: Dict[Optional[str], Dict[str, Decimal]] = defaultdict(dict)
    for _, user, currency, stake in past:
        by_currency[currency][user] = stake
    tiers: Dict[str, str] = {}
    for stakes in by_currency.values():
        cuts = ValueTiers.from_stakes(stakes.values())
        for user, stake in stakes.items():
            tier = cuts.tier(stake)
            if user not in tiers or TIERS.index(tier) < TIERS.index(tiers[user]):
                tiers[user] = tier
    return tiers


@dataclass(frozen=True)
class Segmentation:
    """Where a day's tier labels come from: the operator's segments when the
    --players file has any, else the stakes of the window before the day."""
    players: Players = field(default_factory=Players)

    @property
    def labels(self) -> Tuple[str, ...]:
        return self.players.tier_labels

    def tiers(self, users: Sequence[UserDay], past: Iterable[PastStake]) -> Dict[str, str]:
        if self.players.segments:
            return {u.user_id: u.segment or UNSEGMENTED for u in users}
        by_stake = stake_tiers(past)
        return {u.user_id: by_stake.get(u.user_id, TIERS[-1]) for u in users}


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


def session_length_rows(day: str, users: Sequence[UserDay], _tiers) -> List[dict]:
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


def sessions_per_user_rows(day: str, users: Sequence[UserDay], _tiers) -> List[dict]:
    return [{"day": day, "users_with_sessions": len(users), **_per_user(users)}]


def bets_per_session_rows(day: str, users: Sequence[UserDay], _tiers) -> List[dict]:
    sessions, bets = sum(u.sessions for u in users), sum(u.bets for u in users)
    return [{"day": day, "sessions": sessions, "bets": bets,
             "avg_bets_per_session": average(Decimal(bets), sessions)}]


def bet_amount_rows(day: str, users: Sequence[UserDay], _tiers) -> List[dict]:
    """Amounts only add up within a currency: a row per currency of the day."""
    totals: Dict[Optional[str], List] = {}
    for play in (p for u in users for p in u.amounts):
        sessions, bets, stake = totals.get(play.currency, (0, 0, Decimal(0)))
        totals[play.currency] = (sessions + play.sessions, bets + play.bets, stake + play.stake)
    return [{"day": day, "currency": currency, "sessions": sessions, "bets": bets, "stake": stake,
             "avg_bet_amount": average(stake, bets, MONEY_DIGITS),
             "avg_stake_per_session": average(stake, sessions, MONEY_DIGITS)}
            for currency, (sessions, bets, stake) in sorted(totals.items(), key=lambda t: _currency_order(t[0]))]


def games_per_session_rows(day: str, users: Sequence[UserDay], _tiers) -> List[dict]:
    sessions, games = sum(u.sessions for u in users), sum(u.session_games for u in users)
    return [{"day": day, "sessions": sessions, "session_games": games,
             "avg_unique_games_per_session": average(Decimal(games), sessions)}]


def new_users_rows(day: str, users: Sequence[UserDay], _tiers) -> List[dict]:
    new = [u for u in users if u.new]
    per_user = _per_user(new)
    return [{"day": day, "new_users": len(new), "sessions": per_user["sessions"],
             "session_seconds": per_user["session_seconds"],
             "avg_sessions_per_new_user": per_user["avg_sessions_per_user"],
             "avg_session_seconds_per_new_user": per_user["avg_session_seconds_per_user"]}]


@dataclass(frozen=True)
class DayTiers:
    labels: Tuple[str, ...]
    of_user: Mapping[str, str]


def value_tier_rows(day: str, users: Sequence[UserDay], tiers: DayTiers) -> List[dict]:
    """Every tier every day, 0 when none of its players played."""
    rows = []
    for rank, tier in enumerate(tiers.labels, start=1):
        members = [u for u in users if tiers.of_user[u.user_id] == tier]
        sessions = sum(u.sessions for u in members)
        rows.append({"day": day, "value_tier": tier, "tier_rank": rank, "users_with_sessions": len(members),
                     "sessions": sessions, "avg_sessions_per_user": average(Decimal(sessions), len(members))})
    return rows


DAY_REPORTS = {
    SESSION_LENGTH.name: session_length_rows,
    SESSIONS_PER_USER.name: sessions_per_user_rows,
    BETS_PER_SESSION.name: bets_per_session_rows,
    BET_AMOUNTS.name: bet_amount_rows,
    GAMES_PER_SESSION.name: games_per_session_rows,
    NEW_USERS.name: new_users_rows,
    VALUE_TIERS.name: value_tier_rows,
}


def day_rows(day: str, users: Iterable[UserDay], past: Iterable[PastStake] = (),
             segmentation: Segmentation = Segmentation()) -> List[Tuple[str, dict]]:
    """(report name, row) of every per-day report for one reported day's
    players; `past` holds the stakes of the window before the day."""
    users = sorted(users, key=lambda u: u.user_id)
    if not users:
        return []
    tiers = DayTiers(segmentation.labels, segmentation.tiers(users, past))
    return [(name, row) for name, rows_of in DAY_REPORTS.items() for row in rows_of(day, users, tiers)]


# ---------------------------------------------------------------- the period's own row

@dataclass(frozen=True)
class DayCensus:
    """Sessions and currencies of one day of the input."""
    day: str
    sessions: int
    currencies: frozenset


def period_row(period: Period, census: Iterable[DayCensus], players: Players = Players()) -> List[dict]:
    """The one row of the `period` report; none when neither the options nor
    the input give the period's ends."""
    census = sorted(census, key=lambda c: c.day)
    period = period.resolve(c.day for c in census)
    if period.first_day is None or period.last_day is None:
        return []
    history_from = min([c.day for c in census] + [period.first_day])
    return [{
        "from_date": period.first_day, "to_date": period.last_day, "history_from": history_from,
        "history_days": days_between(history_from, period.first_day),
        "history_sessions": sum(c.sessions for c in census if period.is_history(c.day)),
        "sessions": sum(c.sessions for c in census if c.day in period),
        "currencies": len(frozenset().union(*(c.currencies for c in census if c.day in period))),
        "registered_players": players.registered, "segments": len(players.segments),
    }]


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
    (stickiness) when they play the game again on a later day of the period:
    a second session the same evening is the same visit, not a return."""
    plays = list(plays)
    days_by_player: Dict[str, set] = defaultdict(set)
    for play in plays:
        days_by_player[play.user_id].add(play.day)
    player_days = sum(len(days) for days in days_by_player.values())
    seconds = sum(p.seconds for p in plays)
    returning = sum(1 for days in days_by_player.values() if len(days) >= 2)
    names = [p.name for p in plays if p.name is not None]
    return {
        "rank": 0,
        "game_id": game_id,
        "game_name": min(names) if names else game_id,
        "players": len(days_by_player),
        "player_days": player_days,
        "sessions": len(plays),
        "play_seconds": seconds,
        "sessions_per_user": average(Decimal(len(plays)), player_days),
        "duration_per_user_seconds": average(Decimal(seconds), player_days),
        "returning_players": returning,
        "stickiness_pct": average(Decimal(100 * returning), len(days_by_player)),
    }


def top_games(rows: Iterable[dict], limit: int = TOP_GAMES) -> List[dict]:
    """The `limit` most popular games: most players, then most sessions."""
    ranked = sorted(rows, key=lambda r: (-r["players"], -r["sessions"], r["game_id"]))
    return [{**row, "rank": rank} for rank, row in enumerate(ranked[:limit], start=1)]


# ---------------------------------------------------------------- all of it, in plain Python

def all_reports(sessions: Iterable[SessionFacts], period: Period = Period(),
                profiles: Iterable[PlayerProfile] = (), limit: int = TOP_GAMES) -> Dict[str, List[dict]]:
    """Every report's rows, sorted, from the same steps the Beam job runs
    (`transforms.report`) but in one process: for small inputs and tests."""
    sessions = list(sessions)
    profiles = {p.user_id: p for p in profiles}
    players_info = Players.of(profiles.values())
    census: Dict[str, List[SessionFacts]] = defaultdict(list)
    by_user: Dict[str, List[SessionFacts]] = defaultdict(list)
    for session in sessions:
        census[session.day].append(session)
        by_user[session.user_id].append(session)
    period = period.resolve(census)
    rows: Dict[str, List[dict]] = {r.name: [] for r in REPORTS}
    rows[PERIOD.name] = period_row(period, (DayCensus(day, len(s), frozenset(x.currency for x in s))
                                            for day, s in census.items()), players_info)
    user_days: Dict[str, List[UserDay]] = defaultdict(list)
    past: Dict[str, List[PastStake]] = defaultdict(list)
    for user, facts in by_user.items():
        player = Player(user, tuple(sorted(facts, key=lambda s: (s.day, s.session_id))))
        for user_day in player.days(period, profiles.get(user)):
            user_days[user_day.day].append(user_day)
        for stake in player.past_stakes(period):
            past[stake[0]].append(stake)
    segmentation = Segmentation(players_info)
    for day, users in user_days.items():
        for name, row in day_rows(day, users, past[day], segmentation):
            rows[name].append(row)
    plays: Dict[str, List[GameSession]] = defaultdict(list)
    for session in sessions:
        if session.day in period:
            for game, play in game_sessions(session):
                plays[game].append(play)
    rows[TOP_GAMES_REPORT.name] = top_games((game_row(g, p) for g, p in plays.items()), limit)
    return {name: sorted(report_rows, key=sort_key) for name, report_rows in rows.items()}
