"""Real, messy input nobody here wrote (../shared/realdata), converted to the
event contract by the test, replayed by the CLI and checked against the
reference model."""
import csv
import io
import json
import os

import pytest

from pipelines.game_sessions import main
from sessions.events import parse_event
from tests.helpers import CHANGED, DEAD, ENDED, jsonl_records, write_lines
from tests.reference import canonical, dedupe, expected_records

REALDATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "realdata")
GAP_MS = 300_000


def _need(name):
    path = os.path.join(REALDATA, name)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: the real data sets live in ../shared/realdata beside the repo")
    return path


def _replay(tmp_path, path):
    out = str(tmp_path / "out")
    assert main([f"--input={path}", f"--output_dir={out}", "--output_format=jsonl"]) == 0
    return out


def _reference(raw_lines):
    events = []
    for raw in raw_lines:
        try:
            event = parse_event(raw)
        except ValueError:
            continue
        events.append(event)
    return expected_records(dedupe(events), GAP_MS)


def test_bustabit_crash_game_bets(tmp_path):
    """A bet per row; a cash-out pays Bet * CashedOut (+ Bonus) at the same
    second. Latin-1 usernames are decoded; one row is also fed raw, as a
    producer that does not speak UTF-8 would send it."""
    with open(_need("bustabit.csv"), encoding="latin-1", newline="") as f:
        rows = list(csv.DictReader(f))
    lines = []
    for row in rows:
        base = {"user_id": row["Username"], "game_id": "bustabit", "game_name": "Bustabit",
                "occurred_at": row["PlayDate"]}
        lines.append(json.dumps({**base, "event_id": f"bet-{row['Id']}", "event_type": "bet",
                                 "bet_amount": row["Bet"]}).encode())
        if row["CashedOut"] != "NA":
            win = {**base, "event_id": f"win-{row['Id']}", "event_type": "win",
                   "win_amount": str(round(float(row["Bet"]) * float(row["CashedOut"]), 2))}
            if row["Bonus"] != "NA":
                win["win_bonus_amount"] = row["Bonus"]
            lines.append(json.dumps(win).encode())
    non_ascii = next(r for r in rows if not r["Username"].isascii())
    raw_latin1 = json.dumps({"event_id": "raw", "user_id": non_ascii["Username"], "event_type": "bet",
                             "occurred_at": non_ascii["PlayDate"], "game_id": "bustabit", "bet_amount": 1},
                            ensure_ascii=False).encode("latin-1")
    lines.append(raw_latin1)
    path = str(tmp_path / "bustabit.jsonl")
    write_lines(path, lines)

    out = _replay(tmp_path, path)
    ended, changed, _ = _reference(lines)
    got = jsonl_records(out, ENDED)
    assert len(got) > 1000
    assert canonical(got) == canonical(ended)
    assert jsonl_records(out, CHANGED) == changed == []  # one game
    dead = jsonl_records(out, DEAD)
    assert [(d["dead_letter_reason"], d["source"]["line"]) for d in dead] == [("invalid_json", len(lines))]


def test_mobile_game_play_times_as_csv(tmp_path):
    """A play is a 1-unit bet, a positive score a win; dense play (median 55 s
    between plays) makes long sessions. Rows without a device are bad input."""
    with open(_need("mobile_game1_kim2017.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = ["event_id", "user_id", "event_type", "occurred_at", "game_id", "bet_amount", "win_amount"]
    writer.writerow(columns)
    for n, row in enumerate(rows):
        writer.writerow([f"play-{n}", row["device"], "bet_win", int(row["time"]) * 1000, "mobile_game1", "1",
                         row["score"] if int(row["score"]) > 0 else ""])
    path = str(tmp_path / "mobile.csv")
    with open(path, "w") as f:
        f.write(buffer.getvalue())

    out = _replay(tmp_path, path)
    lines = []
    for n, row in enumerate(rows):
        event = {"event_id": f"play-{n}", "user_id": row["device"] or None, "event_type": "bet_win",
                 "occurred_at": int(row["time"]) * 1000, "game_id": "mobile_game1", "bet_amount": "1"}
        if int(row["score"]) > 0:
            event["win_amount"] = row["score"]
        lines.append(json.dumps(event).encode())
    ended, _, _ = _reference(lines)
    got = jsonl_records(out, ENDED)
    assert canonical(got) == canonical(ended)
    assert max(r["gs_session_length_seconds"] for r in got) > 3600
    dead = jsonl_records(out, DEAD)
    assert len(dead) == 9 and {d["dead_letter_reason"] for d in dead} == {"missing_field"}
