"""A local replay's workers are forks of the job (pipelines/forked_workers.py).

The fork server is forked from a new interpreter in each test (as the plain
command does): this test session has threads of its own, and forking it is
what `can_fork_workers` refuses."""
import filecmp
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.forked_workers import can_fork_workers
from tests.helpers import write_lines
from tools.generate_events import generate

REPO = Path(__file__).resolve().parent.parent
FORKING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")


def _python(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_job_runs_on_workers_forked_by_its_fork_server(tmp_path):
    out = _python("""
        import os, sys
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions
        from pipelines.forked_workers import ForkServer, can_fork_workers

        options = PipelineOptions(%r)
        assert can_fork_workers(options)
        with ForkServer() as server:
            pipeline = beam.Pipeline(runner=server.runner(options), options=options)
            _ = (pipeline | beam.Create(range(20)) | beam.Reshuffle()
                 | beam.Map(lambda _: f"{os.getpid()} {os.getppid()}") | beam.io.WriteToText(sys.argv[1]))
            pipeline.run().wait_until_finish()
            print(os.getpid(), server.pid)
    """ % FORKING, str(tmp_path / "workers"))
    job, server = map(int, out.split())
    workers = {tuple(map(int, line.split())) for path in tmp_path.glob("workers*") for line in path.open()}
    assert workers and all(parent == server for _, parent in workers)
    assert job not in {pid for pid, _ in workers}


def test_a_worker_dies_with_its_launcher_and_the_launcher_returns_its_exit_code():
    _python("""
        import os, signal, subprocess, sys, time
        from pipelines.forked_workers import LAUNCHER, ForkServer

        def children(pid):
            found = []
            for entry in os.listdir("/proc"):
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.append(int(entry))
            return found

        def until(condition, what):
            deadline = time.monotonic() + 20
            while not condition():
                assert time.monotonic() < deadline, what
                time.sleep(0.1)

        with ForkServer() as server:
            # A runner that never answers: the worker waits for its control channel.
            silent = dict(os.environ, CONTROL_API_SERVICE_DESCRIPTOR='url: "localhost:9"')
            launcher = subprocess.Popen([sys.executable, "-I", "-S", LAUNCHER, server.address], env=silent)
            until(lambda: children(server.pid), "no worker forked")
            time.sleep(1)
            assert children(server.pid), "the worker ended on its own: nothing to test"
            launcher.kill()
            launcher.wait()
            until(lambda: not children(server.pid), "the worker outlived its launcher")

            broken = dict(os.environ, CONTROL_API_SERVICE_DESCRIPTOR="not a descriptor")
            failed = subprocess.run([sys.executable, "-I", "-S", LAUNCHER, server.address], env=broken, timeout=60)
            assert failed.returncode == 1, failed
        print("ok")
    """)


def test_the_plain_command_forks_its_workers_and_writes_what_one_process_writes(tmp_path):
    day = tmp_path / "day.jsonl"
    write_lines(str(day), generate(20_000, seed=5))
    outputs, commands = {}, {}
    for name, extra in (("forked", []), ("one_process", ["--direct_num_workers=1", "--direct_running_mode=in_memory"])):
        outputs[name] = tmp_path / name
        log = tmp_path / f"{name}.log"
        with log.open("w") as stderr:
            job = subprocess.Popen(
                [sys.executable, "-m", "pipelines.game_sessions", f"--input={day}", f"--output_dir={outputs[name]}",
                 "--output_format=both", *extra], stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO)
            commands[name] = _descendants_commands_until_done(job)
        stderr = log.read_text()
        assert job.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr and "INFO:" not in stderr, stderr[-3000:]
    assert any("worker_launcher.py" in command for command in commands["forked"]), commands["forked"]
    assert not any("sdk_worker_main" in command for command in commands["forked"]), commands["forked"]
    assert _tree(outputs["forked"]) == _tree(outputs["one_process"]) != []
    for path in _tree(outputs["forked"]):
        assert filecmp.cmp(outputs["forked"] / path, outputs["one_process"] / path, shallow=False), path


def _descendants_commands_until_done(job: subprocess.Popen) -> set:
    """The command lines of every process `job` started, sampled while it runs."""
    seen = set()
    while job.poll() is None:
        parents, commands = {}, {}
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    commands[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
        for pid, command in commands.items():
            ancestor = parents.get(pid)
            while ancestor not in (None, 0, 1, job.pid):
                ancestor = parents.get(ancestor)
            if ancestor == job.pid:
                seen.add(command)
        time.sleep(0.05)
    return seen


def _tree(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("argv", [
    FORKING + ["--streaming"],
    FORKING + ["--runner=FlinkRunner"],
    ["--direct_running_mode=multi_processing", "--direct_num_workers=1"],
    ["--direct_running_mode=in_memory", "--direct_num_workers=2"],
])
def test_only_a_replay_on_several_direct_runner_processes_is_forked(argv):
    assert not can_fork_workers(PipelineOptions(argv))


def test_a_process_with_another_thread_does_not_fork():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not can_fork_workers(PipelineOptions(FORKING))
    finally:
        stop.set()
        other.join()
