"""Pub/Sub in and out (SPEC §4, §5.2).

Reading: on the DirectRunner and Dataflow with Python's `ReadFromPubSub`; on
Flink (portable runners), where Python's read does not run, with the
project's own Java read (java/pubsub-source, `ReadWithBacklogWatermark`)
through an expansion service. Beam's Java PubsubIO would do, but its watermark
is the oldest message of the last minute, so every result waits a minute; this
one holds the watermark by what the subscription's backlog can still hold, as
the DirectRunner's read does (transforms/direct_pubsub.BacklogWatermark), and
acknowledges messages only when a Flink checkpoint covering them completes. A
message without a usable timestamp attribute (on which PubsubIO fails its
bundle forever) leaves the Java read with its publish time, and the parse step
checks the attribute: such a message becomes a dead letter.

Publishing: Python's `WriteToPubSub` everywhere (on Flink it runs in the
Python SDK workers and honours PUBSUB_EMULATOR_HOST there).
"""
from typing import Any, Callable, NamedTuple, Optional

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage, ReadFromPubSub, WriteToPubSub
from apache_beam.transforms.external import ExternalTransform, NamedTupleBasedPayloadBuilder

from sessions.events import INVALID_FIELD, MISSING_FIELD, InvalidEvent, parse_event
from sessions.records import to_json
from sessions.sessionizer import SessionEvent
from transforms.counters import InputCounters
from transforms.dead_letters import DeadLetter
from transforms.direct_pubsub import attribute_timestamp
from transforms.live import DEAD_LETTERS, Delivery


def timestamp_attribute_problem(attributes, name: str) -> Optional[InvalidEvent]:
    """Why a message's timestamp attribute is unusable (None when it is fine):
    epoch milliseconds or RFC 3339, the two forms Beam's readers accept."""
    value = (attributes or {}).get(name)
    if value is None:
        return InvalidEvent(MISSING_FIELD, f"message has no {name!r} attribute (--timestamp_attribute)")
    try:
        attribute_timestamp(value)
        return None
    except ValueError:
        return InvalidEvent(INVALID_FIELD, f"attribute {name}={value[:40]!r} is neither epoch ms nor RFC 3339")


class _ParseMessage(beam.DoFn):
    def __init__(self, strict_event_types: bool, check_timestamp_attribute: Optional[str] = None):
        self._strict = strict_event_types
        self._check_attribute = check_timestamp_attribute

    def setup(self):
        self._counters = InputCounters()

    def process(self, message: PubsubMessage):
        self._counters.read.inc()
        payload = message.data or b""
        try:
            if self._check_attribute:
                problem = timestamp_attribute_problem(message.attributes, self._check_attribute)
                if problem is not None:
                    raise problem
            event = parse_event(payload, self._strict)
        except InvalidEvent as e:
            self._counters.dead_letter(e.reason)
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS, DeadLetter(payload, e.reason, e.error, message_id=message.message_id))
            return
        if event is None:
            self._counters.ignored.inc()
            return
        yield Delivery(event, payload, message.message_id)


# BacklogPubsubRead.URN in java/pubsub-source.
BACKLOG_WATERMARK_READ_URN = "game_sessions:pubsub_read_with_backlog_watermark:v1"


class BacklogWatermarkReadConfiguration(NamedTuple):
    """The Java read's configuration: the expansion service sets each field
    through the setter of the same name in camel case (BacklogPubsubRead.Configuration)."""
    subscription: str
    timestamp_attribute: Optional[str]


class ReadWithBacklogWatermark(beam.PTransform):
    """A subscription -> PubsubMessages (attributes and message id included),
    timestamped with the event time of `timestamp_attribute` (else the publish
    time), under a watermark that never passes an event still in the backlog.
    Expanded by the Java expansion service at `expansion_service`, which must
    have the jar of java/pubsub-source on its classpath (scripts/flink_cluster.sh)."""

    def __init__(self, subscription: str, timestamp_attribute: Optional[str], expansion_service: str):
        super().__init__()
        self._configuration = BacklogWatermarkReadConfiguration(subscription, timestamp_attribute)
        self._expansion_service = expansion_service

    def expand(self, pbegin):
        # Serialized google.pubsub.v1.PubsubMessage protos, as Beam's own
        # cross-language Pub/Sub read hands them over.
        return (pbegin
                | "Pull" >> ExternalTransform(BACKLOG_WATERMARK_READ_URN,
                                              NamedTupleBasedPayloadBuilder(self._configuration),
                                              self._expansion_service)
                | "FromProto" >> beam.Map(PubsubMessage._from_proto_str).with_output_types(PubsubMessage))


class ReadEventMessages(beam.PTransform):
    """A subscription of raw events -> Deliveries, plus DEAD_LETTERS.

    With `java_expansion_service` (Flink), reads with `ReadWithBacklogWatermark`
    and checks the timestamp attribute itself (see above)."""

    def __init__(self, subscription: str, timestamp_attribute: Optional[str], strict_event_types: bool,
                 id_label: Optional[str] = None, java_expansion_service: Optional[str] = None):
        super().__init__()
        self._subscription = subscription
        self._timestamp_attribute = timestamp_attribute
        self._strict = strict_event_types
        self._id_label = id_label
        self._expansion_service = java_expansion_service

    def expand(self, pbegin):
        if self._expansion_service:
            messages = pbegin | "Pull" >> ReadWithBacklogWatermark(
                self._subscription, self._timestamp_attribute, self._expansion_service)
            parse = _ParseMessage(self._strict, check_timestamp_attribute=self._timestamp_attribute)
        else:
            messages = pbegin | "Pull" >> ReadFromPubSub(
                subscription=self._subscription, with_attributes=True,
                timestamp_attribute=self._timestamp_attribute, id_label=self._id_label)
            parse = _ParseMessage(self._strict)
        return messages | "Parse" >> beam.ParDo(parse).with_outputs(DEAD_LETTERS, main="events")


def session_message(session_event: SessionEvent) -> PubsubMessage:
    """Body: the JSON record; attributes let subscribers filter without parsing."""
    result = session_event.result
    return PubsubMessage(
        data=to_json(session_event.record).encode("utf-8"),
        attributes={
            "event_type": result.event_type,
            "user_id": result.user_id,
            "gs_gameplay_session_id": result.gameplay_session_id,
            "event_ts": str(result.event_ts),
        })


def dead_letter_message(dead_letter: DeadLetter) -> PubsubMessage:
    """The original bytes untouched; why and where in the attributes."""
    return PubsubMessage(data=dead_letter.payload, attributes=dead_letter.attributes())


class PublishSessionEvents(beam.PTransform):
    """SessionEvents -> the ended and changed topics (which may be one)."""

    def __init__(self, ended_topic: Optional[str], changed_topic: Optional[str]):
        super().__init__()
        self._topics = {"gs_game_session_ended": ended_topic, "gs_game_session_changed": changed_topic}

    def expand(self, results):
        messages = results | "ToMessages" >> beam.Map(session_message)
        by_topic = {}
        for event_type, topic in self._topics.items():
            if topic:
                by_topic.setdefault(topic, []).append(event_type)
        for topic, event_types in by_topic.items():
            _ = (messages
                 | f"Only {'+'.join(event_types)}" >> beam.Filter(
                     lambda m, kinds=tuple(event_types): m.attributes["event_type"] in kinds)
                 | f"Publish to {topic}" >> WriteToPubSub(topic, with_attributes=True))
        return beam.pvalue.PDone(results.pipeline)


class PublishMessages(beam.PTransform):
    """Elements -> one topic, each made a message by `to_message` (e.g.
    dead_letter_message, transforms.triggers.trigger_message)."""

    def __init__(self, topic: str, to_message: Callable[[Any], PubsubMessage]):
        super().__init__()
        self._topic = topic
        self._to_message = to_message

    def expand(self, elements):
        return (elements
                | "ToMessages" >> beam.Map(self._to_message)
                | "Publish" >> WriteToPubSub(self._topic, with_attributes=True))
