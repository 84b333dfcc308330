"""Renders the sessions dashboard from the report job's tidy CSVs: one
self-contained HTML page, charts as inline SVG drawn here, no script and
nothing fetched, so it opens offline and from a bucket alike.

    python -m tools.dashboard REPORT_DIR [--png=FILE]  # writes REPORT_DIR/dashboard.html [and a screenshot]

`pipelines.session_report` calls `write_dashboard` at the end of every run.
"""
import argparse
import csv
import html
import io
import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date
from typing import Dict, List, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems

from sessions.reports import (BET_AMOUNTS, BETS_PER_SESSION, ENOUGH_HISTORY_DAYS, GAMES_PER_SESSION, NEW_USERS,
                              PERIOD, REPORTS, SESSION_LENGTH, SESSIONS_PER_USER, TOP_GAMES_REPORT, VALUE_TIERS,
                              VALUE_WINDOW_DAYS, days_between)
from transforms.write import write_atomically

DASHBOARD = "dashboard.html"
CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make chromium`)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")

# Plot geometry, in SVG user units (the SVG scales to its card).
WIDTH, HEIGHT = 640, 290
LEFT, RIGHT, TOP, BOTTOM = 60, 60, 14, 40
MAX_DAY_LABELS = 10
MAX_BAR_WIDTH = 56  # a few days would otherwise give slabs

BLUE, ORANGE, GREEN = "#4c78a8", "#e8710a", "#2ca02c"
TIER_COLOURS = {  # (bars: players, line: sessions per player) in one hue per tier
    "Top": ("#9ecae9", "#1f5f99"), "High": ("#ffc58f", "#c95a00"),
    "Medium": ("#a8dba0", "#2b8a2b"), "Low": ("#d7b8e8", "#7b3fa0"),
}
OTHER_TIER_COLOURS = ("#c7c7c7", "#555555")  # beyond four operator segments


@dataclass(frozen=True)
class Series:
    label: str
    values: Tuple[float, ...]  # one per day
    kind: str  # "bar" or "line"
    axis: str  # "left" or "right"
    colour: str


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    what: str  # the definition, one line
    days: Tuple[str, ...]
    series: Tuple[Series, ...]


def read_report(report_dir: str, name: str) -> List[dict]:
    with FileSystems.open(FileSystems.join(report_dir, f"{name}.csv")) as f:
        return list(csv.DictReader(io.StringIO(f.read().decode("utf-8"))))


# ---------------------------------------------------------------- SVG

def axis_ticks(highest: float) -> Tuple[float, ...]:
    """0 up to the first round tick at or above `highest`, 3 to 6 steps of
    1, 2 or 5 times a power of ten."""
    if highest <= 0:
        return 0.0, 1.0
    power = 10 ** math.floor(math.log10(highest / 4))
    step = next(m * power for m in (1, 2, 5, 10) if m * power * 5 >= highest)
    return tuple(step * i for i in range(math.ceil(highest / step - 1e-9) + 1))


def _tick_label(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _value_label(value: float) -> str:
    if 0 < abs(value) < 1:  # a crypto amount: its first digits, not 0.00
        return f"{value:.4g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _day_label(day: str) -> str:
    return date.fromisoformat(day).strftime("%b %d")


def chart_svg(chart: Chart) -> str:
    days, width = chart.days, WIDTH
    plot_w, plot_h = width - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    if not days:
        return (f'<svg class="chart" viewBox="0 0 {width} {HEIGHT}" role="img"><text x="{width / 2}" '
                f'y="{HEIGHT / 2}" text-anchor="middle" class="empty">No sessions in the data</text></svg>')
    ticks = {axis: axis_ticks(max((v for s in chart.series if s.axis == axis for v in s.values), default=0))
             for axis in ("left", "right")}
    tops = {axis: ticks[axis][-1] for axis in ticks}

    def y(value: float, axis: str) -> float:
        return TOP + plot_h - plot_h * value / tops[axis]

    band = plot_w / len(days)
    parts = [f'<svg class="chart" id="{chart.key}" viewBox="0 0 {width} {HEIGHT}" role="img" '
             f'aria-label="{html.escape(chart.title)}">']
    for axis, x, anchor in (("left", LEFT - 6, "end"), ("right", LEFT + plot_w + 6, "start")):
        if not any(s.axis == axis for s in chart.series):
            continue
        for tick in ticks[axis]:
            ty = y(tick, axis)
            if axis == "left":  # gridlines follow the left axis only, or they would cross
                parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}"/>')
            parts.append(f'<text class="tick" x="{x}" y="{ty + 4:.1f}" text-anchor="{anchor}">'
                         f'{_tick_label(tick)}</text>')
    label_every = math.ceil(len(days) / MAX_DAY_LABELS)
    for i, day in enumerate(days):
        if i % label_every == 0:
            parts.append(f'<text class="tick" x="{LEFT + band * (i + 0.5):.1f}" y="{TOP + plot_h + 18}" '
                         f'text-anchor="middle">{_day_label(day)}</text>')
    bars = [s for s in chart.series if s.kind == "bar"]
    bar_w = min(band * 0.7 / max(len(bars), 1), MAX_BAR_WIDTH)
    for b, series in enumerate(bars):
        for i, (day, value) in enumerate(zip(days, series.values)):
            x = LEFT + band * i + (band - bar_w * len(bars)) / 2 + bar_w * b
            top = y(value, series.axis)
            parts.append(
                f'<rect class="bar mark" data-series="{html.escape(series.label)}" data-day="{day}" '
                f'data-value="{value}" x="{x:.1f}" y="{top:.1f}" width="{bar_w:.1f}" '
                f'height="{TOP + plot_h - top:.1f}" fill="{series.colour}"><title>{day} · '
                f'{html.escape(series.label)}: {_value_label(value)}</title></rect>')
    for series in (s for s in chart.series if s.kind == "line"):
        points = [(LEFT + band * (i + 0.5), y(v, series.axis)) for i, v in enumerate(series.values)]
        parts.append(f'<polyline class="line" fill="none" stroke="{series.colour}" stroke-width="2.5" '
                     f'points="{" ".join(f"{x:.1f},{py:.1f}" for x, py in points)}"/>')
        for (x, py), day, value in zip(points, days, series.values):
            parts.append(
                f'<circle class="point mark" data-series="{html.escape(series.label)}" data-day="{day}" '
                f'data-value="{value}" cx="{x:.1f}" cy="{py:.1f}" r="4" fill="{series.colour}">'
                f'<title>{day} · {html.escape(series.label)}: {_value_label(value)}</title></circle>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _legend(chart: Chart) -> str:
    both_axes = len({s.axis for s in chart.series}) == 2
    items = []
    for s in chart.series:
        swatch = "swatch bar" if s.kind == "bar" else "swatch line"
        side = f" <small>({s.axis} axis)</small>" if both_axes else ""
        items.append(f'<li><span class="{swatch}" style="background:{s.colour}"></span>'
                     f'{html.escape(s.label)}{side}</li>')
    return f'<ul class="legend">{"".join(items)}</ul>'


def _card(number: str, chart: Chart) -> str:
    return (f'<section class="card" data-chart="{chart.key}"><h2><span class="num">{number}</span>'
            f'{html.escape(chart.title)}</h2><p class="what">{html.escape(chart.what)}</p>'
            f'{_legend(chart)}{chart_svg(chart)}</section>')


# ---------------------------------------------------------------- the page

def _column(rows: Sequence[dict], name: str) -> Tuple[float, ...]:
    return tuple(float(r[name]) for r in rows)


def _on_days(days: Sequence[str], rows: Sequence[dict], name: str) -> Tuple[float, ...]:
    """A value per day; 0 on a day without a row (nothing to average)."""
    by_day = {r["day"]: float(r[name]) for r in rows}
    return tuple(by_day.get(day, 0.0) for day in days)


def currency_label(code: str) -> str:
    return code or "no currency"


def _tier_colours(labels: Sequence[str]) -> Dict[str, Tuple[str, str]]:
    spare = iter(c for t, c in TIER_COLOURS.items() if t not in labels)
    return {label: TIER_COLOURS.get(label) or next(spare, OTHER_TIER_COLOURS) for label in labels}


def _period(reports: Dict[str, List[dict]]) -> dict:
    rows = reports[PERIOD.name]
    return rows[0] if rows else {}


def charts(reports: Dict[str, List[dict]]) -> List[Tuple[str, Chart]]:
    period = _period(reports)
    length, per_user = reports[SESSION_LENGTH.name], reports[SESSIONS_PER_USER.name]
    bets, games, new = reports[BETS_PER_SESSION.name], reports[GAMES_PER_SESSION.name], reports[NEW_USERS.name]
    all_days = tuple(r["day"] for r in per_user)

    def days(rows):
        return tuple(r["day"] for r in rows)

    new_rule = ("Players registered that day (the operator's file; else their first session in all the input, "
                "history included)" if int(period.get("registered_players", 0)) else
                "Players whose first session in all the input (history included) is that day")
    found = [
        ("1", Chart("session_length", "Daily trend - session length (sec)",
                    "Players with a session that day, and the median of their daily play time "
                    "(sum of their session lengths) and of single session lengths.", days(length), (
                        Series("Users with sessions", _column(length, "users_with_sessions"), "bar", "left", BLUE),
                        Series("Median play time per user (s)", _column(length, "median_user_session_seconds"),
                               "line", "right", ORANGE),
                        Series("Median session length (s)", _column(length, "median_session_length_seconds"),
                               "line", "right", GREEN)))),
        ("2", Chart("sessions_per_user", "Daily trend - sessions count and session length (sec) per user",
                    "Sessions per player that day, and a player's daily play time on average.", days(per_user), (
                        Series("Sessions per user", _column(per_user, "avg_sessions_per_user"), "bar", "left", BLUE),
                        Series("Session length per user (s)", _column(per_user, "avg_session_seconds_per_user"),
                               "line", "right", ORANGE)))),
        ("3", Chart("bets_per_session", "Daily trend - avg bet count per session",
                    "Bets of a session, averaged over the day's sessions (all currencies).", days(bets), (
                        Series("Bets per session", _column(bets, "avg_bets_per_session"), "bar", "left", BLUE),))),
    ]
    amounts = reports[BET_AMOUNTS.name]
    for currency in sorted({r["currency"] for r in amounts}):
        rows = [r for r in amounts if r["currency"] == currency]
        label = currency_label(currency)
        found.append(("3", Chart(
            "bet_amounts_" + (currency or "none"), f"Daily trend - avg bet amount, {label}",
            f"Sessions in {label} only (amounts of different currencies never add up). Average bet = stake / bets; "
            "stake per session = what a session wagers in all (real + bonus).", all_days, (
                Series(f"Average bet ({label})", _on_days(all_days, rows, "avg_bet_amount"), "bar", "left", BLUE),
                Series(f"Stake per session ({label})", _on_days(all_days, rows, "avg_stake_per_session"), "line",
                       "right", ORANGE)))))
    found += [
        ("4", Chart("games_per_session", "Daily trend - avg of unique games count per session",
                    "Distinct games a session had bets on, averaged over the day's sessions.", days(games), (
                        Series("Unique games per session", _column(games, "avg_unique_games_per_session"), "bar",
                               "left", BLUE),))),
        ("5", Chart("new_users", "Daily trend - acquisition quality (new users)",
                    f"{new_rule}: sessions and play time per new player.", days(new), (
                        Series("Sessions per new user", _column(new, "avg_sessions_per_new_user"), "bar", "left",
                               BLUE),
                        Series("Session duration per new user (s)", _column(new, "avg_session_seconds_per_new_user"),
                               "line", "right", ORANGE)))),
    ]
    tier_rows = reports[VALUE_TIERS.name]
    labels = [label for _, label in sorted({(int(r["tier_rank"]), r["value_tier"]) for r in tier_rows})]
    colours = _tier_colours(labels)
    half = (len(labels) + 1) // 2
    what = ("Split by the operator's segments (--players file); players it does not list are Unsegmented."
            if int(period.get("segments", 0)) else
            f"Tier of a player on a day by their stake over the {VALUE_WINDOW_DAYS} days before it, ranked within "
            "its currency: Top = top 5%, High = next 15%, Medium = next 30%, Low = the rest (and players "
            f"without a session in those {VALUE_WINDOW_DAYS} days).")
    for number, tiers in (("6", labels[:half]), ("7", labels[half:])):
        if not tiers:
            continue
        by_tier = {t: [r for r in tier_rows if r["value_tier"] == t] for t in tiers}
        found.append((number, Chart(
            "value_tiers_" + "_".join(re.sub(r"\W+", "", t.lower()) for t in tiers),
            f"Sessions per user trend - {' and '.join(tiers)} users", what, days(by_tier[tiers[0]]),
            tuple(Series(f"{t}: users with sessions", _column(by_tier[t], "users_with_sessions"), "bar", "left",
                         colours[t][0]) for t in tiers)
            + tuple(Series(f"{t}: sessions per user", _column(by_tier[t], "avg_sessions_per_user"), "line",
                           "right", colours[t][1]) for t in tiers))))
    return found


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def games_table(rows: List[dict]) -> str:
    body = []
    for r in rows:
        stickiness = float(r["stickiness_pct"])
        body.append(
            f'<tr class="game"><td class="n">{r["rank"]}</td><td>{html.escape(r["game_name"])}'
            f'<small>{html.escape(r["game_id"])}</small></td><td class="n">{int(r["players"]):,}</td>'
            f'<td class="n">{r["sessions_per_user"]}</td>'
            f'<td class="n">{r["duration_per_user_seconds"]} <small>{_duration(float(r["duration_per_user_seconds"]))}'
            f'</small></td><td class="stick"><span class="meter"><span style="width:{stickiness:.1f}%"></span></span>'
            f'{stickiness:.2f}%</td></tr>')
    if not body:
        body.append('<tr><td colspan="6" class="empty">No sessions in the data</td></tr>')
    return ('<table class="games"><thead><tr><th>#</th><th>Game</th><th>Players</th><th>Sessions per user</th>'
            '<th>Duration per user (sec)</th><th>Stickiness</th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f6f9;color:#1d2733}
header{background:#1d2733;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c4ccd6}
header p.warning{color:#1d2733;background:#ffd98a;border-radius:4px;padding:4px 10px;margin-top:8px}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(620px,1fr));gap:18px;padding:18px 28px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:14px 16px}
.card.wide{grid-column:1/-1}
h2{font-size:16px;margin:0 0 2px}.num{display:inline-block;background:#1d2733;color:#fff;border-radius:4px;
padding:0 7px;margin-right:8px;font-size:13px}
.what{margin:0 0 6px;color:#5a6775;font-size:12.5px}
.legend{list-style:none;margin:0 0 4px;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12.5px}
.swatch{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;border-radius:2px}
.swatch.line{height:4px;vertical-align:3px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#e3e7ec}svg .axis{stroke:#8793a0}svg .tick{font-size:11px;fill:#5a6775}
svg .empty{font-size:14px;fill:#8793a0}
table.games{border-collapse:collapse;width:100%;font-size:13px}
.games th{text-align:left;border-bottom:2px solid #1d2733;padding:6px 8px;white-space:nowrap}
.games td{border-bottom:1px solid #e3e7ec;padding:5px 8px}.games tr:nth-child(even){background:#f8f9fb}
.games td small{display:block;color:#8793a0;font-size:11px}.games .n{text-align:right}
.games th:nth-child(n+3){text-align:right}
.stick{white-space:nowrap;text-align:right}.meter{display:inline-block;width:90px;height:8px;background:#e3e7ec;
border-radius:4px;margin-right:8px;vertical-align:1px;text-align:left}
.meter span{display:block;height:100%;background:#2ca02c;border-radius:4px}
footer{color:#8793a0;font-size:12px;padding:0 28px 24px}
"""


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def period_lines(period: dict) -> Tuple[str, List[str]]:
    """The header's statement of the period and history, and the warnings
    about what too short a history makes unreliable."""
    if not period:
        return "no sessions", []
    days = days_between(period["from_date"], period["to_date"]) + 1
    history_days = int(period["history_days"])
    text = (f"{period['from_date']} to {period['to_date']} ({_plural(days, 'day')}) · "
            f"{_plural(int(period['sessions']), 'session')}")
    text += (f" · history before it: {_plural(history_days, 'day')} from {period['history_from']}, "
             f"{_plural(int(period['history_sessions']), 'session')}, not reported"
             if history_days else " · no history before the period")
    warnings = []
    if history_days < ENOUGH_HISTORY_DAYS:
        if not int(period["registered_players"]):
            seen = (f"Only {_plural(history_days, 'day')} of history before the period: a player whose last visit "
                    f"was longer ago" if history_days else
                    "No history before the period: every player on their first day in the input")
            warnings.append(f"{seen} counts as new (chart 5). Start the input at least {ENOUGH_HISTORY_DAYS} days "
                            f"before --from_date, or give registration dates (--players).")
        if not int(period["segments"]):
            warnings.append(f"Value tiers (charts 6, 7) rank the stake of the {VALUE_WINDOW_DAYS} days before each "
                            f"day; the period's first {min(VALUE_WINDOW_DAYS - history_days, days)} days see less "
                            f"than that.")
    return text, warnings


def render(reports: Dict[str, List[dict]]) -> str:
    period_text, warnings = period_lines(_period(reports))
    games = reports[TOP_GAMES_REPORT.name]
    cards = "".join(_card(number, chart) for number, chart in charts(reports))
    notes = "".join(f'<p class="warning">{html.escape(w)}</p>' for w in warnings)
    table = (f'<section class="card wide" data-chart="top_games"><h2><span class="num">8</span>Session length and '
             f'retention per game - top {len(games)} games</h2><p class="what">Most players first. Per user = per '
             f'player and day with the game; duration = time on the game\'s segments; stickiness = share of its '
             f'players who came back to it on a later day of the period.</p>{games_table(games)}</section>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sessions dashboard</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{STYLE}</style></head>'
            f'<body><header><h1>Sessions dashboard</h1><p class="period">{html.escape(period_text)} · '
            f'day = UTC date of the session start</p>{notes}</header><main>{cards}{table}</main>'
            f'<footer>From gs_game_session_ended and gs_game_session_changed; definitions in '
            f'docs/dashboard.md. Hover a bar or point for its value.</footer></body></html>\n')


def write_dashboard(report_dir: str) -> str:
    reports = {r.name: read_report(report_dir, r.name) for r in REPORTS}
    path = FileSystems.join(report_dir, DASHBOARD)
    write_atomically(path, render(reports).encode("utf-8"))
    return path


def chromium(args: Sequence[str], profile: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile, nothing running in the background."""
    if not os.path.exists(CHROMIUM):
        raise FileNotFoundError(f"{CHROMIUM} is missing: `make chromium` installs it")
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def screenshot(page: str, png: str, width: int = 1400, height: int = 8000, scale: float = 1.0) -> Tuple[int, int]:
    """A PNG of the whole page in a small palette (the page has few colours).
    Chromium shoots the window, so the window is taller than any page, and the
    rows below the page (one colour each: the body's, or black past what
    Chromium paints) are cut off."""
    from PIL import Image  # only this needs Pillow

    with tempfile.TemporaryDirectory() as profile:
        chromium([f"--screenshot={os.path.abspath(png)}", f"--window-size={width},{height}",
                  "file://" + os.path.abspath(page)], profile)
    image = Image.open(png).convert("RGB")
    bottom = height
    while bottom > 1 and all(low == high for low, high in image.crop((0, bottom - 1, width, bottom)).getextrema()):
        bottom -= 1
    image = image.crop((0, 0, width, min(height, bottom + 24)))
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(png, optimize=True)
    return image.size


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report_dir", help="output folder of pipelines.session_report")
    parser.add_argument("--png", help="also a screenshot of the page, by headless Chromium, to this file")
    parser.add_argument("--png_scale", type=float, default=1.0, help="resize the screenshot, e.g. 0.75")
    args = parser.parse_args(argv)
    page = write_dashboard(args.report_dir)
    print(page)
    if args.png:
        width, height = screenshot(page, args.png, scale=args.png_scale)
        print(f"{args.png}: {width} x {height}")


if __name__ == "__main__":
    main()
