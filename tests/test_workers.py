"""The plain replay command uses every core; explicit worker flags win."""
import gc
import os
import platform
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

from pipelines.game_sessions import use_every_core
from pipelines.options import CommandLineOptions, GameSessionsOptions
from transforms import worker

REPLAY = ["--input=day.jsonl", "--output_dir=out"]
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _workers(argv):
    options = GameSessionsOptions(argv)
    use_every_core(options, argv)
    direct = options.view_as(DirectOptions)
    return direct.direct_running_mode, direct.direct_num_workers


@pytest.mark.skipif(CORES < 2, reason="one core: the replay stays in-process")
@pytest.mark.parametrize("extra", [[], ["--runner=DirectRunner"], ["--output_format=both"]])
def test_a_plain_replay_runs_one_worker_process_per_core(extra):
    assert _workers(REPLAY + extra) == ("multi_processing", CORES)


@pytest.mark.parametrize("extra, expected", [
    (["--direct_num_workers=1", "--direct_running_mode=in_memory"], ("in_memory", 1)),
    (["--direct_num_workers=3"], ("in_memory", 3)),  # Beam's own rules from there on
    (["--direct_running_mode", "multi_threading"], ("multi_threading", 1)),
    (["--direct_running_mode=multi_processing", "--direct_num_workers=4"], ("multi_processing", 4)),
    (["--runner=FlinkRunner"], ("in_memory", 1)),
    (["--runner=DataflowRunner"], ("in_memory", 1)),
])
def test_explicit_worker_flags_and_other_runners_are_left_alone(extra, expected):
    assert _workers(REPLAY + extra) == expected


def test_streaming_is_left_alone():
    argv = ["--streaming", "--input_subscription=projects/p/subscriptions/s", "--ended_topic=projects/p/topics/t"]
    assert _workers(argv) == ("in_memory", 1)


def test_tune_gc_freezes_once_per_process_and_raises_the_young_threshold(monkeypatch):
    monkeypatch.setattr(worker, "_tuned_in", None)
    before = gc.get_threshold()
    try:
        worker.tune_gc()
        assert gc.get_threshold()[0] == worker.YOUNG_THRESHOLD and gc.get_freeze_count() > 0
        gc.set_threshold(*before)
        worker.tune_gc()  # once per process
        assert gc.get_threshold() == before
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # a forked worker tunes itself again
            worker.tune_gc()
            os.write(write, b"%d" % gc.get_threshold()[0])
            os._exit(0)
        os.waitpid(child, 0)
        assert int(os.read(read, 32)) == worker.YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_malloc_arenas_are_limited_where_glibc_allows():
    # In a child: the setting stays with the process that made it.
    script = ("import sys; from transforms.worker import limit_malloc_arenas; "
              "sys.exit(0 if limit_malloc_arenas() else 3)")
    code = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__))).returncode
    libc, _ = platform.libc_ver()
    assert code == (0 if libc == "glibc" else 3)


def test_the_two_benign_worker_notices_are_dropped_and_nothing_else():
    import logging
    from pipelines.game_sessions import _QuietWorkerNotices

    def record(message):
        return logging.LogRecord("apache_beam.runners.portability.local_job_service", logging.WARNING,
                                 __file__, 1, message, None, None)
    quiet = _QuietWorkerNotices()
    assert not quiet.filter(record("Worker: ... message: \"Discarding unparseable args: ['--input=x']\""))
    assert not quiet.filter(record("Worker: ... message: \"No semi_persistent_directory found: ...\""))
    assert quiet.filter(record("Worker: ... message: \"Error processing instruction 7\""))


def test_the_jobs_options_keep_one_view_per_class_sharing_every_value():
    options = CommandLineOptions(["--input=a.jsonl", "--output_dir=out", "--direct_num_workers=3"])
    direct = options.view_as(DirectOptions)
    assert options.view_as(DirectOptions) is direct
    assert direct.direct_num_workers == 3
    direct.direct_num_workers = 2
    options.view_as(StandardOptions).streaming = True
    assert options.view_as(DirectOptions).direct_num_workers == 2
    assert options.get_all_options()["direct_num_workers"] == 2
    # A view of a view is Beam's own, and reads the same values.
    assert options.view_as(GameSessionsOptions).view_as(StandardOptions).streaming is True
    assert options.view_as(GameSessionsOptions).input == ["a.jsonl"]
