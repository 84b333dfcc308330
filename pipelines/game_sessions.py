"""The game-sessions job: raw gameplay events -> gs_game_session_changed and
gs_game_session_ended, replayed from files or live from Pub/Sub.

    python -m pipelines.game_sessions --input=GLOB --output_dir=DIR [--output_format=avro|jsonl|both]
    python -m pipelines.game_sessions --streaming --input_subscription=... --ended_topic=... ...

`build_pipeline` returns the pipeline without running it, so the job graph can
be built and checked offline (tests, Flex Template launcher); `main` runs it.
"""
import gc

# Importing Beam creates about a million objects, all kept for the life of
# the process: collecting while they are created, or scanning them in any
# later collection, is wasted. So the collector is off during the imports and
# what they made is then frozen (gc.freeze: kept out of every collection, no
# scan): ~0.1 s of every run's start each, measured. main() then tunes
# collection for the run.
gc.disable()

import contextlib
import logging
import os
import sys
import tempfile
import uuid
from typing import List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

from pipelines.forked_workers import ForkServer, can_fork_workers
from pipelines.options import CommandLineOptions, GameSessionsOptions, runs_locally, validate
from pipelines.summary import print_summary
from pipelines.outputs import write_replay_files
from transforms.read import DEAD_LETTERS, LINE_COUNTS, LineNumbers, ReadEvents, match_inputs
from sessions.triggers import TriggerRule
from transforms.sessions import ReplaySessions, user_buckets
from transforms.triggers import read_rules
from transforms.worker import limit_malloc_arenas, tune_gc

gc.freeze()
gc.enable()


def build_pipeline(options: PipelineOptions) -> beam.Pipeline:
    return _build(options, *_checked(options))


def _checked(options: PipelineOptions) -> Tuple[GameSessionsOptions, Tuple[TriggerRule, ...]]:
    """The options and the trigger rules, checked: a broken rules file stops
    the job here, before anything runs (ValueError)."""
    opts = validate(options)
    return opts, read_rules(opts.triggers) if opts.triggers else ()


def _build(options: PipelineOptions, opts: GameSessionsOptions, trigger_rules: Sequence[TriggerRule],
           runner: Optional[PipelineRunner] = None) -> beam.Pipeline:
    if options.view_as(StandardOptions).streaming:
        # Imported for a live job only: a replay's start (and the worker
        # processes forked from it) need none of the Pub/Sub wiring (~40 ms).
        from pipelines.live import build_live
        return build_live(options, opts, trigger_rules)
    return _build_replay(options, opts, trigger_rules, runner)


def _build_replay(options: PipelineOptions, opts: GameSessionsOptions, trigger_rules: Sequence[TriggerRule],
                  runner: Optional[PipelineRunner]) -> beam.Pipeline:
    files = match_inputs(opts.input)
    spill_dir = (os.path.join(tempfile.gettempdir(), f"game-sessions-spill-{uuid.uuid4().hex}")
                 if runs_locally(options) else None)
    pipeline = beam.Pipeline(runner=runner, options=options)
    read = pipeline | "ReadEvents" >> ReadEvents(files, opts.strict_event_types)
    # Locally, the worker processes claim the buckets as they go (BucketPlan).
    workers = (options.view_as(DirectOptions).direct_num_workers or 1) if spill_dir else None
    sessions = read.events | "Sessions" >> ReplaySessions(
        opts.session_gap_seconds, user_buckets(files), spill_dir, trigger_rules, opts.strict_event_types, workers)
    dead_letters = ((read[DEAD_LETTERS], sessions.dead_letters)
                    | "DeadLetters" >> beam.Flatten()
                    | "LineNumbers" >> LineNumbers(read[LINE_COUNTS]))
    write_replay_files(sessions.sessions, dead_letters, opts)
    return pipeline


class _QuietWorkerNotices(logging.Filter):
    """Drops two warnings the DirectRunner relays from each of its worker
    processes that say nothing about the job: the worker's option parser does
    not know the job's own flags (the DoFns carry their settings), and a local
    run stages no files."""
    _NOTICES = ("Discarding unparseable args", "No semi_persistent_directory found")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(notice in message for notice in self._NOTICES)


_WORKER_FLAGS = ("--direct_num_workers", "--direct_running_mode")


def use_every_core(options: PipelineOptions, argv: List[str]) -> None:
    """A replay on the DirectRunner runs on one worker process per core
    (multi_processing), unless the command line chose its own
    --direct_num_workers or --direct_running_mode. Streaming is left alone
    (the BundleBasedDirectRunner has no workers to spread over)."""
    if options.view_as(StandardOptions).streaming or (
            options.view_as(StandardOptions).runner or "DirectRunner") != "DirectRunner":
        return
    if any(arg == flag or arg.startswith(flag + "=") for arg in argv for flag in _WORKER_FLAGS):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores > 1:
        direct = options.view_as(DirectOptions)
        direct.direct_running_mode = "multi_processing"
        direct.direct_num_workers = cores


def main(argv: Optional[List[str]] = None) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("apache_beam.runners.portability.local_job_service").addFilter(_QuietWorkerNotices())
    argv = sys.argv[1:] if argv is None else list(argv)
    # Built as the subclass so that --help lists the job's own options.
    options = CommandLineOptions(argv)
    use_every_core(options, argv)
    forks_workers = can_fork_workers(options)
    if forks_workers:
        # Set before the fork server is forked, so its workers inherit them
        # (transforms/worker.py).
        tune_gc()
        limit_malloc_arenas()
    with contextlib.ExitStack() as workers:
        # Forked now, while this process has imported everything and started
        # no thread (pipelines/forked_workers.py).
        runner = workers.enter_context(ForkServer()).runner(options) if forks_workers else None
        try:
            opts, trigger_rules = _checked(options)
            pipeline = _build(options, opts, trigger_rules, runner)
        except ValueError as e:
            print(f"game_sessions: error: {e}", file=sys.stderr)
            return 2
        result = pipeline.run()
        result.wait_until_finish()
    if not options.view_as(StandardOptions).streaming:
        print_summary(result, opts.output_dir, [rule.name for rule in trigger_rules])
    # The run's objects die with the process: spare them the interpreter's
    # final collection (~0.4 s after a replay, measured with py-spy).
    gc.freeze()
    return 0


if __name__ == "__main__":
    sys.exit(main())
