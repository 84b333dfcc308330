"""`make stream`: the live job on the bundled sample, locally.

Starts Google's Pub/Sub emulator on 127.0.0.1, the streaming job on the
DirectRunner, and the publisher replaying the sample day `--speed` times
faster (the first `--messages` of it); prints every session event as it
arrives on the output topics.

The timeline is compressed by `--speed`, so the job runs with the gap divided
by the same factor (300 s / 300 = 1 s), and silences longer than a gap are cut
to just over it: the sessions are those a 300 s replay of the sample gives.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

from tools.live_scenario import JOB_SUBSCRIPTION, SUBSCRIPTIONS, TOPICS, Collector, create_all, stop_job
from tools.publish_events import publish, read_lines, schedule
from tools.pubsub_emulator import PubSubEmulator


def _printer(received, stop):
    shown = {name: 0 for name in received}
    while not stop.is_set():
        for name, messages in received.items():
            for message in messages[shown[name]:]:
                shown[name] += 1
                if name == "dead":
                    print(f"  dead letter  {message.attributes.get('reason')}: {message.data[:60]!r}", flush=True)
                    continue
                r = json.loads(message.data)
                if name == "changed":
                    print(f"  changed  {r['user_id']:>12}  {r['gs_game_old_id']} -> {r['gs_game_new_id']}  "
                          f"bets={r['gs_bets_count']} stake={r['gs_total_bet_amount']} "
                          f"delay={r['gs_event_delay_seconds']}s", flush=True)
                else:
                    print(f"  ended    {r['user_id']:>12}  {len(r['gs_all_game_ids'])} game(s) "
                          f"bets={r['gs_bets_count']} stake={r['gs_total_bet_amount']} "
                          f"wins={r['gs_total_win_amount']} delay={r['gs_event_delay_seconds']}s", flush=True)
        time.sleep(0.2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default="sample/sample_day.jsonl.gz")
    parser.add_argument("--speed", type=float, default=300)
    parser.add_argument("--messages", type=int, default=3000, help="play this many messages of the file")
    parser.add_argument("--gap_seconds", type=int, default=300, help="the gap the sessions should have")
    args = parser.parse_args(argv)
    live_gap = max(1, round(args.gap_seconds / args.speed))
    received = {name: [] for name in ("ended", "changed", "dead")}
    with PubSubEmulator() as emulator:
        create_all(emulator)
        print(f"Pub/Sub emulator on {emulator.host}; starting the job (gap {live_gap} s at {args.speed:g}x)...",
              flush=True)
        job = subprocess.Popen(
            [sys.executable, "-m", "pipelines.game_sessions", "--streaming", "--runner=DirectRunner",
             f"--input_subscription={JOB_SUBSCRIPTION}", "--timestamp_attribute=event_ts",
             f"--ended_topic={TOPICS['ended']}", f"--changed_topic={TOPICS['changed']}",
             f"--dead_letter_topic={TOPICS['dead']}", f"--session_gap_seconds={live_gap}"],
            env={**os.environ, "PUBSUB_EMULATOR_HOST": emulator.host}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        collectors = [Collector(emulator, SUBSCRIPTIONS[name], received[name]) for name in received]
        stop = threading.Event()
        printer = threading.Thread(target=_printer, args=(received, stop), daemon=True)
        for thread in (*collectors, printer):
            thread.start()
        try:
            time.sleep(15)  # the DirectRunner takes a few seconds to start pulling
            items = schedule(read_lines(args.input))[: args.messages]
            print(f"publishing {len(items):,} messages from {args.input}...", flush=True)
            publisher = emulator.publisher()
            publish(items, TOPICS["events"], speed=args.speed, publisher=publisher,
                    max_pause_seconds=live_gap + 1)
            # The DirectRunner moves its watermark when a pull returns: keep it
            # moving with events the job ignores until the last sessions close.
            until = time.time() + live_gap + 40
            while time.time() < until:
                publisher.publish(TOPICS["events"], json.dumps(
                    {"event_id": f"hb-{time.time()}", "user_id": "heartbeat", "event_type": "heartbeat",
                     "occurred_at": int(time.time() * 1000)}).encode(), event_ts=str(int(time.time() * 1000)))
                time.sleep(0.5)
        finally:
            stop.set()
            for c in collectors:
                c.stop()
            stop_job(job)
    print(f"done: {len(received['changed'])} changed, {len(received['ended'])} ended, "
          f"{len(received['dead'])} dead letters")


if __name__ == "__main__":
    main()
