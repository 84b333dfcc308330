"""Wiring of the live job: Pub/Sub in; Pub/Sub and/or windowed files out."""
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import GameSessionsOptions
from transforms.live import DEAD_LETTERS, LiveSessions
from transforms.pubsub import PublishDeadLetters, PublishSessionEvents, ReadEventMessages
from transforms.write import OUTPUT_FORMATS, WriteTables, dead_letter_rows, session_rows


def build_live(options: PipelineOptions, opts: GameSessionsOptions) -> beam.Pipeline:
    pipeline = beam.Pipeline(options=options)
    read = pipeline | "ReadEvents" >> ReadEventMessages(
        opts.input_subscription, opts.timestamp_attribute, opts.strict_event_types)
    live = read.events | "Sessions" >> LiveSessions(opts.session_gap_seconds, opts.max_disorder_seconds)
    sessions = live.sessions
    dead_letters = (read[DEAD_LETTERS], live[DEAD_LETTERS]) | "AllDeadLetters" >> beam.Flatten()

    if opts.ended_topic or opts.changed_topic:
        _ = sessions | "PublishSessions" >> PublishSessionEvents(opts.ended_topic, opts.changed_topic)
    if opts.dead_letter_topic:
        _ = dead_letters | "PublishDeadLetters" >> PublishDeadLetters(opts.dead_letter_topic)
    if opts.output_dir:
        rows = ((sessions | "SessionRows" >> beam.Map(session_rows),
                 dead_letters | "DeadLetterRows" >> beam.Map(dead_letter_rows))
                | "AllRows" >> beam.Flatten())
        _ = rows | "WriteFiles" >> WriteTables(
            opts.output_dir, OUTPUT_FORMATS[opts.output_format], flush_seconds=opts.file_flush_seconds)
    if opts.lexicon_output:
        from transforms.lexicon import WriteLexiconRecords
        _ = sessions | "LexiconRecords" >> WriteLexiconRecords(opts.lexicon_output, opts.session_gap_seconds)
    return pipeline
