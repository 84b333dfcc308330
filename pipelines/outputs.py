"""The file outputs both modes share: session and dead-letter tables, and
the optional lexicon records."""
from typing import Optional

import apache_beam as beam

from pipelines.options import GameSessionsOptions
from transforms.lexicon import WriteLexiconRecords
from transforms.write import OUTPUT_FORMATS, WriteTables, dead_letter_rows, session_rows


def write_files(sessions, dead_letters, opts: GameSessionsOptions, flush_seconds: Optional[int] = None) -> None:
    if opts.output_dir:
        rows = ((sessions | "SessionRows" >> beam.Map(session_rows),
                 dead_letters | "DeadLetterRows" >> beam.Map(dead_letter_rows))
                | "AllRows" >> beam.Flatten())
        _ = rows | "WriteFiles" >> WriteTables(
            opts.output_dir, OUTPUT_FORMATS[opts.output_format], flush_seconds=flush_seconds)
    if opts.lexicon_output:
        _ = sessions | "LexiconRecords" >> WriteLexiconRecords(opts.lexicon_output, opts.session_gap_seconds)
