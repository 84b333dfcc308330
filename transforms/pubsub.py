"""Pub/Sub in and out (SPEC §4, §5.2)."""
from typing import Optional

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage, ReadFromPubSub, WriteToPubSub

from sessions.events import InvalidEvent, parse_event
from sessions.records import to_json
from sessions.sessionizer import SessionEvent
from transforms.counters import InputCounters
from transforms.dead_letters import DeadLetter
from transforms.live import DEAD_LETTERS, Delivery


class _ParseMessage(beam.DoFn):
    def __init__(self, strict_event_types: bool):
        self._strict = strict_event_types

    def setup(self):
        self._counters = InputCounters()

    def process(self, message: PubsubMessage):
        self._counters.read.inc()
        payload = message.data or b""
        try:
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


class ReadEventMessages(beam.PTransform):
    """A subscription of raw events -> Deliveries, plus DEAD_LETTERS."""

    def __init__(self, subscription: str, timestamp_attribute: Optional[str], strict_event_types: bool,
                 id_label: Optional[str] = None):
        super().__init__()
        self._subscription = subscription
        self._timestamp_attribute = timestamp_attribute
        self._strict = strict_event_types
        self._id_label = id_label

    def expand(self, pbegin):
        return (
            pbegin
            | "Pull" >> ReadFromPubSub(subscription=self._subscription, with_attributes=True,
                                       timestamp_attribute=self._timestamp_attribute, id_label=self._id_label)
            | "Parse" >> beam.ParDo(_ParseMessage(self._strict)).with_outputs(DEAD_LETTERS, main="events"))


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


class PublishDeadLetters(beam.PTransform):
    def __init__(self, topic: str):
        super().__init__()
        self._topic = topic

    def expand(self, dead_letters):
        return (dead_letters
                | "ToMessages" >> beam.Map(dead_letter_message)
                | "Publish" >> WriteToPubSub(self._topic, with_attributes=True))
