"""The sessions dashboard, from our own output: a batch job over the replay's
gs_game_session_ended and gs_game_session_changed Avro files that writes one
tidy CSV and one Avro file per report, then renders OUTPUT_DIR/dashboard.html.

    python -m pipelines.session_report --input_dir=out/sample --output_dir=out/report \
        [--from_date=YYYY-MM-DD] [--to_date=YYYY-MM-DD] [--players=FILE] [--top_games=50] \
        [Beam pipeline options, e.g. --runner=DirectRunner]

Metric definitions: docs/dashboard.md.
"""
import argparse
import logging
import sys
from typing import List, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

import pipelines.options  # noqa: F401 (registers the replay's options first; see SessionReportOptions)
from pipelines.summary import run_counts
import schemas
from sessions.reports import TOP_GAMES, Period, Players, PlayersFile, parse_day, read_players
from tools.dashboard import write_dashboard
from transforms.report import (NAMESPACE, PROFILES, ReadPlayers, ReadSessionTables, SessionReports, WriteReports,
                               table_files)


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
            "--from_date", default=None,
            help="First reported day (UTC date, YYYY-MM-DD, included). Sessions before it are history: they "
                 "decide who is new and what a player was worth, and are never reported. Default: the input's "
                 "first day (no history).")
        group.add_argument(
            "--to_date", default=None,
            help="Last reported day (UTC date, YYYY-MM-DD, included); later sessions are not read. "
                 "Default: the input's last day.")
        group.add_argument(
            "--players", default=None,
            help="The operator's players: a .csv (with a header) or .jsonl file, optionally .gz, with user_id "
                 "and optional registered_at (a date, RFC 3339 time with offset, or epoch ms) and segment. "
                 "New users are then those registered that day, and charts 6-7 split by segment.")
        group.add_argument(
            "--top_games", type=int, default=TOP_GAMES,
            help=f"How many games the per-game table keeps, most players first. Default: {TOP_GAMES}.")


def _matches(pattern: str) -> bool:
    return bool(FileSystems.match([pattern])[0].metadata_list)


def check_players(path: str) -> Tuple[PlayersFile, Players]:
    """Reads the whole file once up front, so that a bad line stops the job
    before it starts; the pipeline then reads it again, line by line."""
    PlayersFile.format_of(path)
    if not _matches(path):
        raise ValueError(f"--players={path}: no such file")
    with FileSystems.open(path) as f:
        try:
            lines = f.read().decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise ValueError(f"--players={path}: not UTF-8 text") from None
    players_file, profiles = read_players(lines, path)
    return players_file, Players.of(profiles)


def build_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """Raises ValueError, with a one-line message, for unusable options."""
    opts = options.view_as(SessionReportOptions)
    if not opts.input_dir:
        raise ValueError("--input_dir=DIR is required: the output folder of a game_sessions replay")
    if not opts.output_dir:
        raise ValueError("--output_dir=DIR is required: where the reports and dashboard.html go")
    if opts.top_games <= 0:
        raise ValueError(f"--top_games must be a positive number of games, got {opts.top_games}")
    period = Period(opts.from_date and parse_day(opts.from_date, "--from_date"),
                    opts.to_date and parse_day(opts.to_date, "--to_date"))
    players_file, players = check_players(opts.players) if opts.players else (None, Players())
    ended = table_files(opts.input_dir, schemas.ENDED)
    if not _matches(ended):
        raise ValueError(f"no {ended} (replay with --output_format=avro or both)")
    changed = table_files(opts.input_dir, schemas.CHANGED)
    pipeline = beam.Pipeline(options=options)
    tables = pipeline | "ReadTables" >> ReadSessionTables(ended, changed if _matches(changed) else None)
    if players_file:
        tables[PROFILES] = pipeline | "ReadPlayers" >> ReadPlayers(players_file)
    _ = (tables
         | "Reports" >> SessionReports(period, opts.top_games, players)
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
