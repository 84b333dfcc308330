#!/usr/bin/env bash
# Fetches Beam's Flink job server from Maven Central into a cache outside git
# and prints the path of a jar that `java -jar` starts, i.e. what
# `--runner=FlinkRunner --flink_job_server_jar=PATH` expects.
#
#   scripts/fetch_flink_job_server.sh            # prints the jar's path
#   FLINK_VERSION=1.19 BEAM_JAVA_VERSION=2.62.0 scripts/fetch_flink_job_server.sh
#
# Two ways to get it, in this order:
#  1. Beam's own shaded jar, org.apache.beam:beam-runners-flink-F-job-server:V;
#  2. the same job server assembled from the runner library
#     org.apache.beam:beam-runners-flink-F:V and its dependency tree: the jars go
#     to lib/ beside a small launcher jar whose manifest names them and the
#     driver class. The registry this project is built against serves the
#     library but not the shaded jar, so this is the way taken here.
#
# Why these default versions: the Python SDK talks to the job server over
# Beam's portable Job and Fn APIs, which are stable across releases, so the job
# server need not match apache-beam==2.77.0. 2.62.0 with Flink 1.19 is the
# newest pair whose whole dependency tree the registry serves (2.77.0 is not
# published for Java there; for 2.70.0 beam-runners-java-job-service is
# missing; no Flink 1.20/2.x runner is served). tests/test_flink.py runs the
# replay through it.
set -euo pipefail

FLINK_VERSION="${FLINK_VERSION:-1.19}"
BEAM_JAVA_VERSION="${BEAM_JAVA_VERSION:-2.62.0}"
# The job server logs through SLF4J; without a binding it says nothing at all,
# not even why a job failed. Must match the slf4j-api in the runner's tree.
SLF4J_VERSION="${SLF4J_VERSION:-1.7.30}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/game-sessions/flink-job-server"

name="beam-runners-flink-${FLINK_VERSION}-job-server-${BEAM_JAVA_VERSION}"
target="$CACHE_DIR/$name/$name.jar"

source "$(dirname "${BASH_SOURCE[0]}")/launcher_jar.sh"
begin_fetch fetch_flink_job_server "$target"
staging="$work/$name"
mkdir -p "$staging"

echo "fetch_flink_job_server: fetching the Flink $FLINK_VERSION job server of Beam $BEAM_JAVA_VERSION into $CACHE_DIR" >&2

fetch_shaded_jar() {
    mvn -B -q dependency:copy \
        -Dartifact="org.apache.beam:beam-runners-flink-${FLINK_VERSION}-job-server:${BEAM_JAVA_VERSION}:jar" \
        -DoutputDirectory="$staging" >"$work/shaded.log" 2>&1
}

assemble_from_library() {
    copy_dependencies "$work" "$staging/lib" \
        "$(maven_dependency org.apache.beam "beam-runners-flink-${FLINK_VERSION}" "$BEAM_JAVA_VERSION")" \
        "$(maven_dependency org.slf4j slf4j-jdk14 "$SLF4J_VERSION")" || return 1
    write_launcher_jar "$staging/$name.jar" "$work"
}

if ! fetch_shaded_jar; then
    echo "fetch_flink_job_server: no shaded job-server jar for these versions; assembling it from beam-runners-flink-${FLINK_VERSION}" >&2
    if ! assemble_from_library; then
        echo "fetch_flink_job_server: Maven could not resolve beam-runners-flink-${FLINK_VERSION}:${BEAM_JAVA_VERSION}:" >&2
        grep -m3 -E 'Could not|Failed to' "$work/assemble.log" >&2
        echo "fetch_flink_job_server: set FLINK_VERSION / BEAM_JAVA_VERSION to a pair Maven Central serves" >&2
        exit 1
    fi
fi

rm -rf "$CACHE_DIR/$name"
mv "$staging" "$CACHE_DIR/$name"
echo "$target"
