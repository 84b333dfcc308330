"""The Dataflow job, built offline (SPEC §5).

The DataflowRunner translates the replay and the streaming job with
--dry_run=True: it builds the job (Beam pipeline proto, SDK image, staged
setup.py package) and returns before any cloud call, so the fake project and
gs:// paths are only written into the job, never touched. Pickling, coder,
packaging and option mistakes fail here instead of on a Dataflow worker. The
Flex Template (metadata.json, Dockerfile, main.py) is checked against the
job's options and setup.py so the three cannot drift apart.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
from distutils.core import run_setup
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.io.gcp.pubsub import parse_subscription, parse_topic
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

import main as template_launcher
from pipelines.options import GameSessionsOptions
from tools.generate_events import generate, write

REPO = Path(__file__).resolve().parent.parent
DATAFLOW = ["--runner=DataflowRunner", "--dry_run=True", "--project=game-sessions-test",
            "--region=europe-west1", "--temp_location=gs://game-sessions-test/tmp",
            f"--setup_file={REPO / 'setup.py'}"]
SUBSCRIPTION = "projects/game-sessions-test/subscriptions/raw-events"
TOPICS = {"ended": "projects/game-sessions-test/topics/ended",
          "changed": "projects/game-sessions-test/topics/changed",
          "dead_letter": "projects/game-sessions-test/topics/dead-letters"}
# Dataflow refuses a job whose graph is larger than 10 MB.
MAX_GRAPH_BYTES = 10 * 1024 * 1024
STAGED_PACKAGE = "workflow.tar.gz"  # what the stager names the setup.py package


def dataflow_job(template_args):
    """The job Dataflow would get from the Flex Template launcher (main.py)
    for these template parameters."""
    options = PipelineOptions(template_launcher.template_argv(template_args) + DATAFLOW)
    from pipelines.game_sessions import build_pipeline
    return build_pipeline(options).run().job


@pytest.fixture(scope="module")
def replay_job(tmp_path_factory):
    # Input globs are matched when the graph is built: a local file stands in
    # for the gs:// input a real launch gets.
    day = tmp_path_factory.mktemp("input") / "day.jsonl.gz"
    write(str(day), generate(200, seed=3))
    return dataflow_job([f"--input={day}", "--output_dir=gs://game-sessions-test/out",
                         "--output_format=both", "--strict_event_types=true",
                         "--lexicon_output=gs://game-sessions-test/lexicon"])


@pytest.fixture(scope="module")
def streaming_job():
    return dataflow_job([f"--input_subscription={SUBSCRIPTION}", "--timestamp_attribute=event_ts", "--id_label=event_id",
                         f"--ended_topic={TOPICS['ended']}", f"--changed_topic={TOPICS['changed']}",
                         f"--dead_letter_topic={TOPICS['dead_letter']}",
                         "--output_dir=gs://game-sessions-test/out", "--strict_event_types=false"])


def transforms_with(proto, urn):
    return [t for t in proto.components.transforms.values() if t.spec.urn == urn]


def staged_package(proto) -> str:
    for environment in proto.components.environments.values():
        for artifact in environment.dependencies:
            role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload)
            if role.staged_name == STAGED_PACKAGE:
                return beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path
    raise AssertionError(f"the job stages no {STAGED_PACKAGE}: is --setup_file passed?")


# Run by a fresh interpreter that has Beam and the staged package only: it
# rebuilds every coder, windowing strategy and transform of the job, which
# unpickles every DoFn, as a worker does.
LOAD_LIKE_A_WORKER = """
import sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.direct.direct_runner import DirectRunner
from apache_beam.runners.pipeline_context import PipelineContext

with open(sys.argv[1], "rb") as f:
    proto = beam_runner_api_pb2.Pipeline.FromString(f.read())
context = PipelineContext(proto.components)
for coder_id in proto.components.coders:
    context.coders.get_by_id(coder_id)
for strategy_id in proto.components.windowing_strategies:
    context.windowing_strategies.get_by_id(strategy_id)
beam.Pipeline.from_runner_api(proto, DirectRunner(), PipelineOptions())
import transforms
print(transforms.__file__)
"""


def assert_workers_can_load(job, tmp_path):
    """What a worker does with the job: install the staged package (for a
    pure-Python package that is setup.py's build_py output), then load the
    graph. -S keeps this checkout's editable install out of sight: a module
    or data file that setup.py does not ship is missing here too."""
    with tarfile.open(staged_package(job.proto_pipeline)) as sdist:
        sdist.extractall(tmp_path / "sdist", filter="data")
    source, = (tmp_path / "sdist").iterdir()
    site = tmp_path / "worker-site"
    subprocess.run([sys.executable, "setup.py", "--quiet", "build_py", "--build-lib", str(site)],
                   cwd=source, check=True, capture_output=True, timeout=300)
    graph = tmp_path / "pipeline.pb"
    graph.write_bytes(job.proto_pipeline.SerializeToString())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])}
    loaded = subprocess.run([sys.executable, "-S", "-c", LOAD_LIKE_A_WORKER, str(graph)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, f"a worker could not load the job:\n{loaded.stderr[-4000:]}"
    assert loaded.stdout.strip().startswith(str(site)), loaded.stdout

    shipped = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    tracked = subprocess.run(["git", "ls-files", *packages_setup_py_ships()], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    missing = [path for path in tracked if path not in shipped]
    assert not missing, f"setup.py does not ship these files to the workers: {missing}"


def packages_setup_py_ships() -> set:
    """The top-level packages setup.py installs (read without building)."""
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        distribution = run_setup("setup.py", stop_after="init")
    finally:
        os.chdir(cwd)
    return {package.split(".")[0] for package in distribution.packages}


def assert_fits_dataflow(job):
    assert len(job.proto_pipeline.SerializeToString()) < MAX_GRAPH_BYTES
    images = [beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
              for env in job.proto_pipeline.components.environments.values()]
    # Workers run Beam's own image for this SDK version and Python: pickles
    # made here must load there.
    assert images == [f"gcr.io/cloud-dataflow/v1beta3/beam_python{sys.version_info.major}."
                      f"{sys.version_info.minor}_sdk:{beam.__version__}"]


# --- the job graphs -----------------------------------------------------------

def test_replay_builds_as_a_dataflow_batch_job_workers_can_load(replay_job, tmp_path):
    assert replay_job.proto.type.name == "JOB_TYPE_BATCH"
    assert_fits_dataflow(replay_job)
    assert_workers_can_load(replay_job, tmp_path)


def test_streaming_builds_as_a_dataflow_streaming_job_workers_can_load(streaming_job, tmp_path):
    assert streaming_job.proto.type.name == "JOB_TYPE_STREAMING"
    assert_fits_dataflow(streaming_job)
    assert_workers_can_load(streaming_job, tmp_path)


def test_streaming_job_reads_and_publishes_with_dataflows_native_pubsub(streaming_job):
    """Dataflow swaps the Python Pub/Sub I/O for its own: the read must carry
    the subscription and the event-time attribute (the watermark follows
    occurred_at), and every topic must get its own publisher."""
    proto = streaming_job.proto_pipeline
    reads = [beam_runner_api_pb2.PubSubReadPayload.FromString(t.spec.payload)
             for t in transforms_with(proto, common_urns.composites.PUBSUB_READ.urn)]
    assert [(r.subscription, r.timestamp_attribute, r.id_attribute, r.with_attributes) for r in reads] == [
        (SUBSCRIPTION, "event_ts", "event_id", True)]
    writes = [beam_runner_api_pb2.PubSubWritePayload.FromString(t.spec.payload).topic
              for t in transforms_with(proto, common_urns.composites.PUBSUB_WRITE.urn)]
    assert sorted(writes) == sorted(TOPICS.values())


# --- the Flex Template --------------------------------------------------------

def job_options() -> dict:
    """{name: argparse action} of the job's own options (pipelines/options.py)."""
    parser = argparse.ArgumentParser()
    GameSessionsOptions._add_argparse_args(parser)
    return {action.dest: action for action in parser._actions if action.dest != "help"}


def metadata() -> dict:
    return json.loads((REPO / "metadata.json").read_text())


def accepts(parameter: dict, value: str) -> bool:
    return all(re.fullmatch(regex, value) for regex in parameter.get("regexes", []))


def test_metadata_declares_exactly_the_jobs_options():
    declared = [p["name"] for p in metadata()["parameters"]]
    assert len(declared) == len(set(declared)), "a parameter is declared twice"
    assert set(declared) == set(job_options()), (
        f"metadata.json lacks {sorted(set(job_options()) - set(declared))}, "
        f"declares unknown {sorted(set(declared) - set(job_options()))}")


@pytest.mark.parametrize("parameter", metadata()["parameters"], ids=lambda p: p["name"])
def test_metadata_parameter_matches_its_option(parameter):
    option = job_options()[parameter["name"]]
    assert parameter["label"].strip() and parameter["helpText"].strip()
    # One template runs both modes, so no parameter is required by Dataflow;
    # the job itself says which are missing for the mode chosen.
    assert parameter["isOptional"] is True
    for regex in parameter.get("regexes", []):
        re.compile(regex)
    if isinstance(option, argparse._StoreTrueAction):
        assert parameter["paramType"] == "BOOLEAN" and parameter["name"] in template_launcher.FLAGS
        assert accepts(parameter, "true") and accepts(parameter, "false") and not accepts(parameter, "yes")
    elif option.choices:
        assert parameter["paramType"] == "ENUM"
        assert sorted(o["value"] for o in parameter["enumOptions"]) == sorted(option.choices)
        assert all(accepts(parameter, choice) for choice in option.choices)
        assert not accepts(parameter, "parquet")
    elif option.type is int:
        assert accepts(parameter, str(option.default)) and not accepts(parameter, "5m")
    else:
        assert parameter.get("regexes"), "a free-text parameter needs a regex"


@pytest.mark.parametrize("name,parse,good,bad", [
    ("input_subscription", parse_subscription, SUBSCRIPTION, "projects/p/subscriptions/s"),
    ("ended_topic", parse_topic, TOPICS["ended"], "ended"),
    ("changed_topic", parse_topic, TOPICS["changed"], "projects/my_project/topics/t"),
    ("dead_letter_topic", parse_topic, TOPICS["dead_letter"], "projects/p/topics/d"),
])
def test_pubsub_parameters_accept_what_beam_accepts(name, parse, good, bad):
    """A launch Dataflow lets through must not die in the launcher instead."""
    parameter = next(p for p in metadata()["parameters"] if p["name"] == name)
    parse(good)
    with pytest.raises(ValueError):
        parse(bad)
    assert accepts(parameter, good) and not accepts(parameter, bad)


def test_launcher_turns_template_flags_into_command_line_flags():
    assert template_launcher.template_argv(["--input=gs://b/x", "--strict_event_types=true"]) == [
        "--input=gs://b/x", "--strict_event_types"]
    assert template_launcher.template_argv(["--strict_event_types=False"]) == []
    assert template_launcher.template_argv([f"--input_subscription={SUBSCRIPTION}"]) == [
        f"--input_subscription={SUBSCRIPTION}", "--streaming"]
    with pytest.raises(ValueError, match="true or false"):
        template_launcher.template_argv(["--strict_event_types=yes"])


def test_launcher_reports_bad_parameters_without_a_traceback(capsys):
    assert template_launcher.main(["--output_dir=gs://b/out"] + DATAFLOW) == 2
    assert "--input=GLOB is required" in capsys.readouterr().err


def test_dockerfile_ships_what_setup_py_packages_and_runs_the_launcher():
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM gcr\.io/dataflow-templates-base/python(\d)(\d+)-template-launcher-base",
                     dockerfile, re.M)
    assert base, "the launcher image must come from Dataflow's Python template launcher base"
    # The launcher pickles the job with its Python; workers get Beam's image
    # for that same Python (see assert_fits_dataflow): it must be ours.
    assert (int(base[1]), int(base[2])) == sys.version_info[:2]
    copied = {source.rstrip("/") for line in re.findall(r"^COPY (.+)$", dockerfile, re.M)
              for source in line.split()[:-1]}
    assert copied == packages_setup_py_ships() | {"setup.py", "main.py"}
    env = dict(re.findall(r"^ENV (FLEX_TEMPLATE_PYTHON_\w+)=(\S+)$", dockerfile, re.M))
    workdir = re.search(r"^WORKDIR (\S+)$", dockerfile, re.M)[1]
    assert env == {"FLEX_TEMPLATE_PYTHON_PY_FILE": f"{workdir}/main.py",
                   "FLEX_TEMPLATE_PYTHON_SETUP_FILE": f"{workdir}/setup.py"}


@pytest.mark.parametrize("target,setting", [("dataflow", "PROJECT"), ("flex-template", "TEMPLATE_IMAGE")])
def test_cloud_make_targets_stop_on_a_missing_setting(target, setting):
    settings = {"PROJECT": "p", "REGION": "europe-west1", "BUCKET": "b", "INPUT": "gs://b/in/*",
                "TEMPLATE_IMAGE": "europe-west1-docker.pkg.dev/p/r/game-sessions:1"}
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env.update({k: v for k, v in settings.items() if k != setting})
    made = subprocess.run(["make", "--dry-run", target], cwd=REPO, env=env, capture_output=True, text=True)
    assert made.returncode != 0
    assert f"{setting} is not set" in made.stderr
