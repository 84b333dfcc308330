"""The game-sessions job: raw gameplay events -> gs_game_session_changed and
gs_game_session_ended, replayed from files or live from Pub/Sub.

    python -m pipelines.game_sessions --input=GLOB --output_dir=DIR [--output_format=avro|jsonl|both]
    python -m pipelines.game_sessions --streaming --input_subscription=... --ended_topic=... ...

`build_pipeline` returns the pipeline without running it, so the job graph can
be built and checked offline (tests, Flex Template launcher); `run` runs it.
"""
import logging
import sys
from typing import List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.options import GameSessionsOptions, validate
from pipelines.summary import print_summary
from transforms.read import DEAD_LETTERS, ReadEvents, match_inputs
from transforms.sessions import ReplaySessions
from transforms.write import OUTPUT_FORMATS, WriteTables, dead_letter_rows, session_rows


def build_pipeline(options: PipelineOptions) -> beam.Pipeline:
    opts = validate(options)
    if options.view_as(StandardOptions).streaming:
        from pipelines.live import build_live
        return build_live(options, opts)
    return _build_replay(options, opts)


def _build_replay(options: PipelineOptions, opts: GameSessionsOptions) -> beam.Pipeline:
    paths = match_inputs(opts.input)
    pipeline = beam.Pipeline(options=options)
    parsed = pipeline | "ReadEvents" >> ReadEvents(paths, opts.strict_event_types)
    sessions = parsed.events | "Sessions" >> ReplaySessions(opts.session_gap_seconds)
    rows = (
        (sessions | "SessionRows" >> beam.Map(session_rows),
         parsed[DEAD_LETTERS] | "DeadLetterRows" >> beam.Map(dead_letter_rows))
        | "AllRows" >> beam.Flatten())
    _ = rows | "WriteFiles" >> WriteTables(opts.output_dir, OUTPUT_FORMATS[opts.output_format])
    if opts.lexicon_output:
        from transforms.lexicon import WriteLexiconRecords
        _ = sessions | "LexiconRecords" >> WriteLexiconRecords(opts.lexicon_output, opts.session_gap_seconds)
    return pipeline


def main(argv: Optional[List[str]] = None) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    options = PipelineOptions(argv)
    try:
        pipeline = build_pipeline(options)
    except ValueError as e:
        print(f"game_sessions: error: {e}", file=sys.stderr)
        return 2
    result = pipeline.run()
    if not options.view_as(StandardOptions).streaming:
        result.wait_until_finish()
        print_summary(result, options.view_as(GameSessionsOptions).output_dir)
    else:
        result.wait_until_finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
