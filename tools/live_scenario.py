"""A live run against Google's real Pub/Sub emulator, end to end.

Starts the emulator on 127.0.0.1, the streaming job on the DirectRunner, and
plays a generated stream of players in real time: spins every 0.2-1.5 s,
game hopping, wins published after (and sometimes before) their bets, breaks
that end sessions (half of them with a logout first), up to `disorder` of
shuffling, redelivered duplicates and junk messages, with the six campaign use
cases as triggers. Pulls the output topics while it plays, then replays the
very same messages with the replay job and compares. Optionally stops the
emulator mid-stream (an outage).

Used by tests/test_pubsub_e2e.py and by `make latency`, which prints the
latency figures:

    python -m tools.live_scenario [--users=12] [--seconds=40] [--outage_seconds=15]
"""
import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from sessions.records import from_json
from tools.pubsub_emulator import PubSubEmulator

PROJECT = "projects/game-sessions-local"
TOPICS = {name: f"{PROJECT}/topics/{name}" for name in ("events", "ended", "changed", "dead", "triggers")}
SUBSCRIPTIONS = {name: f"{PROJECT}/subscriptions/{name}-reader" for name in TOPICS}
JOB_SUBSCRIPTION = f"{PROJECT}/subscriptions/events-job"
FILE_FLUSH_SECONDS = 5
GAMES = ["GATES_OF_OLYMPUS", "SWEET_BONANZA", "MAHJONG_WAYS", "BOOK_OF_DEAD"]
TRIGGERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sample", "campaign_triggers.yaml")


@dataclass
class Received:
    arrived_ms: int  # wall ms the collector's pull returned it
    data: bytes
    attributes: Dict[str, str]
    # When the emulator accepted it (the message's publish_time): from then on
    # any subscriber can have it, however often the collector happens to pull.
    published_ms: Optional[int] = None


@dataclass
class ScenarioResult:
    published: List[Tuple[int, bytes]]  # (publish wall ms, body), in publish order
    received: Dict[str, List[Received]]  # by output topic name
    outage: Optional[Tuple[int, int]] = None  # wall ms the emulator was down
    job_log: str = ""
    job_alive_at_end: bool = True
    bet_published_ms: Dict[Tuple[str, int, str], int] = field(default_factory=dict)
    logout_published_ms: Dict[Tuple[str, int], int] = field(default_factory=dict)

    def latencies(self, gap_ms: int) -> Dict[str, List[float]]:
        """Seconds from a switching bet's publish to its changed event's
        arrival, from end + gap to an inactivity-ended event's arrival, and
        from a logout's publish to the arrival of the ended event it caused."""
        changed, ended, logout = [], [], []
        for message in self.received["changed"]:
            record = json.loads(message.data)
            key = (record["user_id"], record["gs_session_end_date"], record["gs_game_new_id"])
            if key in self.bet_published_ms:
                changed.append((message.arrived_ms - self.bet_published_ms[key]) / 1000)
        logouts = sorted(self.logout_published_ms)
        for message in self.received["ended"]:
            record = json.loads(message.data)
            end = record["gs_session_end_date"]
            if record["gs_end_reason"] == "inactivity":
                ended.append((message.arrived_ms - end - gap_ms) / 1000)
                continue
            # The session's logout: the user's first one at or after its last bet.
            at = next((t for user, t in logouts if user == record["user_id"] and end <= t < end + gap_ms), None)
            if at is not None:
                logout.append((message.arrived_ms - self.logout_published_ms[record["user_id"], at]) / 1000)
        return {"changed": changed, "ended": ended, "logout": logout}


def is_probe(user_id: str) -> bool:
    """A start-up probe's user: "probe", or "probe-N" on Flink."""
    return user_id == "probe" or user_id.startswith("probe-")


def live_records(result, topic: str) -> List[dict]:
    """What the job emitted on an output topic (a ScenarioResult's or a
    live_load run's), the start-up probes left out."""
    records = [from_json(m.data) for m in result.received[topic]]
    return [r for r in records if not is_probe(r["user_id"])]


def now_ms() -> int:
    return int(time.time() * 1000)


def _publish_time_ms(message) -> Optional[int]:
    """The publish time Pub/Sub (the emulator) gave a pulled message, in epoch ms."""
    stamp = message.publish_time
    return int(round(stamp.timestamp() * 1000)) if stamp else None


class Collector(threading.Thread):
    """Pulls an output subscription until stopped, surviving outages."""

    def __init__(self, emulator: PubSubEmulator, subscription: str, sink: List[Received], max_messages: int = 100):
        super().__init__(daemon=True)
        self._emulator, self._subscription, self._sink = emulator, subscription, sink
        self._max_messages = max_messages
        self._stop_event = threading.Event()

    def run(self):
        client = None
        while not self._stop_event.is_set():
            try:
                client = client or self._emulator.subscriber()
                response = client.pull(request={"subscription": self._subscription, "max_messages": self._max_messages},
                                       timeout=5)
            except Exception:  # emulator down or restarting: try again
                client = None
                time.sleep(0.5)
                continue
            arrived = now_ms()
            for rm in response.received_messages:
                self._sink.append(Received(arrived, rm.message.data, dict(rm.message.attributes),
                                           _publish_time_ms(rm.message)))
            if response.received_messages:
                try:
                    client.acknowledge(request={"subscription": self._subscription,
                                                "ack_ids": [rm.ack_id for rm in response.received_messages]})
                except Exception:
                    pass

    def stop(self):
        self._stop_event.set()


def _player_plan(rng: random.Random, users: int, seconds: float, gap_s: int, phase: str):
    """(event time offset ms, event dict) for every message, unsorted."""
    plan, n = [], 0
    for u in range(users):
        user = f"player-{u}"
        t = rng.uniform(0, 2) * 1000
        game = rng.choice(GAMES)
        while t < seconds * 1000:
            if rng.random() < 0.08:
                game = rng.choice([g for g in GAMES if g != game])
            n += 1
            bet = {"event_id": f"b{phase}{n}", "user_id": user, "event_type": "bet", "occurred_at": int(t),
                   "game_id": game, "game_name": game.replace("_", " ").title(), "bet_amount": rng.choice(
                       ["0.2", "0.5", "1", "2.5"]), "platform": "mobile", "client_version": "5.1.0"}
            plan.append((int(t), bet))
            if rng.random() < 0.4:
                n += 1
                win_at = int(t + rng.uniform(50, 900))
                plan.append((win_at, {"event_id": f"w{phase}{n}", "user_id": user, "event_type": "win",
                                      "occurred_at": win_at, "game_id": game,
                                      "win_amount": rng.choice(["0.4", "1", "5", "12.5"])}))
            t += rng.uniform(200, 1500)
            if rng.random() < 0.03:  # the player takes a break: the session ends
                if rng.random() < 0.5:  # leaving the lobby first: the session ends at once
                    n += 1
                    plan.append((int(t), {"event_id": f"x{phase}{n}", "user_id": user, "event_type": "logout",
                                          "occurred_at": int(t)}))
                t += (gap_s + rng.uniform(1, 4)) * 1000
    return plan


def run_scenario(work_dir: str, users: int = 12, seconds: float = 40, gap_s: int = 5, disorder_s: int = 1,
                 outage_seconds: float = 0, seed: int = 1) -> ScenarioResult:
    rng = random.Random(seed)
    os.makedirs(work_dir, exist_ok=True)
    received = {name: [] for name in ("ended", "changed", "dead", "triggers")}
    with PubSubEmulator() as emulator:
        env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator.host}
        create_all(emulator)
        job_log_path = os.path.join(work_dir, "job.log")
        job = start_job(env, work_dir, job_log_path, gap_s, disorder_s)
        collectors = [Collector(emulator, SUBSCRIPTIONS[name], received[name]) for name in received]
        for c in collectors:
            c.start()
        result = ScenarioResult(published=[], received=received)
        try:
            publisher = emulator.publisher()
            _wait_until_live(publisher, received, job)
            received["changed"].clear()
            received["ended"].clear()
            _play(emulator, publisher, rng, result, users, seconds, gap_s, disorder_s, outage_seconds, received, job)
            _keep_watermark_moving(publisher, received, result, gap_s, job)
        finally:
            result.job_alive_at_end = job.poll() is None
            for c in collectors:
                c.stop()
            stop_job(job)
            for c in collectors:
                c.join(timeout=10)
            with open(job_log_path, "rb") as f:
                result.job_log = f.read().decode("utf-8", "replace")[-5000:]
    return result


def start_job(env, work_dir: str, log_path: str, gap_s: int, disorder_s: int) -> subprocess.Popen:
    """The streaming job on the DirectRunner, in its own process group, with
    the six campaign use cases as triggers."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.game_sessions", "--streaming", "--runner=DirectRunner",
         f"--input_subscription={JOB_SUBSCRIPTION}", "--timestamp_attribute=event_ts",
         f"--ended_topic={TOPICS['ended']}", f"--changed_topic={TOPICS['changed']}",
         f"--dead_letter_topic={TOPICS['dead']}", f"--session_gap_seconds={gap_s}",
         f"--max_disorder_seconds={disorder_s}", f"--output_dir={os.path.join(work_dir, 'live')}",
         f"--file_flush_seconds={FILE_FLUSH_SECONDS}", "--output_format=jsonl",
         f"--triggers={TRIGGERS}", f"--trigger_topic={TOPICS['triggers']}"],
        env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_job(job: subprocess.Popen) -> None:
    """Stops the job and everything it started (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(job.pid, sig)
            job.wait(timeout=20)
            return
        except ProcessLookupError:  # already gone
            job.wait()
            return
        except subprocess.TimeoutExpired:
            continue


def create_all(emulator: PubSubEmulator) -> None:
    emulator.create_subscription(TOPICS["events"], JOB_SUBSCRIPTION)
    for name, topic in TOPICS.items():
        emulator.create_subscription(topic, SUBSCRIPTIONS[name])


def _publish(publisher, body: dict, attributes=True):
    data = json.dumps(body, separators=(",", ":")).encode()
    extra = {"event_ts": str(body["occurred_at"])} if attributes else {}
    return data, publisher.publish(TOPICS["events"], data, **extra)


def _wait_until_live(publisher, received, job, timeout: float = 180) -> None:
    """Publishes a probe switch until a changed event for it comes back: the
    job is pulling."""
    def probes():
        return sum(1 for m in received["changed"] if json.loads(m.data)["user_id"] == "probe")
    answered = probes()
    deadline = time.time() + timeout
    n = int(time.time() * 1000)  # probe ids stay unique across calls
    while time.time() < deadline:
        if job.poll() is not None:
            raise RuntimeError("the streaming job exited during start-up")
        now = now_ms()
        for game in ("PROBE_A", "PROBE_B"):
            n += 1
            _publish(publisher, {"event_id": f"probe-{n}", "user_id": "probe", "event_type": "bet",
                                 "occurred_at": now + n % 2, "game_id": game, "bet_amount": 1})[1].result(30)
        time.sleep(2)
        if probes() > answered:
            return
    raise TimeoutError("the streaming job never answered the probe")


def _play(emulator, publisher, rng, result: ScenarioResult, users, seconds, gap_s, disorder_s, outage_seconds,
          received, job):
    """Plays the stream; with an outage, plays 40% of it, stops the emulator
    for `outage_seconds`, restarts it empty, re-creates the topics, and plays
    the rest once the job reads again (the restarted emulator has lost what
    was published before it went down; a backlog is tools.live_load's)."""
    if not outage_seconds:
        _play_phase(publisher, rng, result, users, seconds, gap_s, disorder_s, phase="")
        return
    _play_phase(publisher, rng, result, users, seconds * 0.4, gap_s, disorder_s, phase="a")
    time.sleep(gap_s + 2)  # let the sessions played so far end
    down = now_ms()
    emulator.restart(down_seconds=outage_seconds)
    create_all(emulator)
    publisher = emulator.publisher()
    _wait_until_live(publisher, received, job)
    result.outage = (down, now_ms())
    _play_phase(publisher, rng, result, users, seconds * 0.6, gap_s, disorder_s, phase="b")


def _play_phase(publisher, rng, result: ScenarioResult, users, seconds, gap_s, disorder_s, phase: str):
    start = now_ms() + 500
    schedule = []
    for offset, event in _player_plan(rng, users, seconds, gap_s, phase):
        event = {**event, "occurred_at": start + offset}
        # Arrival is shuffled: each message leaves up to `disorder` after it happened.
        send_at = start + offset + rng.uniform(0, disorder_s * 1000 * 0.8)
        schedule.append((send_at, event))
        if rng.random() < 0.03:
            schedule.append((send_at + rng.uniform(100, 3000), event))  # redelivery
    for k in range(3):
        schedule.append((start + rng.uniform(0, seconds * 1000), {"junk": f"{phase}{k}"}))
    schedule.sort(key=lambda item: item[0])
    futures = []
    for send_at, event in schedule:
        wait = send_at / 1000 - time.time()
        if wait > 0:
            time.sleep(wait)
        if "junk" in event:
            data = b'{"event_id": "junk-' + event["junk"].encode() + b'", "user_id": '
            futures.append(publisher.publish(TOPICS["events"], data))
        else:
            data, future = _publish(publisher, event)
            futures.append(future)
            if event["event_type"] == "bet":
                result.bet_published_ms.setdefault(
                    (event["user_id"], event["occurred_at"], event["game_id"]), now_ms())
            elif event["event_type"] == "logout":
                result.logout_published_ms.setdefault((event["user_id"], event["occurred_at"]), now_ms())
        result.published.append((now_ms(), data))
    for future in futures:
        future.result(timeout=60)


def _keep_watermark_moving(publisher, received, result, gap_s, job, timeout: float = 120) -> None:
    """The DirectRunner moves its watermark when a pull returns; a steady
    trickle of events the job ignores keeps it moving until every player's
    last session has ended (its end is the player's last bet)."""
    last_bet = {}
    for _, body in result.published:
        event = json.loads(body) if body.startswith(b'{"event_id":"b') else None
        if event:
            last_bet[event["user_id"]] = max(last_bet.get(event["user_id"], 0), event["occurred_at"])
    deadline = time.time() + timeout
    n = 0
    while time.time() < deadline and job.poll() is None:
        n += 1
        _publish(publisher, {"event_id": f"hb-{n}", "user_id": "heartbeat", "event_type": "heartbeat",
                             "occurred_at": now_ms()})
        time.sleep(0.5)
        ended = {(r["user_id"], r["gs_session_end_date"]) for r in map(lambda m: json.loads(m.data),
                                                                         received["ended"])}
        if all((user, t) in ended for user, t in last_bet.items()):
            break
    # One more file flush (--file_flush_seconds=5) before the job is stopped,
    # and time for the collectors to take what is still in flight.
    linger_until = time.time() + FILE_FLUSH_SECONDS + 2
    while time.time() < linger_until and job.poll() is None:
        n += 1
        _publish(publisher, {"event_id": f"hb-{n}", "user_id": "heartbeat", "event_type": "heartbeat",
                             "occurred_at": now_ms()})
        time.sleep(0.5)


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--gap_seconds", type=int, default=5)
    parser.add_argument("--outage_seconds", type=float, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        result = run_scenario(work, args.users, args.seconds, args.gap_seconds, outage_seconds=args.outage_seconds)
    latencies = result.latencies(args.gap_seconds * 1000)
    print(f"published {len(result.published):,} messages; received {len(result.received['changed'])} changed, "
          f"{len(result.received['ended'])} ended, {len(result.received['triggers'])} trigger firings, "
          f"{len(result.received['dead'])} dead letters")
    print(f"{'latency (s)':<44}{'p50':>8}{'p95':>8}{'max':>8}{'n':>6}")
    for name, label in (("changed", "switching bet published -> changed arrives"),
                        ("ended", "end + gap -> ended arrives"),
                        ("logout", "logout published -> ended arrives")):
        values = latencies[name]
        if values:
            print(f"{label:<44}{statistics.median(values):>8.2f}{percentile(values, 0.95):>8.2f}"
                  f"{max(values):>8.2f}{len(values):>6}")


if __name__ == "__main__":
    main()
