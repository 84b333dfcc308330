"""The Flink branch of the live job, without a cluster: which runners read
Pub/Sub through Java, what the Python side makes of the timestamp attribute
Java no longer checks, and the options' validation."""
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import CommandLineOptions, FlinkStreamingOptions, reads_pubsub_through_java, validate
from transforms.dead_letters import DeadLetter
from transforms.live import Delivery
from transforms.pubsub import _ParseMessage, timestamp_attribute_problem

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


def test_flink_options_are_typed_and_reach_java_under_beams_names():
    options = CommandLineOptions(["--checkpointing_interval=5000", "--operator_chaining=false",
                                  "--java_pubsub_root_url=http://127.0.0.1:8085"])
    flink = options.view_as(FlinkStreamingOptions)
    assert flink.checkpointing_interval == 5000 and flink.operator_chaining is False
    # Java's PubsubOptions.pubsubRootUrl is beam:option:pubsub_root_url:v1 on the wire.
    assert options.get_all_options()["pubsub_root_url"] == "http://127.0.0.1:8085"


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
