"""Options of the game-sessions job (`--help` lists them with Beam's own)."""
from typing import Type, TypeVar

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from transforms.write import OUTPUT_FORMATS

_View = TypeVar("_View", bound=PipelineOptions)


class GameSessionsOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("game sessions")
        group.add_argument(
            "--input", action="append", default=None,
            help="Replay: historical event files, a path or glob (local or gs://). Repeat for several. "
                 ".jsonl, .jsonl.gz, .csv and .avro; a dead-letter file can be fed back.")
        group.add_argument(
            "--output_dir", default=None,
            help="Where to write gs_game_session_ended/, gs_game_session_changed/ and dead_letter/. "
                 "Required for replay; optional when streaming (windowed files).")
        group.add_argument(
            "--output_format", default="avro", choices=sorted(OUTPUT_FORMATS),
            help="Session files as BigQuery-loadable Avro, JSONL, or both. Default: avro.")
        group.add_argument(
            "--session_gap_seconds", type=int, default=300,
            help="Bet inactivity that ends a session, in seconds. Default: 300.")
        group.add_argument(
            "--strict_event_types", action="store_true", default=False,
            help="Dead-letter events of types the job does not use (login, deposit, ...) instead of "
                 "counting and dropping them.")
        group.add_argument(
            "--max_disorder_seconds", type=int, default=1,
            help="Streaming: how far behind the watermark an event may arrive and still be placed "
                 "exactly as replay would place it. Default: 1.")
        group.add_argument(
            "--input_subscription", default=None,
            help="Streaming: the Pub/Sub subscription of raw events, projects/P/subscriptions/S.")
        group.add_argument(
            "--timestamp_attribute", default=None,
            help="Streaming: message attribute holding occurred_at in epoch ms (lets the runner's "
                 "watermark follow event time).")
        group.add_argument(
            "--id_label", default=None,
            help="Streaming on Dataflow: message attribute with a unique id that Pub/Sub deduplicates on "
                 "(the job also drops repeated event_ids itself). Not supported by the DirectRunner or Flink.")
        group.add_argument(
            "--ended_topic", default=None,
            help="Streaming: topic for gs_game_session_ended, projects/P/topics/T.")
        group.add_argument(
            "--changed_topic", default=None,
            help="Streaming: topic for gs_game_session_changed (may equal --ended_topic).")
        group.add_argument(
            "--dead_letter_topic", default=None,
            help="Streaming: topic for dead letters (original bytes, reason and source as attributes).")
        group.add_argument(
            "--file_flush_seconds", type=int, default=60,
            help="Streaming: how often buffered rows are written to --output_dir files. Default: 60.")
        group.add_argument(
            "--triggers", default=None,
            help="Campaign triggers: a YAML or JSON rules file (local or gs://) of CEL conditions over "
                 "session events; firings go to OUTPUT_DIR/campaign_trigger/ and --trigger_topic. "
                 "See sample/campaign_triggers.yaml and README 'Campaign triggers'.")
        group.add_argument(
            "--trigger_topic", default=None,
            help="Streaming: topic for campaign_trigger records, with attributes trigger, user_id, "
                 "event_type (subscribe to one trigger with a filter on attributes.trigger).")
        group.add_argument(
            "--lexicon_output", default=None,
            help="Also write each ended session as a net.anisota.beta.game.session record "
                 "(AT Protocol lexicon) in this folder.")


def _true_or_false(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


class FlinkStreamingOptions(PipelineOptions):
    """The live job on Flink: where Java's Pub/Sub read is expanded, and the
    options of Beam's Java FlinkRunner (FlinkPipelineOptions) the job sets,
    which Python does not declare; declared here to be typed, listed by --help
    and passed to the job server under the same names. Kept apart from
    GameSessionsOptions, which the Dataflow Flex Template mirrors."""

    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("flink (portable FlinkRunner)")
        group.add_argument(
            "--expansion_service", default=None,
            help="Streaming on Flink (or another portable runner): host:port of Beam's Java expansion "
                 "service with the project's Java Pub/Sub read (java/pubsub-source) on its classpath, "
                 "since Python's Pub/Sub read runs only on the DirectRunner and Dataflow. "
                 "`make flink-cluster` starts one on 127.0.0.1:8097.")
        group.add_argument(
            # Beam already has --pubsub_root_url (for Dataflow's tests, dest pubsubRootUrl, which
            # reaches Java under another name); this dest reaches Java's PubsubOptions as pubsubRootUrl.
            "--java_pubsub_root_url", dest="pubsub_root_url", default=None,
            help="Streaming on Flink: the Pub/Sub API root URL for the Java Pub/Sub read, e.g. "
                 "http://127.0.0.1:8085 for the emulator (Java ignores PUBSUB_EMULATOR_HOST). "
                 "Default: http://$PUBSUB_EMULATOR_HOST when that is set, else Google's.")
        group.add_argument(
            "--checkpointing_interval", type=int, default=None,
            help="Flink: take a checkpoint every this many milliseconds (state, Pub/Sub acks); "
                 "a failed job restarts from the last one. Default: none (no checkpoints).")
        group.add_argument(
            # Java's FlinkPipelineOptions spells it maxBundleTimeMills.
            "--max_bundle_time_millis", dest="max_bundle_time_mills", type=int, default=None,
            help="Flink: a bundle of the Python steps closes after at most this many milliseconds; a "
                 "result waits for the bundle of every step it passes to close, so latency grows by "
                 "up to this much per step. Default: Beam's (1000).")
        group.add_argument(
            "--auto_watermark_interval", type=int, default=None,
            help="Flink: every this many milliseconds the Pub/Sub read's watermark is passed on; "
                 "results wait for it. Default: Flink's (200).")
        group.add_argument(
            "--flink_conf_dir", default=None,
            help="Flink: a directory whose flink-conf.yaml the job server reads when it builds the "
                 "job: job-level Flink settings Beam has no option for, e.g. execution.buffer-timeout "
                 "(`make flink-cluster` writes one to $FLINK_RUN_DIR/client-conf). Default: "
                 "$FLINK_CONF_DIR of the job server, if set.")
        group.add_argument(
            "--operator_chaining", type=_true_or_false, default=None,
            help="Flink: true/false; false runs every transform as its own Flink task (clearer in "
                 "Flink's web UI, slower). Default: Flink's (true).")
        group.add_argument(
            "--number_of_execution_retries", type=int, default=None,
            help="Flink: how often a failed job is restarted (from its last checkpoint). "
                 "Default: the cluster's restart strategy.")
        group.add_argument(
            "--execution_retry_delay", type=int, default=None,
            help="Flink: milliseconds between those restarts.")


class CommandLineOptions(GameSessionsOptions, FlinkStreamingOptions):
    """Every option of the job, for the command line and its --help."""

    def view_as(self, cls: Type[_View]) -> _View:
        """One view per options class, made once. Beam asks the job's options
        for a view at every transform it applies (159 times for the replay's
        graph), and a new view parses the command line again with a parser of
        every options class: half of the graph's build time, measured. Views
        hold no values of their own (all of them read and write this object's
        option values), so a kept view is the view a new one would be."""
        views = self.__dict__.setdefault("_views", {})  # __setattr__ takes option names only
        view = views.get(cls)
        if view is None:
            view = views[cls] = super().view_as(cls)
        return view


def validate(options: PipelineOptions) -> GameSessionsOptions:
    """Raises ValueError, with a one-line message, for unusable options."""
    opts = options.view_as(GameSessionsOptions)
    streaming = options.view_as(StandardOptions).streaming
    if opts.session_gap_seconds <= 0:
        raise ValueError(f"--session_gap_seconds must be a positive number of seconds, got {opts.session_gap_seconds}")
    if opts.max_disorder_seconds < 0:
        raise ValueError(f"--max_disorder_seconds must be >= 0, got {opts.max_disorder_seconds}")
    if opts.file_flush_seconds <= 0:
        raise ValueError(f"--file_flush_seconds must be positive, got {opts.file_flush_seconds}")
    if streaming:
        if not opts.input_subscription:
            raise ValueError("--streaming needs --input_subscription=projects/P/subscriptions/S")
        if opts.input:
            raise ValueError("--input is for replay; a streaming job reads --input_subscription")
        if opts.id_label and (runs_locally(options) or reads_pubsub_through_java(options)):
            raise ValueError("--id_label is honoured by Dataflow only; the DirectRunner and Flink cannot read with it")
        if reads_pubsub_through_java(options) and not options.view_as(FlinkStreamingOptions).expansion_service:
            raise ValueError("streaming on a portable runner (Flink) needs --expansion_service=HOST:PORT "
                             "(Java's Pub/Sub read; `make flink-cluster` starts one on 127.0.0.1:8097)")
        if not (opts.ended_topic or opts.changed_topic or opts.output_dir):
            raise ValueError("--streaming needs somewhere to write: --ended_topic/--changed_topic and/or --output_dir")
        if opts.triggers and not (opts.trigger_topic or opts.output_dir):
            raise ValueError("--triggers needs somewhere to send firings: --trigger_topic and/or --output_dir")
    else:
        if opts.trigger_topic:
            raise ValueError("--trigger_topic is for streaming: a replay must not send campaigns for history; "
                             "its firings are written to OUTPUT_DIR/campaign_trigger/")
        if not opts.input:
            raise ValueError("--input=GLOB is required for a replay (or pass --streaming)")
        if not opts.output_dir:
            raise ValueError("--output_dir=DIR is required for a replay")
    return opts


def runs_locally(options: PipelineOptions) -> bool:
    """The DirectRunner (Beam's default): one machine, shuffles in memory."""
    return (options.view_as(StandardOptions).runner or "DirectRunner") in (
        "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner", "PrismRunner")


def reads_pubsub_through_java(options: PipelineOptions) -> bool:
    """Flink and other portable runners: Python's ReadFromPubSub does not run
    there (only on the DirectRunner and Dataflow), so Pub/Sub is read in Java,
    across languages (transforms.pubsub.ReadWithBacklogWatermark)."""
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    if not isinstance(runner, str):
        runner = type(runner).__name__
    return any(name in runner for name in ("FlinkRunner", "PortableRunner", "SparkRunner"))
