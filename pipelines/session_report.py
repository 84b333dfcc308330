"""The sessions dashboard, from our own output: a batch job over the replay's
gs_game_session_ended and gs_game_session_changed Avro files that writes one
tidy CSV and one Avro file per report, then renders OUTPUT_DIR/dashboard.html.

    python -m pipelines.session_report --input_dir=out/sample --output_dir=out/report \
        [--top_games=50] [Beam pipeline options, e.g. --runner=DirectRunner]

Metric definitions: docs/dashboard.md.
"""
import argparse
import logging
import sys
from typing import List, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

import pipelines.options  # noqa: F401 (registers the replay's options first; see SessionReportOptions)
from pipelines.summary import run_counts
import schemas
from sessions.reports import TOP_GAMES
from tools.dashboard import write_dashboard
from transforms.report import NAMESPACE, ReadSessionTables, SessionReports, WriteReports, table_files


class SessionReportOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("session report")
        group.add_argument(
            "--input_dir", default=None,
            help="Output folder of a replay written with --output_format=avro or both (local or gs://): "
                 "reads INPUT_DIR/gs_game_session_ended/**/*.avro and gs_game_session_changed likewise.")
        try:
            group.add_argument(
                "--output_dir", default=None,
                help="Where to write <report>.csv and <report>.avro for each report, and dashboard.html.")
        except argparse.ArgumentError:
            # Beam parses every options class of the process with one parser,
            # and the replay job's options (imported above, so registered
            # first) already define --output_dir: same flag, same value.
            pass
        group.add_argument(
            "--top_games", type=int, default=TOP_GAMES,
            help=f"How many games the per-game table keeps, most players first. Default: {TOP_GAMES}.")


def _matches(pattern: str) -> bool:
    return bool(FileSystems.match([pattern])[0].metadata_list)


def build_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """Raises ValueError, with a one-line message, for unusable options."""
    opts = options.view_as(SessionReportOptions)
    if not opts.input_dir:
        raise ValueError("--input_dir=DIR is required: the output folder of a game_sessions replay")
    if not opts.output_dir:
        raise ValueError("--output_dir=DIR is required: where the reports and dashboard.html go")
    if opts.top_games <= 0:
        raise ValueError(f"--top_games must be a positive number of games, got {opts.top_games}")
    ended = table_files(opts.input_dir, schemas.ENDED)
    if not _matches(ended):
        raise ValueError(f"no {ended} (replay with --output_format=avro or both)")
    changed = table_files(opts.input_dir, schemas.CHANGED)
    pipeline = beam.Pipeline(options=options)
    _ = (pipeline
         | "ReadTables" >> ReadSessionTables(ended, changed if _matches(changed) else None)
         | "Reports" >> SessionReports(opts.top_games)
         | "WriteReports" >> WriteReports(opts.output_dir))
    return pipeline


def main(argv: Optional[List[str]] = None) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    # Built as the subclass so that --help lists this job's options: a bare
    # PipelineOptions parses with an empty parser.
    options = SessionReportOptions(argv)
    try:
        pipeline = build_pipeline(options)
    except ValueError as e:
        print(f"session_report: error: {e}", file=sys.stderr)
        return 2
    result = pipeline.run()
    result.wait_until_finish()
    output_dir = options.view_as(SessionReportOptions).output_dir
    counts = run_counts(result, NAMESPACE)
    dashboard = write_dashboard(output_dir)
    print(f"session_report: {counts['sessions']:,} sessions -> {counts['report_rows']:,} report rows in {output_dir}")
    if counts["switches_without_ended_session"]:
        print(f"  left out {counts['switches_without_ended_session']:,} game switches of sessions with no ended record")
    print(f"  dashboard: {dashboard}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
