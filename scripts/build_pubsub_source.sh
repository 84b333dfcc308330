#!/usr/bin/env bash
# Builds the live job's Pub/Sub read for Flink (java/pubsub-source: a Beam
# UnboundedSource whose watermark follows the subscription's backlog, see
# docs/flink-dataflow.md) with Maven, runs its unit tests, and prints the jar's
# path. The jar is cached outside git under the sources' hash, so an edit
# builds a new one and an unchanged checkout builds nothing:
#
#   scripts/build_pubsub_source.sh     # prints ~/.cache/game-sessions/pubsub-source-beam-2.62.0-HASH/game-sessions-pubsub-source.jar
#
# Compiled against the Beam Java version of the cluster's jars
# (scripts/fetch_flink_cluster.sh puts it on every JVM's classpath), whose
# classes it leaves out ("provided").
set -euo pipefail

BEAM_JAVA_VERSION="${BEAM_JAVA_VERSION:-2.62.0}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/game-sessions"
module="$(cd "$(dirname "${BASH_SOURCE[0]}")/../java/pubsub-source" && pwd)"

sources_hash="$(cd "$module" && find . -type f ! -path './target/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"
target="$CACHE_DIR/pubsub-source-beam-$BEAM_JAVA_VERSION-$sources_hash/game-sessions-pubsub-source.jar"

source "$(dirname "${BASH_SOURCE[0]}")/launcher_jar.sh"
begin_fetch build_pubsub_source "$target"

echo "build_pubsub_source: building $module into $(dirname "$target")" >&2
# From a copy: the checkout gets no target/ folder.
cp -r "$module" "$work/module"
if ! mvn -B -q -f "$work/module/pom.xml" -Dbeam.version="$BEAM_JAVA_VERSION" package >"$work/build.log" 2>&1; then
    echo "build_pubsub_source: the Maven build failed:" >&2
    grep -m20 -E 'ERROR|FAIL|Tests run' "$work/build.log" >&2 || tail -20 "$work/build.log" >&2
    exit 1
fi
mkdir -p "$work/out"
mv "$work/module/target/pubsub-source-1.jar" "$work/out/$(basename "$target")"
rm -rf "$(dirname "$target")"
mv "$work/out" "$(dirname "$target")"
echo "$target"
