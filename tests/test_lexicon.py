"""SPEC §6: ended sessions as net.anisota.beta.game.session records."""
import json
from decimal import Decimal
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as ScriptedStream  # not a test class
from apache_beam.transforms import window
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.game_sessions import main
from sessions.events import MAX_OCCURRED_AT_MS, MIN_OCCURRED_AT_MS
from sessions.lexicon import (
    CLOCK_IDS, COLLECTION, MAX_TID_MICROS, TID_ALPHABET, clock_id, decode_tid, encode_tid,
    lexicon_datetime, lexicon_platform, player_folder, record_file, session_record, session_rkey)
from sessions.lexicon_validator import Lexicon, is_datetime, lexicon_path
from sessions.records import Metrics
from sessions.sessionizer import GameSwitch, SessionEnd, SessionEvent
from tools.generate_events import generate, write
from transforms.lexicon import WriteLexiconRecords

LEXICON = Lexicon.named(COLLECTION)
SEED_COPY = Path(__file__).resolve().parents[1].parent / "shared" / "seeds" / f"{COLLECTION}.json"
GAP = 300_000
T0 = 1767731185000  # 2026-01-06T20:26:25Z
# Python's own base-32 digits, to check TIDs against an independent decoder.
_TO_INT_BASE32 = str.maketrans(TID_ALPHABET, "0123456789abcdefghijklmnopqrstuv")


def metrics(events=1):
    zero = Decimal(0)
    return Metrics(bets_count=1, total_bet=zero, max_bet=zero, wins_count=0, total_win=zero,
                   max_win=zero, bets_rollback_count=0, wins_rollback_count=0,
                   total_rollback_bet=zero, total_rollback_win=zero, events=events)


def session_end(user_id="265428677", start=T0, end=T0 + 124_000, platform="mobile",
                client_version="5.3.1", events=9, logout_at=None, gap_ms=GAP):
    return SessionEnd(user_id=user_id, start=start, end=end, game_ids=("WILD_BANDITO",),
                      metrics=metrics(events), platform=platform, client_version=client_version,
                      end_reason="inactivity" if logout_at is None else "logout",
                      closed_at=end + gap_ms if logout_at is None else logout_at,
                      switches_count=0, last_game_id="WILD_BANDITO", currency="EUR")


# --- TIDs --------------------------------------------------------------------

micros = st.integers(0, MAX_TID_MICROS)
clocks = st.integers(0, CLOCK_IDS - 1)


@given(micros, clocks)
def test_a_tid_is_13_sortable_base32_characters_that_decode_back(t, clock):
    tid = encode_tid(t, clock)
    assert len(tid) == 13
    assert set(tid) <= set(TID_ALPHABET)
    assert tid[0] in "234567abcdefghij"  # the top bit is 0
    assert int(tid.translate(_TO_INT_BASE32), 32) == (t << 10) | clock
    assert decode_tid(tid) == (t, clock)


@given(micros, clocks, micros, clocks)
def test_tids_sort_as_their_times(t1, c1, t2, c2):
    if (t1, c1) < (t2, c2):
        assert encode_tid(t1, c1) < encode_tid(t2, c2)


def test_a_published_tid_decodes():
    # The example of the AT Protocol record key docs: a moment of 2023.
    t, clock = decode_tid("3jzfcijpj2z2a")
    assert lexicon_datetime(t // 1000).startswith("2023-")
    assert clock == 6


@pytest.mark.parametrize("tid", ["3jzfcijpj2z2", "3jzfcijpj2z2aa", "3jzfcijpj2z21", "kjzfcijpj2z2a",
                                 "zzzzzzzzzzzzz", "3JZFCIJPJ2Z2A"])
def test_a_malformed_tid_is_refused(tid):
    with pytest.raises(ValueError):
        decode_tid(tid)


@pytest.mark.parametrize("t, clock", [(-1, 0), (MAX_TID_MICROS + 1, 0), (0, -1), (0, CLOCK_IDS)])
def test_a_tid_out_of_range_is_refused(t, clock):
    with pytest.raises(ValueError):
        encode_tid(t, clock)


def test_the_record_key_is_the_session_start_and_a_clock_id_of_the_player():
    rkey = session_rkey("player-22", 1767701173904)
    assert decode_tid(rkey) == (1767701173904_000, clock_id("player-22"))
    # Pinned: a different hash would give every replayed session a new key.
    assert rkey == "3mbqw2coco2zw"


def test_two_players_starting_in_the_same_millisecond_get_different_keys():
    assert clock_id("alice") != clock_id("bob")
    assert session_rkey("alice", T0) != session_rkey("bob", T0)


# --- The mapping -------------------------------------------------------------

def test_an_ended_session_maps_field_by_field():
    rkey, record = session_record(session_end())
    assert rkey == session_rkey("265428677", T0)
    assert record == {
        "$type": "net.anisota.beta.game.session",
        "status": "ended",
        "startedAt": "2026-01-06T20:26:25.000Z",
        "endedAt": "2026-01-06T20:28:29.000Z",
        "lastActivityAt": "2026-01-06T20:28:29.000Z",
        "duration": 124_000,
        "endReason": "inactivity",
        "platform": "mobile",
        "clientVersion": "5.3.1",
        "activitySummary": {"totalEvents": 9},
        "createdAt": "2026-01-06T20:33:29.000Z",
        "updatedAt": "2026-01-06T20:33:29.000Z",
    }
    assert LEXICON.validate(record) == []


def test_datetimes_keep_milliseconds():
    assert lexicon_datetime(T0 + 7) == "2026-01-06T20:26:25.007Z"
    assert lexicon_datetime(MIN_OCCURRED_AT_MS) == "2000-01-01T00:00:00.000Z"


@pytest.mark.parametrize("raw, platform", [
    ("web", "web"), ("Mobile", "mobile"), (" DESKTOP ", "desktop"), ("pwa", "pwa"),
    ("ios", "mobile"), ("Android", "mobile"), ("smart-tv", "web"), ("", "web"), (None, "web")])
def test_platforms_map_into_the_enum(raw, platform):
    assert lexicon_platform(raw) == platform


def test_absent_client_details_get_the_documented_defaults():
    _, record = session_record(session_end(platform=None, client_version=None))
    assert (record["platform"], record["clientVersion"]) == ("web", "unknown")
    _, record = session_record(session_end(client_version="5.\ud8001"))
    assert record["clientVersion"] == "5.?1"


def test_created_at_is_when_the_gap_has_passed():
    _, record = session_record(session_end(end=T0, gap_ms=60_000))
    assert record["createdAt"] == record["updatedAt"] == "2026-01-06T20:27:25.000Z"
    assert record["duration"] == 0


def test_a_logout_ends_the_record_with_its_reason_and_time():
    _, record = session_record(session_end(end=T0 + 1000, logout_at=T0 + 31_500))
    assert record["endReason"] == "logout"
    assert record["createdAt"] == "2026-01-06T20:26:56.500Z"
    assert record["lastActivityAt"] == record["endedAt"] == "2026-01-06T20:26:26.000Z"
    assert LEXICON.validate(record) == []


def test_impossible_sessions_are_refused():
    with pytest.raises(ValueError, match="before it starts"):
        session_record(session_end(end=T0 - 1))


def test_the_record_file_is_named_by_player_and_key_and_holds_what_put_record_needs():
    end = session_end(user_id="../ä/.x")
    path, body = record_file(end)
    rkey, record = session_record(end)
    folder, name = path.split("/")
    assert name == f"{rkey}.json"
    assert folder == player_folder("../ä/.x") and not folder.startswith(".")
    document = json.loads(body)
    assert document == {"user_id": "../ä/.x", "gs_gameplay_session_id": end.gameplay_session_id,
                        "collection": COLLECTION, "rkey": rkey, "record": record}


def test_player_folders_are_distinct_for_distinct_players():
    players = ["a/b", "a%2Fb", "a.b", "a%2Eb", ".", "..", "A", "a"]
    assert len({player_folder(p) for p in players}) == len(players)


@st.composite
def session_ends(draw):
    start = draw(st.integers(MIN_OCCURRED_AT_MS, MAX_OCCURRED_AT_MS - 1))
    end = draw(st.integers(start, min(start + 7 * 86_400_000, MAX_OCCURRED_AT_MS - 1)))
    any_text = st.text(st.characters(exclude_categories=()), max_size=40)
    return SessionEnd(
        user_id=draw(st.text(st.characters(exclude_categories=()), min_size=1, max_size=128)),
        start=start, end=end, game_ids=("G",), metrics=metrics(draw(st.integers(1, 10**7))),
        platform=draw(st.none() | st.sampled_from(["web", "MOBILE", "ios", "pwa", "desktop"]) | any_text),
        client_version=draw(st.none() | any_text), end_reason="inactivity", closed_at=end + draw(st.integers(1, 86_400_000)),
        switches_count=0, last_game_id="G", currency=None)


@settings(max_examples=300, deadline=None)
@given(session_ends())
def test_every_session_gives_a_valid_record(end):
    rkey, record = session_record(end)
    assert LEXICON.validate(record) == []
    assert decode_tid(rkey) == (end.start * 1000, clock_id(end.user_id))
    assert record["duration"] == end.end - end.start
    assert record["startedAt"] <= record["endedAt"] < record["createdAt"]
    path, body = record_file(end)
    assert json.loads(body)["record"] == record
    assert path.count("/") == 1 and not path.startswith(".")


# --- The validator -----------------------------------------------------------

def valid_record():
    _, record = session_record(session_end())
    record.update(
        metadata={"features": ["autoplay"], "networkCondition": "online",
                  "performanceMetrics": {"errorCount": 0, "averageResponseTime": 120}},
        sessionContext={"isNewUser": False, "entryPoint": "direct", "referrer": "https://x.example"},
        relatedLogUris=["at://did:plc:x/net.anisota.log/3jzfcijpj2z2a"],
        activitySummary={"totalEvents": 9, "currentLevel": 1, "pagesVisited": ["/"],
                         "gameActions": {"levelUps": 0}})
    return record


def test_a_record_using_every_kind_of_field_is_valid():
    assert LEXICON.validate(valid_record()) == []


def broken(change):
    record = valid_record()
    change(record)
    return LEXICON.validate(record)


@pytest.mark.parametrize("change, error", [
    (lambda r: r.pop("platform"), "platform: is required"),
    (lambda r: r.pop("startedAt"), "startedAt: is required"),
    (lambda r: r.update(platform="tv"), "platform: 'tv' is not one of web, mobile, desktop, pwa"),
    (lambda r: r.update(endReason="bored"), "endReason: 'bored' is not one of"),
    (lambda r: r.update(duration=-1), "duration: must be >= 0, got -1"),
    (lambda r: r.update(endedAt="2026-01-06 20:28:29"), "endedAt: '2026-01-06 20:28:29' is not an RFC 3339"),
    (lambda r: r.update(startedAt="2026-01-06T20:28:29"), "startedAt: '2026-01-06T20:28:29' is not an RFC 3339"),
    (lambda r: r.update(createdAt="2026-02-30T00:00:00Z"), "createdAt: '2026-02-30T00:00:00Z' is not an RFC 3339"),
    (lambda r: r.update(duration="124000"), "duration: must be an integer, got string"),
    (lambda r: r.update(duration=1.5), "duration: must be an integer, got number"),
    (lambda r: r.update(duration=True), "duration: must be an integer, got boolean"),
    (lambda r: r.update(clientVersion=5), "clientVersion: must be a string, got number"),
    (lambda r: r.update(clientVersion="\udc00"), "clientVersion: is not valid Unicode"),
    (lambda r: r.update(status=None), "status: must not be null"),
    (lambda r: r.update(activitySummary=[]), "activitySummary: must be an object, got array"),
    (lambda r: r["activitySummary"].update(totalEvents=-1), "activitySummary.totalEvents: must be >= 0"),
    (lambda r: r["activitySummary"].update(currentLevel=0), "activitySummary.currentLevel: must be >= 1"),
    (lambda r: r["activitySummary"]["gameActions"].update(levelUps="1"),
     "activitySummary.gameActions.levelUps: must be an integer"),
    (lambda r: r["metadata"]["performanceMetrics"].update(errorCount=-2),
     "metadata.performanceMetrics.errorCount: must be >= 0"),
    (lambda r: r["metadata"].update(networkCondition="great"), "metadata.networkCondition: 'great' is not one of"),
    (lambda r: r["sessionContext"].update(isNewUser="yes"), "sessionContext.isNewUser: must be a boolean"),
    (lambda r: r.update(relatedLogUris="at://x"), "relatedLogUris: must be an array, got string"),
    (lambda r: r["relatedLogUris"].append(3), "relatedLogUris[1]: must be a string, got number"),
    (lambda r: r["metadata"].update(features=[None]), "metadata.features[0]: must be a string, got null"),
    (lambda r: r.update({"$type": "app.bsky.feed.post"}), "$type: must be 'net.anisota.beta.game.session'"),
])
def test_the_validator_reports_each_violation(change, error):
    errors = broken(change)
    assert len(errors) == 1, errors
    assert errors[0].startswith(error), errors


def test_a_record_that_is_not_an_object_is_reported():
    assert LEXICON.validate([]) == ["record: must be an object, got array"]


def test_fields_the_lexicon_does_not_name_are_allowed():
    # Lexicon objects are open: a newer writer may add fields.
    assert broken(lambda r: r.update(gs_bets_count=3)) == []


@pytest.mark.parametrize("text, ok", [
    ("2026-01-06T20:28:29.123Z", True), ("2026-01-06T20:28:29Z", True),
    ("2026-01-06T23:28:29.123456+03:00", True), ("2026-01-06T20:28:29-00:00", False),
    ("2026-01-06t20:28:29Z", False), ("2026-01-06T24:00:00Z", False), ("2026-01-06T20:28:29+24:00", False),
    ("2026-01-06", False), ("1767731185000", False)])
def test_datetime_format(text, ok):
    assert is_datetime(text) is ok


def test_the_rules_come_from_the_lexicon_file():
    document = json.loads(lexicon_path(COLLECTION).read_text())
    record = valid_record()
    record["platform"] = "tv"
    assert LEXICON.validate(record) != []
    document["defs"]["main"]["record"]["properties"]["platform"]["enum"].append("tv")
    assert Lexicon.from_document(document).validate(record) == []


@pytest.mark.parametrize("change", [
    lambda d: d["defs"].update(thing={"type": "union", "refs": []}),
    lambda d: d["defs"]["main"]["record"]["properties"].update(x={"type": "ref", "ref": "com.example.other#x"}),
    lambda d: d["defs"]["main"]["record"]["properties"].update(x={"type": "ref", "ref": "#nowhere"}),
    lambda d: d["defs"]["main"]["record"]["properties"].update(x={"type": "string", "format": "uri"}),
    lambda d: d["defs"]["main"]["record"]["properties"].update(x={"type": "string", "maxGraphemes": 3}),
    lambda d: d["defs"]["main"]["record"]["properties"].update(x={"type": "array"}),
    lambda d: d.update(lexicon=2),
])
def test_a_lexicon_the_validator_cannot_fully_check_is_refused(change):
    document = json.loads(lexicon_path(COLLECTION).read_text())
    change(document)
    with pytest.raises(ValueError):
        Lexicon.from_document(document)


@pytest.mark.skipif(not SEED_COPY.exists(), reason="the shared seeds are not next to this checkout")
def test_the_project_copy_of_the_lexicon_is_the_shared_one():
    assert json.loads(lexicon_path(COLLECTION).read_text()) == json.loads(SEED_COPY.read_text())


# --- The replay job ----------------------------------------------------------

def replay(day, out, gap_seconds):
    assert main([f"--input={day}", f"--output_dir={out}", "--output_format=jsonl",
                 f"--session_gap_seconds={gap_seconds}", f"--lexicon_output={out / 'lexicon'}",
                 "--runner=DirectRunner"]) == 0
    return {p.relative_to(out / "lexicon").as_posix(): p.read_bytes()
            for p in sorted((out / "lexicon").rglob("*")) if p.is_file()}


def test_replay_writes_one_valid_record_per_ended_session_identically_twice(tmp_path):
    gap_seconds = 240  # not the default: createdAt must follow the job's gap
    day = tmp_path / "day.jsonl.gz"
    write(str(day), generate(5000, seed=5) + ["{not json", '{"event_id": "x", "event_type": "bet"}'])
    files = replay(day, tmp_path / "first", gap_seconds)
    assert files == replay(day, tmp_path / "second", gap_seconds)
    dead_letters = list((tmp_path / "first" / "dead_letter").rglob("*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in dead_letters) >= 2

    ended = {}
    for part in (tmp_path / "first" / "gs_game_session_ended").rglob("*.jsonl"):
        for line in part.read_text().splitlines():
            row = json.loads(line)
            ended[row["gs_gameplay_session_id"]] = row
    assert len(ended) > 50
    assert len(files) == len(ended)
    logouts = 0

    for path, body in files.items():
        document = json.loads(body)
        record = document["record"]
        assert LEXICON.validate(record) == [], path
        assert path == f"{player_folder(document['user_id'])}/{document['rkey']}.json"
        row = ended.pop(document["gs_gameplay_session_id"])
        start, end = row["gs_session_start_date"], row["gs_session_end_date"]
        assert document["user_id"] == row["user_id"]
        assert decode_tid(document["rkey"]) == (start * 1000, clock_id(row["user_id"]))
        assert (record["startedAt"], record["endedAt"]) == (lexicon_datetime(start), lexicon_datetime(end))
        assert record["duration"] == end - start
        assert record["endReason"] == row["gs_end_reason"]
        if row["gs_end_reason"] == "inactivity":
            assert record["createdAt"] == lexicon_datetime(end + gap_seconds * 1000)
        else:  # the logout's time, which the replay's delay floors to whole seconds
            over = end + row["gs_event_delay_seconds"] * 1000
            assert lexicon_datetime(over) <= record["createdAt"] < lexicon_datetime(over + 1000)
            logouts += 1
        assert record["activitySummary"]["totalEvents"] >= row["gs_bets_count"]
    assert ended == {}
    assert logouts > 5


def test_the_transform_writes_records_in_streaming_too(tmp_path):
    ends = [session_end(user_id="u1"), session_end(user_id="u2", start=T0 + 1, platform=None)]
    switch = GameSwitch(user_id="u1", session_start=T0, segment_start=T0, switched_at=T0 + 1000,
                        game_id="A", game_name="A", new_game_id="B", metrics=metrics(),
                        switches_count=1, currency=None)
    options = PipelineOptions([])
    options.view_as(StandardOptions).streaming = True
    events = (ScriptedStream()
              .add_elements([SessionEvent.of(switch, 0), SessionEvent.of(ends[0], 301)])
              .advance_processing_time(10)
              .add_elements([SessionEvent.of(ends[1], 302)])
              .advance_watermark_to_infinity())
    with beam.Pipeline(options=options) as p:
        _ = (p | events
             | beam.WindowInto(window.FixedWindows(60))
             | WriteLexiconRecords(str(tmp_path)))
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(record_file(end)[0] for end in ends)
    for end in ends:
        path, body = record_file(end)
        assert (tmp_path / path).read_bytes() == body
