"""End to end against Google's real Pub/Sub emulator (SPEC §3.3, §4, §5.2):
a generated stream played in real time, shuffled within the disorder bound,
with duplicates and junk; the live output must equal a replay of the very
same messages."""
import json
from decimal import Decimal

import pytest

from pipelines.game_sessions import main
from tests.helpers import CHANGED, ENDED, jsonl_records, write_lines
from tests.reference import canonical
from tools.live_load import run_load
from tools.live_scenario import TRIGGERS, live_records, percentile, run_scenario

pytestmark = pytest.mark.e2e
GAP_S = 5


def without_delay(records):
    return canonical([{k: v for k, v in r.items() if k != "gs_event_delay_seconds"} for r in records])


def assert_same(live, replayed):
    """Equal record sets (delays aside), naming what differs when not."""
    live, replayed = without_delay(live), without_delay(replayed)
    missing = [dict(r) for r in replayed if r not in live]
    extra = [dict(r) for r in live if r not in replayed]
    assert live == replayed, f"missing from the live output: {missing[:2]}\nnot in the replay: {extra[:2]}"


def replay_of(tmp_path, bodies, name="replay"):
    """(ended, changed, firings) of the replay job over these bodies."""
    path = str(tmp_path / f"{name}.jsonl")
    write_lines(path, bodies)
    out = str(tmp_path / name)
    assert main([f"--input={path}", f"--output_dir={out}", "--output_format=jsonl",
                 f"--session_gap_seconds={GAP_S}", f"--triggers={TRIGGERS}"]) == 0
    return jsonl_records(out, ENDED), jsonl_records(out, CHANGED), jsonl_records(out, "campaign_trigger")


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("live")
    return work, run_scenario(str(work), users=12, seconds=40, gap_s=GAP_S)


@pytest.fixture(scope="module")
def live_run_replayed(live_run, tmp_path_factory):
    """(ended, changed, firings) of a replay of the very messages the live run published."""
    _, result = live_run
    return replay_of(tmp_path_factory.mktemp("replay"), [body for _, body in result.published])


def test_live_output_equals_the_replay_of_the_same_messages(live_run, live_run_replayed):
    _, result = live_run
    assert result.job_alive_at_end, result.job_log
    ended, changed, _ = live_run_replayed
    assert len(ended) >= 12 and len(changed) >= 5
    assert_same(live_records(result, "ended"), ended)
    assert_same(live_records(result, "changed"), changed)


def test_messages_carry_the_spec_attributes(live_run):
    _, result = live_run
    for topic, event_type in (("ended", ENDED), ("changed", CHANGED)):
        for message in result.received[topic]:
            record = json.loads(message.data)
            assert message.attributes["event_type"] == event_type
            assert message.attributes["user_id"] == record["user_id"]
            assert message.attributes["gs_gameplay_session_id"] == record["gs_gameplay_session_id"]
            expected_ts = record["gs_session_end_date"]
            assert message.attributes["event_ts"] == str(expected_ts)


def test_delay_is_the_true_wall_clock_delay(live_run):
    _, result = live_run
    for topic in ("ended", "changed"):
        for message in result.received[topic]:
            record = json.loads(message.data)
            if record["user_id"] == "probe":
                continue
            true_delay = (message.arrived_ms - record["gs_session_end_date"]) / 1000
            # Emitted before it was pulled: at most the pull's own lag earlier.
            assert true_delay - 3 <= record["gs_event_delay_seconds"] <= true_delay, record


def test_junk_messages_come_out_as_dead_letters_with_original_bytes(live_run):
    _, result = live_run
    junk = sorted(body for _, body in result.published if body.startswith(b'{"event_id": "junk-'))
    dead = result.received["dead"]
    assert sorted(m.data for m in dead) == junk
    assert all(m.attributes["reason"] == "invalid_json" and m.attributes["message_id"] for m in dead)


def test_windowed_files_hold_the_same_sessions(live_run):
    work, result = live_run
    files = [r for r in jsonl_records(str(work / "live"), ENDED) if r["user_id"] != "probe"]
    assert without_delay(files) == without_delay(live_records(result, "ended"))


def test_the_job_survives_a_pubsub_outage(tmp_path):
    """The emulator is stopped for 15 s mid-stream and started again empty
    (it keeps no state); topics are re-created. The job keeps running, and
    every session played after recovery is exactly the replay's."""
    result = run_scenario(str(tmp_path / "outage"), users=8, seconds=40, gap_s=GAP_S, outage_seconds=15, seed=2)
    assert result.outage is not None
    assert result.job_alive_at_end, result.job_log
    recovered_at = result.outage[1]
    after = [body for sent_at, body in result.published if sent_at >= recovered_at]
    ended, changed, _ = replay_of(tmp_path, after, name="after")
    assert ended, "sessions were played after recovery"
    live_ended = [r for r in live_records(result, "ended") if r["gs_session_start_date"] >= recovered_at]
    live_changed = [r for r in live_records(result, "changed") if r["gs_session_start_date"] >= recovered_at]
    assert_same(live_ended, [r for r in ended if r["gs_session_start_date"] >= recovered_at])
    assert_same(live_changed, [r for r in changed if r["gs_session_start_date"] >= recovered_at])


def firing_keys(firings):
    """A firing as comparable across modes: all but its event's delay."""
    return sorted(
        json.dumps({**f, "event": {k: v for k, v in f["event"].items() if k != "gs_event_delay_seconds"}},
                   sort_keys=True, default=str)
        for f in firings if f["user_id"] != "probe")


def test_live_fires_exactly_the_triggers_the_replay_fires(live_run, live_run_replayed):
    _, result = live_run
    *_, firings = live_run_replayed
    assert len({f["trigger"] for f in firings}) >= 2, "the played stream should fire several triggers"
    live = [json.loads(m.data, parse_float=Decimal) for m in result.received["triggers"]]
    assert firing_keys(live) == firing_keys(firings)
    for message in result.received["triggers"]:
        firing = json.loads(message.data)
        assert message.attributes == {"trigger": firing["trigger"], "user_id": firing["user_id"],
                                      "event_type": firing["event_type"]}


def test_a_logout_ends_its_session_without_waiting_for_the_gap(live_run):
    _, result = live_run
    ended = live_records(result, "ended")
    assert any(r["gs_end_reason"] == "logout" for r in ended)
    waits = result.latencies(GAP_S * 1000)["logout"]
    assert waits, "logout-ended sessions should have been played"
    # Due when the watermark passes the logout plus the 1 s disorder bound:
    # well before the 5 s gap would have ended the session.
    assert percentile(waits, 0.95) < GAP_S, waits


def test_a_job_behind_a_backlog_is_late_to_answer_never_wrong(tmp_path):
    """Issue 13: three minutes of play (~3,400 events) wait in the
    subscription before the job starts, as after a job restart or when it
    falls behind. Beam's DirectRunner reader put its watermark at the wall
    clock after the first pull, and most of the backlog came out as
    `late_event` dead letters and split sessions; held back by the backlog,
    the watermark lets every event in."""
    result = run_load(str(tmp_path / "backlog"), rate=20, seconds=180, gap_s=GAP_S, prefill=True, timeout=150)
    assert result.job_alive_at_end, result.job_log
    reasons = [m.attributes.get("reason") for m in result.received["dead"]]
    assert "late_event" not in reasons, f"{reasons.count('late_event')} late_event dead letters"
    assert result.finished, "every player's last session came out"
    ended, changed, _ = replay_of(tmp_path, result.bodies)
    assert len(ended) >= 50 and len(changed) >= 100
    assert_same(live_records(result, "ended"), ended)
    assert_same(live_records(result, "changed"), changed)
