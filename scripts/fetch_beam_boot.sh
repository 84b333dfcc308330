#!/usr/bin/env bash
# Builds Beam's Python SDK worker boot program (Go) into a cache outside git and
# prints its path. A Flink TaskManager starts it for every Python SDK worker
# when the job runs with --environment_type=PROCESS
# --environment_config='{"command": "PATH"}'; it asks the runner for the
# pipeline options and artifacts, then starts
# `python -m apache_beam.runners.worker.sdk_worker_main` with the `python`
# first on the TaskManager's PATH (scripts/flink_cluster.sh puts the project's
# venv there).
#
#   scripts/fetch_beam_boot.sh       # prints ~/.cache/game-sessions/beam-boot-2.77.0/container
set -euo pipefail

BEAM_VERSION="${BEAM_VERSION:-2.77.0}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/game-sessions"
bin_dir="$CACHE_DIR/beam-boot-$BEAM_VERSION"
target="$bin_dir/container"

if [[ -x "$target" ]]; then
    echo "$target"
    exit 0
fi
command -v go >/dev/null || {
    echo "fetch_beam_boot: 'go' is not installed (needs Go 1.21+ to build Beam's boot program)" >&2
    exit 1
}
echo "fetch_beam_boot: building github.com/apache/beam/sdks/v2/python/container@v$BEAM_VERSION into $bin_dir" >&2
mkdir -p "$CACHE_DIR"
work="$(mktemp -d "$CACHE_DIR/.boot-XXXXXX")"
trap 'rm -rf "$work"' EXIT
# Built in $work and moved into place: an interrupted build leaves nothing to trust.
(cd "$work" && GOBIN="$work/bin" GOFLAGS=-mod=mod go install "github.com/apache/beam/sdks/v2/python/container@v$BEAM_VERSION") >&2
mkdir -p "$bin_dir"
mv "$work/bin/container" "$target"
echo "$target"
