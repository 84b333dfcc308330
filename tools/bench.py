"""Replay benchmark: wall time, events/s and peak memory of the full job
(validation, dedupe, sessions, switches, Avro out) on generated days.

Days are generated once with the project's generator and cached outside git.
By default the replay is the plain documented command (which runs one
DirectRunner worker process per core); --workers=N passes
--direct_running_mode/--direct_num_workers explicitly (1: in-process).
Peak RSS is sampled over the whole process tree, the DirectRunner's worker
processes included; CPU is the user + system time of the whole tree, which a
busy shared machine inflates less than wall time.

Each size runs --repeat times (default 3) and the run with the median wall
time is reported, with the highest peak RSS of all runs: one run on a shared
2-core machine can be off by 10%.

    python -m tools.bench [--sizes=250000,1000000,4000000] [--repeat=3] [--workers=N] [--triggers=FILE]
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from tools.generate_events import generate, write

CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "game-sessions", "bench")


# Bumped when the generator changes what a day holds (v2: logouts, currencies),
# so a cached day of an older generator is not measured by mistake.
GENERATOR_VERSION = 2


def cached_day(events: int) -> str:
    path = os.path.join(CACHE, f"day-{events}-v{GENERATOR_VERSION}.jsonl")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        write(path + ".partial", generate(events, seed=1))
        os.replace(path + ".partial", path)
    return path


def _tree_rss_kib(root: int) -> Dict[int, int]:
    """RSS of `root` and all its descendants, by pid."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    rss, stack = {}, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss[pid] = int(line.split()[1])
        except OSError:
            continue
    return rss


def _children_cpu() -> float:
    """User + system seconds of every finished descendant (the job waits for
    its worker processes, so theirs are included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(path: str, extra: List[str]) -> dict:
    out = tempfile.mkdtemp(prefix="bench-out-")
    try:
        command = [sys.executable, "-m", "pipelines.game_sessions", f"--input={path}", f"--output_dir={out}",
                   "--output_format=avro", *extra]
        cpu_before = _children_cpu()
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        peak_total = peak_single = 0
        while process.poll() is None:
            rss = _tree_rss_kib(process.pid)
            peak_total = max(peak_total, sum(rss.values()))
            peak_single = max(peak_single, max(rss.values(), default=0))
            time.sleep(0.1)
        wall = time.monotonic() - started
        cpu = _children_cpu() - cpu_before
        output = process.stdout.read().decode()
        if process.returncode != 0:
            raise RuntimeError(f"the replay failed:\n{output[-3000:]}")
        read = int(next(line for line in output.splitlines() if "events read" in line).split()[-1].replace(",", ""))
        return {"events": read, "wall": wall, "rate": read / wall, "rss_total": peak_total / 1024,
                "rss_single": peak_single / 1024, "cpu": cpu}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="250000,1000000,4000000", help="comma-separated event counts")
    parser.add_argument("--triggers", default=None,
                        help="also evaluate this campaign rules file (e.g. sample/campaign_triggers.yaml)")
    parser.add_argument("--workers", type=int, default=None,
                        help="DirectRunner worker processes (multi_processing); 1 runs in-process. "
                             "Default: none passed, the job's own default (one per core)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per size; the median (by wall time) is reported")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    extra = []
    if args.workers == 1:
        extra += ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    elif args.workers:
        extra += ["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
    if args.triggers:
        extra.append(f"--triggers={args.triggers}")
    workers = f"{args.workers} worker(s)" if args.workers else f"the plain command ({os.cpu_count()} cores)"
    with_triggers = f", triggers from {args.triggers}" if args.triggers else ""
    print(f"replay benchmark, DirectRunner, {workers}, Avro out{with_triggers}, median of {args.repeat} run(s); "
          f"days cached in {CACHE}")
    print(f"{'events':>10} {'wall s':>8} {'events/s':>10} {'CPU s':>8} {'CPU us/event':>13} "
          f"{'peak RSS MB (all processes)':>28} {'largest process':>16}")
    for size in (int(s) for s in args.sizes.split(",")):
        path = cached_day(size)
        runs = sorted((run_once(path, extra) for _ in range(args.repeat)), key=lambda run: run["wall"])
        result = {**runs[len(runs) // 2], "rss_total": max(run["rss_total"] for run in runs),
                  "rss_single": max(run["rss_single"] for run in runs)}
        print(f"{result['events']:>10,} {result['wall']:>8.1f} {result['rate']:>10,.0f} {result['cpu']:>8.1f} "
              f"{result['cpu'] * 1e6 / result['events']:>13.1f} "
              f"{result['rss_total']:>28,.0f} {result['rss_single']:>16,.0f}", flush=True)


if __name__ == "__main__":
    main()
