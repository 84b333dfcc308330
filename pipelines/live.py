"""Wiring of the live job: Pub/Sub in; Pub/Sub and/or windowed files out."""
from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import GameSessionsOptions, runs_locally
from pipelines.outputs import write_live_files
from transforms.direct_pubsub import patch_direct_pubsub
from sessions.triggers import TriggerRule
from transforms.live import DEAD_LETTERS, FIRINGS, LiveSessions
from transforms.pubsub import PublishDeadLetters, PublishSessionEvents, ReadEventMessages
from transforms.triggers import PublishFirings


def build_live(options: PipelineOptions, opts: GameSessionsOptions,
               trigger_rules: Sequence[TriggerRule] = ()) -> beam.Pipeline:
    if runs_locally(options):
        patch_direct_pubsub()
    pipeline = beam.Pipeline(options=options)
    read = pipeline | "ReadEvents" >> ReadEventMessages(
        opts.input_subscription, opts.timestamp_attribute, opts.strict_event_types, opts.id_label)
    live = read.events | "Sessions" >> LiveSessions(
        opts.session_gap_seconds, opts.max_disorder_seconds, trigger_rules=trigger_rules)
    sessions = live.sessions
    firings = live[FIRINGS]
    dead_letters = (read[DEAD_LETTERS], live[DEAD_LETTERS]) | "AllDeadLetters" >> beam.Flatten()

    if opts.ended_topic or opts.changed_topic:
        _ = sessions | "PublishSessions" >> PublishSessionEvents(opts.ended_topic, opts.changed_topic)
    if opts.trigger_topic:
        _ = firings | "PublishFirings" >> PublishFirings(opts.trigger_topic)
    if opts.dead_letter_topic:
        _ = dead_letters | "PublishDeadLetters" >> PublishDeadLetters(opts.dead_letter_topic)
    write_live_files(sessions, firings, dead_letters, opts)
    return pipeline
