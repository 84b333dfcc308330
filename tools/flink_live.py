"""The live job on the local Flink session cluster, end to end.

Runs inside the cluster's private network namespace (scripts/flink_cluster.sh
starts it; `make flink-live`, `make flink-load` and tests/test_flink_live.py
call this through `scripts/flink_cluster.sh exec`). Starts Google's Pub/Sub
emulator on 127.0.0.1:8085 there, submits the streaming job to the cluster
(`--runner=FlinkRunner --flink_master=127.0.0.1:8081`, Python SDK workers as
PROCESS, Pub/Sub read through the Java expansion service, checkpoints every
5 s), publishes, collects what the job publishes, cancels the job and stops
the emulator.

    python -m tools.flink_live demo  [--speed=300]           # the sample day, session events printed
    python -m tools.flink_live scenario --work_dir=DIR [...]  # tests: result in DIR/result.json
    python -m tools.flink_live load --rate=200 --seconds=60   # events/s, exactness, changed and ended latency
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from typing import Dict, List, Optional

from tools.live_scenario import (
    GAMES, JOB_SUBSCRIPTION, PROJECT, SUBSCRIPTIONS, Collector, Received, live_records, now_ms, stop_job)
from tools import live_load, live_scenario
from tools.pubsub_emulator import PubSubEmulator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The live job on Flink publishes no campaign triggers: live_scenario's topics without them.
TOPICS = {name: live_scenario.TOPICS[name] for name in ("events", "ended", "changed", "dead")}
READERS = {name: SUBSCRIPTIONS[name] for name in ("ended", "changed", "dead")}
# A second subscription to the input topic (load only): when the emulator accepted each input.
AUDIT_SUBSCRIPTION = f"{PROJECT}/subscriptions/events-audit"
# Users of the start-up probe: enough keys that both parallel instances of the sessions step see one.
PROBE_USERS = [f"probe-{k}" for k in range(4)]
EMULATOR_PORT = int(os.environ.get("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085").rsplit(":", 1)[1])
REST = f"http://127.0.0.1:{os.environ.get('FLINK_REST_PORT', '8081')}"
EXPANSION = f"127.0.0.1:{os.environ.get('EXPANSION_PORT', '8097')}"
# A bundle of a Python step closes after this long (Beam's default: 1,000 ms).
# A result passes two such steps and waits for each bundle to close (the
# stateful step's input watermark, which fires its timers, is held while a
# bundle is open), so at the default it could spend two seconds there alone.
# 25 ms: changed p95 1.3-1.5 s at 20-50 events/s where 100 ms gave 1.6-2.6 s.
BUNDLE_MS = int(os.environ.get("FLINK_BUNDLE_MS", "25"))
# How often the read's watermark is passed on (Flink's default: 200 ms).
WATERMARK_INTERVAL_MS = int(os.environ.get("FLINK_WATERMARK_INTERVAL_MS", "50"))
# Job settings Beam has no option for (execution.buffer-timeout), written by scripts/flink_cluster.sh.
CLIENT_CONF = os.path.join(os.environ.get("FLINK_RUN_DIR", "/tmp/game-sessions-flink"), "client-conf")


def log(message: str) -> None:
    print(f"[flink_live {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _script(name: str) -> str:
    done = subprocess.run([os.path.join(REPO, "scripts", name)], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def rest(path: str, method: str = "GET"):
    request = urllib.request.Request(REST + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


class LiveJob:
    """The streaming job submitted to the cluster, with the emulator it reads."""

    def __init__(self, work_dir: str, gap_s: int, disorder_s: int, parallelism: int = 2,
                 audit_inputs: bool = False):
        self.work_dir = work_dir
        self.name = f"game-sessions-live-{os.getpid()}-{now_ms()}"
        self.gap_s, self.disorder_s, self.parallelism = gap_s, disorder_s, parallelism
        self.emulator = PubSubEmulator(port=EMULATOR_PORT, log_path=os.path.join(work_dir, "emulator.log"))
        self.process: Optional[subprocess.Popen] = None
        self.job_id: Optional[str] = None
        self.collectors: Dict[str, Collector] = {}
        self.outputs: Dict[str, List[Received]] = {name: [] for name in READERS}
        self.audit_inputs = audit_inputs
        self.inputs: List[Received] = []  # with audit_inputs: the input topic, as the emulator accepted it
        self.probe_n = 0

    def __enter__(self):
        self.emulator.start()
        os.environ["PUBSUB_EMULATOR_HOST"] = self.emulator.host
        publisher, subscriber = self.emulator.publisher(), self.emulator.subscriber()
        for topic in TOPICS.values():
            publisher.create_topic(request={"name": topic})
        # 10 s, Pub/Sub's minimum: what a killed reader had pulled but not acked
        # (no checkpoint covered it) comes back 10 s later, and a (re)started
        # reader holds its watermark that long for it.
        subscriber.create_subscription(request={"name": JOB_SUBSCRIPTION, "topic": TOPICS["events"],
                                                "ack_deadline_seconds": 10})
        for name, subscription in READERS.items():
            subscriber.create_subscription(request={"name": subscription, "topic": TOPICS[name],
                                                    "ack_deadline_seconds": 60})
        self.collectors = {name: Collector(self.emulator, sub, self.outputs[name], max_messages=500)
                           for name, sub in READERS.items()}
        if self.audit_inputs:
            subscriber.create_subscription(request={"name": AUDIT_SUBSCRIPTION, "topic": TOPICS["events"],
                                                    "ack_deadline_seconds": 60})
            self.collectors["events"] = Collector(self.emulator, AUDIT_SUBSCRIPTION, self.inputs, max_messages=1000)
        for collector in self.collectors.values():
            collector.start()
        self.publisher = publisher
        self._submit()
        return self

    def command(self) -> List[str]:
        return [sys.executable, "-m", "pipelines.game_sessions", "--streaming",
                "--runner=FlinkRunner", f"--flink_master={REST.split('//')[1]}",
                f"--flink_job_server_jar={_script('fetch_flink_cluster.sh')}",
                "--environment_type=PROCESS",
                "--environment_config=" + json.dumps({"command": _script("fetch_beam_boot.sh")}),
                f"--parallelism={self.parallelism}", "--checkpointing_interval=5000",
                f"--max_bundle_time_millis={BUNDLE_MS}", f"--auto_watermark_interval={WATERMARK_INTERVAL_MS}",
                "--number_of_execution_retries=1000", "--execution_retry_delay=2000",
                *([f"--flink_conf_dir={CLIENT_CONF}"] if os.path.isfile(os.path.join(CLIENT_CONF, "flink-conf.yaml"))
                  else []),
                f"--expansion_service={EXPANSION}", f"--job_name={self.name}",
                f"--input_subscription={JOB_SUBSCRIPTION}", "--timestamp_attribute=event_ts",
                f"--ended_topic={TOPICS['ended']}", f"--changed_topic={TOPICS['changed']}",
                f"--dead_letter_topic={TOPICS['dead']}", f"--session_gap_seconds={self.gap_s}",
                f"--max_disorder_seconds={self.disorder_s}"]

    def _submit(self) -> None:
        log(f"submitting {self.name}")
        self.process = subprocess.Popen(
            self.command(), cwd=REPO, env={**os.environ, "PYTHONPATH": REPO},
            stdout=open(os.path.join(self.work_dir, "job.log"), "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_until_live(self, timeout: float = 480, warm_rounds: int = 0) -> float:
        """Until every Flink task runs and a probe comes back as a dead letter
        (dead letters leave at once, whatever the watermark). With
        `warm_rounds`, then until that many rounds in a row of probe game
        switches (PROBE_USERS, one switch each a round) all came back as
        changed events: the whole way, watermark, shuffle, state and timers
        included, works on both parallel instances. Returns seconds."""
        started = time.time()
        deadline = started + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the job submission exited ({self.process.returncode}); see job.log")
            self.job_id = self.job_id or self._find_job()
            if self.job_id and self._all_running():
                self.probe_n += 1
                self.publisher.publish(TOPICS["events"], f"probe-{self.probe_n}".encode(),
                                       event_ts=str(now_ms())).result(30)
                if any(r.data.startswith(b"probe-") for r in self.outputs["dead"]):
                    log(f"live after {time.time() - started:.0f} s (job {self.job_id})")
                    break
            time.sleep(2)
        else:
            raise TimeoutError(f"the job was not live within {timeout} s; see job.log and the cluster logs")
        if warm_rounds:
            self._warm_up(deadline, warm_rounds)
        return time.time() - started

    def _warm_up(self, deadline: float, rounds: int, every_s: float = 2.0, within_s: float = 5.0) -> None:
        """Every `every_s` a round of probe bets, each probe user switching
        game (the first round opens their sessions), until the changed events
        of `rounds` rounds in a row were all available within `within_s`."""
        sent = []  # the rounds' switch times (ms)
        game = 0
        while time.time() < deadline:
            self.probe_n += 1
            game = 1 - game
            sent_ms = now_ms()
            for user in PROBE_USERS:
                event = {"event_id": f"probe-switch-{self.probe_n}-{user}", "user_id": user, "event_type": "bet",
                         "occurred_at": sent_ms, "game_id": GAMES[game], "bet_amount": "1"}
                self.publisher.publish(TOPICS["events"], json.dumps(event).encode(), event_ts=str(sent_ms))
            sent.append(sent_ms)
            time.sleep(every_s)
            back = {}  # switch ms -> users back, last available ms
            for r in list(self.outputs["changed"]):
                record = json.loads(r.data)
                if record["user_id"] in PROBE_USERS:
                    users, last = back.get(record["gs_session_end_date"], (0, 0))
                    back[record["gs_session_end_date"]] = (users + 1, max(last, r.published_ms or r.arrived_ms))
            done = [(at, (back[at][1] - at) / 1000) for at in sent[1:]
                    if back.get(at, (0, 0))[0] == len(PROBE_USERS)]
            judged = [at for at in sent[1:] if now_ms() - at > within_s * 1000]
            in_time = {at for at, seconds in done if seconds <= within_s}
            streak = 0
            for at in reversed(sent[1:]):
                if at in in_time:
                    streak += 1
                elif at in judged:
                    break
            if streak >= rounds:
                log(f"warm: {rounds} rounds of probe switches in a row back in "
                    f"{', '.join(f'{seconds:.2f}' for _, seconds in done[-rounds:])} s")
                return
        raise TimeoutError("the probes' game switches did not come back in time")

    def _find_job(self) -> Optional[str]:
        try:
            jobs = rest("/jobs/overview")["jobs"]
        except Exception:
            return None
        return next((j["jid"] for j in jobs if j["name"] == self.name and j["state"] == "RUNNING"), None)

    def _all_running(self) -> bool:
        try:
            return all(v["status"] == "RUNNING" for v in rest(f"/jobs/{self.job_id}")["vertices"])
        except Exception:
            return False

    def received(self, name: str) -> List[Received]:
        """Output messages, the probes left out."""
        return [r for r in self.outputs[name]
                if not r.data.startswith(b"probe-") and b'"user_id":"probe-' not in r.data]

    def checkpoints(self) -> dict:
        try:
            return rest(f"/jobs/{self.job_id}/checkpoints")["counts"]
        except Exception:
            return {}

    def __exit__(self, *exc):
        if self.job_id:
            try:
                rest(f"/jobs/{self.job_id}?mode=cancel", method="PATCH")
            except Exception as e:
                log(f"could not cancel {self.job_id}: {e}")
        if self.process and self.process.poll() is None:
            stop_job(self.process)
        for collector in self.collectors.values():
            collector.stop()
        self.emulator.stop()


def player_plan(rng: random.Random, users: int, seconds: float, gap_s: int, prefix: str = "p"):
    """(event time offset ms, event) for a few players: spins every 0.2-1.5 s,
    game hopping, wins after their bets, breaks longer than the gap."""
    plan, n = [], 0
    for u in range(users):
        user, t, game = f"{prefix}layer-{u}", rng.uniform(0, 2) * 1000, rng.choice(GAMES)
        while t < seconds * 1000:
            if rng.random() < 0.08:
                game = rng.choice([g for g in GAMES if g != game])
            n += 1
            plan.append((int(t), {"event_id": f"b-{prefix}{n}", "user_id": user, "event_type": "bet",
                                  "occurred_at": int(t), "game_id": game, "bet_amount": rng.choice(["0.2", "1", "2.5"]),
                                  "platform": "mobile", "client_version": "5.1.0"}))
            if rng.random() < 0.4:
                n += 1
                win_at = int(t + rng.uniform(50, 900))
                plan.append((win_at, {"event_id": f"w-{prefix}{n}", "user_id": user, "event_type": "win",
                                      "occurred_at": win_at, "game_id": game,
                                      "win_amount": rng.choice(["0.4", "1", "12.5"])}))
            t += rng.uniform(200, 1500)
            if rng.random() < 0.03:
                t += (gap_s + rng.uniform(1, 4)) * 1000
    return plan


def play(job: LiveJob, rng: random.Random, users: int, seconds: float, disorder_s: int,
         kill_request: Optional[str] = None, kill_at: float = 0) -> dict:
    """Plays the stream in real time, shuffled within the disorder bound, with
    redelivered duplicates, junk, messages without (or with a bad) timestamp
    attribute. Returns what was published."""
    start = now_ms() + 500
    schedule = []
    for offset, event in player_plan(rng, users, seconds, job.gap_s):
        event = {**event, "occurred_at": start + offset}
        send_at = start + offset + rng.uniform(0, disorder_s * 1000 * 0.8)
        schedule.append((send_at, "event", event))
        if rng.random() < 0.03:
            schedule.append((send_at + rng.uniform(100, 3000), "event", event))  # redelivery
    for k in range(4):
        at = start + rng.uniform(0, seconds * 1000)
        schedule.append((at, "junk", b'{"event_id": "junk-%d", "user_id": ' % k))
        schedule.append((at + 1, "no_attribute", {"event_id": f"na-{k}", "user_id": f"attrless-{k}",
                                                   "event_type": "bet", "occurred_at": int(at), "game_id": "X",
                                                   "bet_amount": "1"}))
        schedule.append((at + 2, "bad_attribute", {"event_id": f"ba-{k}", "user_id": f"badattr-{k}",
                                                    "event_type": "bet", "occurred_at": int(at), "game_id": "X",
                                                    "bet_amount": "1"}))
    schedule.sort(key=lambda item: item[0])
    published = {"events": [], "dead": []}  # bodies the replay sees; bodies that must be dead letters
    futures, kill_sent = [], False
    for send_at, kind, item in schedule:
        wait = send_at / 1000 - time.time()
        if wait > 0:
            time.sleep(wait)
        if kill_request and not kill_sent and time.time() * 1000 >= start + kill_at * 1000:
            with open(kill_request, "w") as f:
                f.write(str(now_ms()))
            kill_sent = True
            log(f"asked for a TaskManager kill ({kill_request})")
        if kind == "junk":
            futures.append(job.publisher.publish(TOPICS["events"], item, event_ts=str(now_ms())))
            published["events"].append(item)
            published["dead"].append(item)
            continue
        data = json.dumps(item, separators=(",", ":")).encode()
        if kind == "no_attribute":
            futures.append(job.publisher.publish(TOPICS["events"], data))
            published["dead"].append(data)
        elif kind == "bad_attribute":
            futures.append(job.publisher.publish(TOPICS["events"], data, event_ts="yesterday"))
            published["dead"].append(data)
        else:
            futures.append(job.publisher.publish(TOPICS["events"], data, event_ts=str(item["occurred_at"])))
            published["events"].append(data)
    for future in futures:
        future.result(timeout=60)
    return published


def wait_for_outputs(job: LiveJob, published: dict, wait_s: float) -> None:
    """Until every player's last session has ended (plus a margin) or wait_s."""
    last_bet = {}
    for body in published["events"]:
        if body.startswith(b'{"event_id":"b-'):
            event = json.loads(body)
            last_bet[event["user_id"]] = max(last_bet.get(event["user_id"], 0), event["occurred_at"])
    deadline = time.time() + wait_s
    while time.time() < deadline:
        ended = {(r["user_id"], r["gs_session_end_date"])
                 for r in (json.loads(m.data) for m in job.received("ended"))}
        if all((user, t) in ended for user, t in last_bet.items()):
            log(f"every player's last session ended; {len(ended)} sessions")
            time.sleep(3)  # what is still in flight
            return
        time.sleep(1)
    log(f"not every last session ended in {wait_s:.0f} s: {len(ended)} sessions ended, "
        f"{len(job.received('changed'))} changed")


def run_scenario(args) -> dict:
    os.makedirs(args.work_dir, exist_ok=True)
    rng = random.Random(args.seed)
    with LiveJob(args.work_dir, args.gap_seconds, args.disorder_seconds) as job:
        live_after = job.wait_until_live()
        kill_request = os.path.join(args.work_dir, "kill.request") if args.kill_tm_at else None
        published = play(job, rng, args.users, args.seconds, args.disorder_seconds, kill_request, args.kill_tm_at)
        wait_for_outputs(job, published, args.gap_seconds + args.disorder_seconds + args.drain_seconds)
        result = {
            "live_after_s": live_after,
            "published": [b.decode("utf-8", "replace") for b in published["events"]],
            "expected_dead": [b.decode("utf-8", "replace") for b in published["dead"]],
            "received": {name: [{"arrived_ms": m.arrived_ms, "data": m.data.decode("utf-8", "replace"),
                                 "attributes": m.attributes} for m in job.received(name)] for name in READERS},
            "checkpoints": job.checkpoints(),
            "job_id": job.job_id,
        }
    with open(os.path.join(args.work_dir, "result.json"), "w") as f:
        json.dump(result, f)
    log(f"result in {args.work_dir}/result.json")
    return result


def run_load(args) -> None:
    """For each rate in --rate (comma-separated), one after the other on one
    job: the stream `make load` plays on the DirectRunner (tools.live_load:
    players spinning, winning, hopping games and taking breaks, shuffled within
    0.8 of the 1 s disorder bound) at that rate for --seconds, then the same
    report: rates, exactness against a replay of the same messages, changed and
    ended latency. Latency runs until an output message is available in its
    topic: its publish time in the emulator (the tool's own pull, a few tens
    of ms later, is reported beside it). Before the first rate the job must
    answer --warm_rounds rounds of probe game switches in a row. Exits 1
    unless every rate was exact."""
    os.makedirs(args.work_dir, exist_ok=True)
    exact = True
    with LiveJob(args.work_dir, args.gap_seconds, 1, audit_inputs=True) as job:
        job.wait_until_live(warm_rounds=args.warm_rounds)
        rates = [int(r) for r in str(args.rate).split(",")]
        if args.warm_load_seconds > 0:
            _warm_load(job, rates[0], args)
        for phase, rate in enumerate(rates):
            exact = _load_phase(job, phase, rate, args) and exact
    if not exact:
        sys.exit(1)


def _warm_load(job: LiveJob, rate: int, args) -> None:
    """The first rate's stream for --warm_load_seconds, neither measured nor
    compared (its sessions end before the first phase begins, and a phase's
    records are the sessions that started after it began)."""
    log(f"warming up: {rate} events/s for {args.warm_load_seconds:.0f} s, not measured")
    messages = live_load.plan(rate, args.warm_load_seconds, job.gap_s, job.disorder_s, now_ms() + 500, seed=2,
                              phase="warm-")
    live_load.publish(job.publisher, messages, on_schedule=True)
    live_load.wait_for_last_sessions(messages, job.outputs, job.process, deadline=time.time() + args.drain_seconds)
    time.sleep(2)


def _load_phase(job: LiveJob, phase: int, rate: int, args) -> bool:
    # The phases share the job and its players' names: a phase's records are the
    # sessions that started after it began (the previous phase's have all ended).
    began_ms = now_ms() + 1000
    messages = live_load.plan(rate, args.seconds, job.gap_s, job.disorder_s, began_ms, seed=3 + phase,
                              phase=f"r{phase}-")
    published = live_load.publish(job.publisher, messages, on_schedule=True)
    finished = live_load.wait_for_last_sessions(messages, job.outputs, job.process,
                                                deadline=time.time() + args.drain_seconds)
    time.sleep(3)  # what is still in flight to the collectors

    def this_phase(received: Received) -> bool:
        try:
            record = json.loads(received.data)
        except ValueError:  # the probes
            return False
        return (record.get("gs_session_start_date") or record.get("occurred_at") or 0) >= began_ms
    received = {name: [r for r in job.outputs[name] if this_phase(r)] for name in READERS}
    result = live_load.LoadResult(messages, published, received, job_alive_at_end=job.process.poll() is None,
                                  job_log="", finished=finished)
    phase_dir = os.path.join(args.work_dir, f"load-{rate}")
    os.makedirs(phase_dir, exist_ok=True)
    reference = live_load.replay(phase_dir, result.bodies, job.gap_s)
    live = live_records(result, "ended"), live_records(result, "changed")
    comparison = live_load.compare(*live, *reference, received["dead"])
    accepted = {r.data: r.published_ms for r in job.inputs if r.published_ms is not None}
    figures = live_load.figures(result, job.gap_s, job.disorder_s, available="publish_time", accepted_ms=accepted)
    live_load.report(f"Flink, parallelism {job.parallelism}: {rate:,} events/s for {args.seconds:.0f} s",
                     result, comparison, figures, live, reference)
    return comparison.exact and finished


def run_demo(args) -> None:
    """The first --messages of the bundled sample day, --speed times faster
    with silences cut to just over the (scaled) gap, as `make stream` plays it
    on the DirectRunner; prints what the job published."""
    from tools.publish_events import publish, read_lines, schedule
    os.makedirs(args.work_dir, exist_ok=True)
    live_gap = max(1, round(300 / args.speed))
    items = schedule(read_lines(os.path.join(REPO, "sample", "sample_day.jsonl.gz")))[: args.messages]
    with LiveJob(args.work_dir, live_gap, 1) as job:
        job.wait_until_live()
        log(f"publishing {len(items):,} messages of the sample at {args.speed:g}x (gap {live_gap} s)")
        publish(items, TOPICS["events"], speed=args.speed, publisher=job.publisher, max_pause_seconds=live_gap + 1)
        log("published; waiting for the last sessions to end")
        time.sleep(15 + live_gap)
        for name in ("changed", "ended", "dead"):
            messages = job.received(name)
            print(f"{name}: {len(messages)} messages", flush=True)
            for message in messages[:3]:
                print("  " + message.data.decode("utf-8", "replace")[:300], flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["demo", "scenario", "load"])
    parser.add_argument("--work_dir", default=os.path.join(os.environ.get("FLINK_RUN_DIR", "/tmp/game-sessions-flink"),
                                                           "live"))
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--gap_seconds", type=int, default=5)
    parser.add_argument("--disorder_seconds", type=int, default=1,
                        help="--max_disorder_seconds of the job; the play shuffles events within 0.8 of it")
    parser.add_argument("--kill_tm_at", type=float, default=0,
                        help="scenario: seconds into the play to write WORK_DIR/kill.request (the caller kills)")
    parser.add_argument("--drain_seconds", type=float, default=30)
    parser.add_argument("--warm_load_seconds", type=float, default=0,
                        help="load: before the first rate, play its stream this long, neither measured nor compared")
    parser.add_argument("--warm_rounds", type=int, default=3,
                        help="load: before the first rate, this many rounds in a row of probe game switches must "
                             "come back as changed events (the job processes end to end)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--rate", default="100", help="load: events per second; several, comma-separated, run one after the other")
    parser.add_argument("--speed", type=float, default=300, help="demo: how much faster than real time")
    parser.add_argument("--messages", type=int, default=2000, help="demo: play this many messages of the sample")
    args = parser.parse_args(argv)
    {"scenario": run_scenario, "load": run_load, "demo": run_demo}[args.mode](args)


if __name__ == "__main__":
    main()
