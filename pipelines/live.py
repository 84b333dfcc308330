"""Wiring of the live job: Pub/Sub in; Pub/Sub and/or windowed files out."""
import os
from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import FlinkStreamingOptions, GameSessionsOptions, reads_pubsub_through_java, runs_locally
from pipelines.outputs import write_live_files
from transforms.direct_pubsub import patch_direct_pubsub
from sessions.triggers import TriggerRule
from transforms.live import DEAD_LETTERS, FIRINGS, LiveSessions
from transforms.pubsub import PublishMessages, PublishSessionEvents, ReadEventMessages, dead_letter_message
from transforms.triggers import trigger_message


def build_live(options: PipelineOptions, opts: GameSessionsOptions,
               trigger_rules: Sequence[TriggerRule] = ()) -> beam.Pipeline:
    if runs_locally(options):
        patch_direct_pubsub()
    java_read = reads_pubsub_through_java(options)
    flink = options.view_as(FlinkStreamingOptions)
    if java_read and not flink.pubsub_root_url and os.environ.get("PUBSUB_EMULATOR_HOST"):
        # Java's Pub/Sub client ignores PUBSUB_EMULATOR_HOST; this option reaches it as pubsubRootUrl.
        flink.pubsub_root_url = f"http://{os.environ['PUBSUB_EMULATOR_HOST']}"
    pipeline = beam.Pipeline(options=options)
    read = pipeline | "ReadEvents" >> ReadEventMessages(
        opts.input_subscription, opts.timestamp_attribute, opts.strict_event_types, opts.id_label,
        java_expansion_service=flink.expansion_service if java_read else None)
    live = read.events | "Sessions" >> LiveSessions(
        opts.session_gap_seconds, opts.max_disorder_seconds, trigger_rules=trigger_rules)
    sessions = live.sessions
    firings = live[FIRINGS]
    dead_letters = (read[DEAD_LETTERS], live[DEAD_LETTERS]) | "AllDeadLetters" >> beam.Flatten()

    if opts.ended_topic or opts.changed_topic:
        _ = sessions | "PublishSessions" >> PublishSessionEvents(opts.ended_topic, opts.changed_topic)
    if opts.trigger_topic:
        _ = firings | "PublishFirings" >> PublishMessages(opts.trigger_topic, trigger_message)
    if opts.dead_letter_topic:
        _ = dead_letters | "PublishDeadLetters" >> PublishMessages(opts.dead_letter_topic, dead_letter_message)
    write_live_files(sessions, firings, dead_letters, opts)
    return pipeline
