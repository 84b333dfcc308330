"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE in the Dockerfile):
builds the game-sessions job from the template's parameters, submits it to
Dataflow and returns at once.

Three things differ from `python -m pipelines.game_sessions`:
- The launcher must exit for the job to start: submit, don't wait.
- The launcher passes every parameter as --name=value, a flag too
  (--strict_event_types=true), which argparse rejects for a flag.
- One template serves both modes, and Dataflow does not pass --streaming:
  a job given --input_subscription is a streaming job.
"""
import logging
import sys
from typing import List, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.game_sessions import build_pipeline

# Options that are flags on the command line but may come as --name=true|false:
# the job's own (BOOLEAN parameters in metadata.json) and Beam's --streaming.
FLAGS = ("strict_event_types", "streaming")
TRUE, FALSE = "true", "false"


def template_argv(argv: List[str]) -> List[str]:
    """The launcher's arguments as the job's option parser takes them."""
    args = []
    for arg in argv:
        name, has_value, value = arg.partition("=")
        if has_value and name.lstrip("-") in FLAGS:
            if value.lower() not in (TRUE, FALSE):
                raise ValueError(f"{name} takes true or false, got {value!r}")
            if value.lower() == TRUE:
                args.append(name)
        else:
            args.append(arg)
    if any(arg.startswith("--input_subscription") for arg in args) and "--streaming" not in args:
        args.append("--streaming")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    try:
        pipeline = build_pipeline(PipelineOptions(template_argv(sys.argv[1:] if argv is None else argv)))
    except ValueError as e:
        print(f"game_sessions template: error: {e}", file=sys.stderr)
        return 2
    pipeline.run()
    return 0


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)  # the job's submission shows in the launcher's log
    sys.exit(main())
