"""Replay on a real Flink runtime (SPEC §5): Beam's Flink job server running an
embedded Flink cluster (`--flink_master=[local]`), Python workers in the
submitting process (LOOPBACK), writes record for record what the DirectRunner
writes, dead letters included.

The job server comes from scripts/fetch_flink_job_server.sh, cached outside
git (`make flink-jar` fetches it before the suite; here it is a no-op then).
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import CHANGED, DEAD, ENDED, table_files
from tools.generate_events import generate, write

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
FETCH_JOB_SERVER = REPO / "scripts" / "fetch_flink_job_server.sh"
RUN_TIMEOUT_SECONDS = 180

# Beam's job server, the gRPC services it opens for the SDK workers and the
# LOOPBACK worker pool listen on every interface, whatever --job-host says
# (Beam's ServerFactory binds NettyServerBuilder.forPort(port); the worker pool
# binds [::]). So the Flink run gets a network namespace with nothing but
# loopback: none of those servers is reachable from outside this machine. Its
# own PID namespace makes the kernel kill the job server when the run ends (or
# is killed by the timeout), so none outlives the test.
PRIVATE_LOOPBACK = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--map-root-user",
                    "sh", "-c", 'ip link set lo up && exec "$@"', "private-loopback"]


@pytest.fixture(scope="module")
def job_server_jar() -> str:
    fetched = subprocess.run([str(FETCH_JOB_SERVER)], capture_output=True, text=True, timeout=600)
    assert fetched.returncode == 0, f"{FETCH_JOB_SERVER.name} failed:\n{fetched.stderr}"
    return fetched.stdout.strip()


@pytest.fixture(scope="module")
def generated_day(tmp_path_factory) -> list:
    """A generated day (duplicates, malformed lines, ignored types included)
    dealt line by line over three files, one gzipped: every session is spread
    over several files, so the runner must merge session fragments built in
    different bundles and on different workers."""
    folder = tmp_path_factory.mktemp("day")
    lines = generate(6000, seed=29)
    paths = [str(folder / name) for name in ("part-0.jsonl", "part-1.jsonl.gz", "part-2.jsonl")]
    for i, path in enumerate(paths):
        write(path, lines[i::len(paths)])
    return paths


def replay(inputs, output_dir, runner_args, wrapper=()) -> subprocess.CompletedProcess:
    command = [*wrapper, sys.executable, "-m", "pipelines.game_sessions",
               *(f"--input={path}" for path in inputs), f"--output_dir={output_dir}",
               "--output_format=jsonl", *runner_args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    if done.returncode != 0:
        pytest.fail(f"exit {done.returncode}: {' '.join(command)}\n{done.stderr[-6000:]}")
    return done


def written_lines(output_dir) -> dict:
    """{folder of a table or partition: sorted JSONL lines written there}."""
    folders = {}
    for table in (ENDED, CHANGED, DEAD):
        for path in table_files(output_dir, table, "jsonl"):
            folder = os.path.relpath(os.path.dirname(path), output_dir)
            with open(path, encoding="utf-8") as f:
                folders.setdefault(folder, []).extend(line for line in f if line.strip())
    return {folder: sorted(lines) for folder, lines in folders.items()}


def books(stdout: str) -> list:
    """The end-of-run summary (counters), without its first line, which names
    the output folder."""
    return stdout.strip().splitlines()[1:]


def differences(expected: dict, actual: dict, shown: int = 3) -> str:
    report = []
    for folder in sorted(expected.keys() | actual.keys()):
        missing = sorted(set(expected.get(folder, [])) - set(actual.get(folder, [])))
        extra = sorted(set(actual.get(folder, [])) - set(expected.get(folder, [])))
        if missing or extra or len(expected.get(folder, [])) != len(actual.get(folder, [])):
            report.append(f"{folder}: {len(expected.get(folder, []))} expected, {len(actual.get(folder, []))} "
                          f"written; missing {missing[:shown]}; unexpected {extra[:shown]}")
    return "\n".join(report)


def test_flink_replay_writes_the_direct_runners_records(tmp_path, generated_day, job_server_jar):
    direct = replay(generated_day, tmp_path / "direct", ["--runner=DirectRunner"])
    expected = written_lines(tmp_path / "direct")
    # The comparison means something only if the day has every kind of record.
    ended = sum(len(v) for k, v in expected.items() if k.startswith(ENDED))
    changed = sum(len(v) for k, v in expected.items() if k.startswith(CHANGED))
    if not (ended > 50 and changed > 50 and len(expected.get(DEAD, [])) >= 3):
        pytest.fail(f"the generated day is too thin to compare: {ended} ended, {changed} changed, "
                    f"{len(expected.get(DEAD, []))} dead letters")

    started = time.monotonic()
    flink = replay(generated_day, tmp_path / "flink",
                   ["--runner=FlinkRunner", "--flink_master=[local]", f"--flink_job_server_jar={job_server_jar}",
                    "--environment_type=LOOPBACK", "--parallelism=2"],
                   wrapper=PRIVATE_LOOPBACK)
    print(f"Flink replay, job server start to finish: {time.monotonic() - started:.1f} s")

    actual = written_lines(tmp_path / "flink")
    assert actual == expected, "Flink wrote other records than the DirectRunner:\n" + differences(expected, actual)
    assert books(flink.stdout) == books(direct.stdout)

