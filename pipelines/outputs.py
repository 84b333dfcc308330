"""The file outputs of both modes: session and dead-letter tables, and the
optional lexicon records."""
import apache_beam as beam

from pipelines.options import GameSessionsOptions
from sessions.sessionizer import SessionEvent
from transforms.lexicon import WriteLexiconRecords
from transforms.write import OUTPUT_FORMATS, WriteSessionBatches, WriteTables, dead_letter_rows, session_rows


def write_live_files(sessions, firings, dead_letters, opts: GameSessionsOptions) -> None:
    """`sessions`: SessionEvents, `firings`: trigger Firings, flushed to
    files every --file_flush_seconds."""
    if opts.output_dir:
        rows = ((sessions | "SessionRows" >> beam.Map(session_rows),
                 firings | "FiringRows" >> beam.Map(session_rows),
                 dead_letters | "DeadLetterRows" >> beam.Map(dead_letter_rows))
                | "AllRows" >> beam.Flatten())
        _ = rows | "WriteFiles" >> WriteTables(
            opts.output_dir, OUTPUT_FORMATS[opts.output_format], flush_seconds=opts.file_flush_seconds)
    if opts.lexicon_output:
        _ = sessions | "LexiconRecords" >> WriteLexiconRecords(opts.lexicon_output)


def write_replay_files(session_batches, dead_letters, opts: GameSessionsOptions) -> None:
    """`session_batches`: ReplaySessions' lists of SessionEvents and trigger
    Firings, each written as it is."""
    formats = OUTPUT_FORMATS[opts.output_format]
    _ = session_batches | "WriteSessionFiles" >> WriteSessionBatches(opts.output_dir, formats)
    _ = (dead_letters
         | "DeadLetterRows" >> beam.Map(dead_letter_rows)
         | "WriteDeadLetterFiles" >> WriteTables(opts.output_dir, formats))
    if opts.lexicon_output:
        _ = (session_batches
             | "SessionEvents" >> beam.FlatMap(lambda batch: (e for e in batch if isinstance(e, SessionEvent)))
             | "LexiconRecords" >> WriteLexiconRecords(opts.lexicon_output))
