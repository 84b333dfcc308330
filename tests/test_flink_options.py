"""The Flink branch of the live job, without a cluster: which runners read
Pub/Sub through Java, what the Python side makes of the timestamp attribute
Java does not check, the options' validation, and that the Python side of the
Java read names what the Java side registers."""
import re
from pathlib import Path

import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import CommandLineOptions, FlinkStreamingOptions, reads_pubsub_through_java, validate
from transforms.dead_letters import DeadLetter
from transforms.live import Delivery
from transforms.pubsub import (
    BACKLOG_WATERMARK_READ_URN, BacklogWatermarkReadConfiguration, _ParseMessage, timestamp_attribute_problem)

JAVA_MAIN = Path(__file__).resolve().parent.parent / "java" / "pubsub-source" / "src" / "main"
REGISTRAR = JAVA_MAIN / "java" / "gamesessions" / "pubsub" / "BacklogPubsubRead.java"

STREAMING = ["--streaming", "--input_subscription=projects/p/subscriptions/s", "--ended_topic=projects/p/topics/t"]
BET = b'{"event_id":"e1","user_id":"u","event_type":"bet","occurred_at":1767225600000,"game_id":"G","bet_amount":"1"}'


@pytest.mark.parametrize("runner,java", [("DirectRunner", False), ("DataflowRunner", False), (None, False),
                                         ("FlinkRunner", True), ("PortableRunner", True)])
def test_only_portable_runners_read_pubsub_through_java(runner, java):
    flags = [f"--runner={runner}"] if runner else []
    assert reads_pubsub_through_java(PipelineOptions(flags)) is java


def test_flink_streaming_needs_an_expansion_service():
    with pytest.raises(ValueError, match="--expansion_service"):
        validate(PipelineOptions(["--runner=FlinkRunner", *STREAMING]))
    validate(PipelineOptions(["--runner=FlinkRunner", "--expansion_service=127.0.0.1:8097", *STREAMING]))


def test_id_label_is_refused_on_flink_which_cannot_honour_it():
    with pytest.raises(ValueError, match="--id_label is honoured by Dataflow only"):
        validate(PipelineOptions(["--runner=FlinkRunner", "--expansion_service=127.0.0.1:8097", "--id_label=event_id",
                                  *STREAMING]))


def test_flink_options_are_typed_and_reach_java_under_beams_names():
    options = CommandLineOptions(["--checkpointing_interval=5000", "--operator_chaining=false",
                                  "--java_pubsub_root_url=http://127.0.0.1:8085", "--max_bundle_time_millis=100",
                                  "--auto_watermark_interval=50", "--flink_conf_dir=/tmp/run/client-conf"])
    flink = options.view_as(FlinkStreamingOptions)
    assert flink.checkpointing_interval == 5000 and flink.operator_chaining is False
    # Java's PubsubOptions.pubsubRootUrl is beam:option:pubsub_root_url:v1 on the wire,
    # FlinkPipelineOptions.maxBundleTimeMills beam:option:max_bundle_time_mills:v1.
    assert options.get_all_options()["pubsub_root_url"] == "http://127.0.0.1:8085"
    assert options.get_all_options()["max_bundle_time_mills"] == 100
    assert options.get_all_options()["auto_watermark_interval"] == 50
    # FlinkPipelineOptions.flinkConfDir: the job server builds the job with that flink-conf.yaml.
    assert options.get_all_options()["flink_conf_dir"] == "/tmp/run/client-conf"


def test_the_java_read_registers_the_urn_python_asks_for():
    assert f'URN = "{BACKLOG_WATERMARK_READ_URN}"' in REGISTRAR.read_text()
    services = JAVA_MAIN / "resources" / "META-INF" / "services"
    assert (services / "org.apache.beam.sdk.expansion.ExternalTransformRegistrar").read_text().split() == [
        "gamesessions.pubsub.BacklogPubsubRead"]


def test_every_configuration_field_has_its_setter_in_java():
    """The expansion service sets field snake_case through setSnakeCase; a
    field without one fails the expansion (a typo would only show on a cluster)."""
    setters = set(re.findall(r"public void (set\w+)\(", REGISTRAR.read_text()))
    wanted = {"set" + "".join(part.title() for part in field.split("_"))
              for field in BacklogWatermarkReadConfiguration._fields}
    assert wanted == setters



@pytest.mark.parametrize("attributes,reason", [
    ({"event_ts": "1767225600000"}, None),
    ({"event_ts": "2026-01-01T00:00:00Z"}, None),
    ({}, "missing_field"),
    (None, "missing_field"),
    ({"event_ts": "yesterday"}, "invalid_field"),
    ({"event_ts": ""}, "invalid_field"),
])
def test_timestamp_attribute_problems(attributes, reason):
    problem = timestamp_attribute_problem(attributes, "event_ts")
    assert (problem.reason if problem else None) == reason


def test_a_message_without_the_attribute_is_a_dead_letter_with_its_bytes():
    parse = _ParseMessage(False, check_timestamp_attribute="event_ts")
    parse.setup()
    out = list(parse.process(PubsubMessage(BET, {}, message_id="m1")))
    assert len(out) == 1 and out[0].tag == "dead_letters"
    dead: DeadLetter = out[0].value
    assert (dead.payload, dead.reason, dead.message_id) == (BET, "missing_field", "m1")
    ok = list(parse.process(PubsubMessage(BET, {"event_ts": "1767225600000"}, message_id="m2")))
    assert len(ok) == 1 and isinstance(ok[0], Delivery)


def test_without_the_check_the_attribute_is_the_runners_business():
    parse = _ParseMessage(False)
    parse.setup()
    assert isinstance(list(parse.process(PubsubMessage(BET, {}, message_id="m3")))[0], Delivery)
