"""A second, deliberately naive implementation of SPEC §2-§3 (set-based, no
incremental state) that tests compare the job against."""
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

from sessions.records import compact_time


def _avg(total, count):
    with localcontext(Context(prec=100)):
        return Decimal(0) if count == 0 else (total / count).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _metrics(bets, others):
    stakes = [b.stake for b in bets]
    payouts = [e.payout for e in bets + others
               if e.event_type in ("win", "bet_win") and e.payout is not None and e.payout > 0]
    bet_rollbacks = [e for e in others if e.event_type == "bet_rollback"]
    win_rollbacks = [e for e in others if e.event_type == "win_rollback"]
    return {
        "gs_bets_count": len(stakes), "gs_total_bet_amount": sum(stakes, Decimal(0)),
        "gs_avg_bet_amount": _avg(sum(stakes, Decimal(0)), len(stakes)),
        "gs_max_bet_amount": max(stakes, default=Decimal(0)),
        "gs_wins_count": len(payouts), "gs_total_win_amount": sum(payouts, Decimal(0)),
        "gs_avg_win_amount": _avg(sum(payouts, Decimal(0)), len(payouts)),
        "gs_max_win_amount": max(payouts, default=Decimal(0)),
        "bets_rollback_count": len(bet_rollbacks),
        "wins_rollback_count": len(win_rollbacks),
        "total_rollback_bet_amount": sum((e.stake for e in bet_rollbacks), Decimal(0)),
        "total_rollback_win_amount": sum((e.payout for e in win_rollbacks), Decimal(0)),
    }


def dedupe(events):
    """First copy per (user_id, event_id), in the given order."""
    seen, kept = set(), []
    for e in events:
        if (e.user_id, e.event_id) not in seen:
            seen.add((e.user_id, e.event_id))
            kept.append(e)
    return kept


def _sessions(bets, logouts, gap_ms):
    """[(bets, logout time or None)]: bets join while each is less than gap
    after the previous one; a logout between them (at or after a bet of the
    same ms, before the gap has passed) closes the session it falls in."""
    timeline = sorted([(b.occurred_at, 0, b.event_id, b) for b in bets]
                      + [(x.occurred_at, 2, x.event_id, x) for x in logouts])
    sessions, open_ = [], None
    for t, kind, _, e in timeline:
        if open_ is not None and t - open_[0][-1].occurred_at >= gap_ms:
            sessions.append((open_[0], None))
            open_ = None
        if kind == 2:
            if open_ is not None:
                sessions.append((open_[0], t))
                open_ = None
        elif open_ is None:
            open_ = ([e],)
        else:
            open_[0].append(e)
    if open_ is not None:
        sessions.append((open_[0], None))
    return sessions


def _first_currency(bets):
    return next((b.currency for b in bets if b.currency is not None), None)


def expected_records(events, gap_ms, ended_delay=None):
    """(ended records, changed records, unattributed count) for de-duplicated
    events of any users. Delays: replay's (gap, or last bet to logout, for
    ended; 0 for changed)."""
    ended, changed, unattributed = [], [], 0
    by_user = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    for user, mine in sorted(by_user.items()):
        bets = [e for e in mine if e.is_bet]
        logouts = [e for e in mine if e.event_type == "logout"]
        others = [e for e in mine if not e.is_bet and e.event_type != "logout"]
        claimed = set()
        for s, logout_at in _sessions(bets, logouts, gap_ms):
            start, end = s[0].occurred_at, s[-1].occurred_at
            reach = end + gap_ms if logout_at is None else logout_at + 1
            members = [e for e in others if start <= e.occurred_at < reach]
            claimed.update(id(e) for e in members)
            sid = f"{compact_time(start)}_{user}"
            games = list(dict.fromkeys(b.game_id for b in s))
            segments = []
            for b in s:
                if segments and segments[-1][-1].game_id == b.game_id:
                    segments[-1].append(b)
                else:
                    segments.append([b])
            replay_delay = (gap_ms if logout_at is None else logout_at - end) // 1000
            ended.append({"user_id": user, "gs_gameplay_session_id": sid, "gs_all_game_ids": games,
                          **_metrics(s, members), "gs_session_start_date": start,
                          "gs_session_end_date": end, "gs_session_length_seconds": (end - start) // 1000,
                          "gs_event_delay_seconds": replay_delay if ended_delay is None else ended_delay,
                          "gs_end_reason": "inactivity" if logout_at is None else "logout",
                          "gs_game_switches_count": len(segments) - 1, "gs_last_game_id": s[-1].game_id,
                          "currency": _first_currency(s)})
            seen = 0
            for number, (seg, nxt) in enumerate(zip(segments, segments[1:]), start=1):
                seen += len(seg)
                seg_start, seg_end = seg[0].occurred_at, nxt[0].occurred_at
                seg_others = [e for e in members if seg_start <= e.occurred_at < seg_end]
                name = seg[0].game_name or seg[0].game_id
                changed.append({
                    "user_id": user, "gs_gameplay_session_id": sid,
                    "gs_game_session_id": f"{sid}_{compact_time(seg_start)}_{name}",
                    "gs_game_name": name, "gs_game_old_id": seg[0].game_id, "gs_game_new_id": nxt[0].game_id,
                    **_metrics(seg, seg_others), "gs_session_start_date": seg_start,
                    "gs_session_end_date": seg_end, "gs_session_length_seconds": (seg_end - seg_start) // 1000,
                    "gs_event_delay_seconds": 0, "gs_end_reason": "game_switch",
                    "gs_game_switches_count": number, "gs_last_game_id": seg[0].game_id,
                    "currency": _first_currency(s[:seen + 1])})
        unattributed += sum(1 for e in others if id(e) not in claimed)
    return ended, changed, unattributed


def logouts_outside_sessions(events, gap_ms):
    """How many logouts close no session."""
    count = 0
    by_user = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    for mine in by_user.values():
        logouts = [e for e in mine if e.event_type == "logout"]
        # A session's logout is the first one of its millisecond: one per session.
        closing = [t for _, t in _sessions([e for e in mine if e.is_bet], logouts, gap_ms) if t is not None]
        count += len(logouts) - len(closing)
    return count


def canonical(records):
    """Order-free, type-normalised comparison form of a list of records."""
    def norm(v):
        if isinstance(v, (int, Decimal)) and not isinstance(v, bool):
            return Decimal(v).normalize()
        if isinstance(v, list):
            return tuple(v)
        return v
    # (is null, value): null stays apart from "" (a currency can be ""), and
    # records still sort when a field is null in one and set in another.
    return sorted(tuple((k, v is None, "" if v is None else norm(v)) for k, v in sorted(r.items()))
                  for r in records)
