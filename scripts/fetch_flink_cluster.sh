#!/usr/bin/env bash
# Fetches everything a local Flink session cluster running the live job needs
# from Maven Central into a cache outside git, builds the project's own Pub/Sub
# read (scripts/build_pubsub_source.sh), and prints the path of a launcher jar
# whose manifest puts the whole set on the classpath:
#
#   scripts/fetch_flink_cluster.sh        # prints .../flink-cluster-1.19.0-beam-2.62.0/beam-flink-live-HASH.jar
#
# The jars from Maven Central are fetched once (lib/); the launcher is written
# once per build of the Pub/Sub read (HASH: its sources'), whose jar it names.
#
# One classpath (lib/ beside the launcher jar) serves every JVM of the cluster:
#  - Flink 1.19.0 itself (flink-runtime, flink-clients, flink-streaming-java
#    through Beam's runner, plus flink-runtime-web for the REST jar upload):
#    the JobManager (StandaloneSessionClusterEntrypoint) and TaskManagers
#    (TaskManagerRunner); `flink-dist` is not served by the registry;
#  - Beam's Flink runner 2.62.0: its job server (the launcher's Main-Class,
#    FlinkJobServerDriver) and the Beam operators the TaskManagers execute;
#  - beam-sdks-java-io-google-cloud-platform + beam-sdks-java-expansion-service
#    2.62.0: the expansion service that expands the cross-language Pub/Sub
#    read (`java -cp JAR org.apache.beam.sdk.expansion.service.ExpansionService`),
#    and the Pub/Sub client classes, which run inside the TaskManagers
#    (EMBEDDED Java environment);
#  - the project's Pub/Sub read (java/pubsub-source), which the expansion
#    service expands, the job server translates and the TaskManagers run;
#  - jamm 0.4.0: the object sizer Beam's Java harness loads, missing from the
#    runner's own tree;
#  - slf4j-jdk14: a logging binding, or the JVMs say nothing at all.
#
# The same Beam Java version as scripts/fetch_flink_job_server.sh (2.62.0, the
# newest with a complete tree on the registry; see that script).
set -euo pipefail

FLINK_VERSION="${FLINK_VERSION:-1.19}"
FLINK_PATCH_VERSION="${FLINK_PATCH_VERSION:-1.19.0}"
BEAM_JAVA_VERSION="${BEAM_JAVA_VERSION:-2.62.0}"
SLF4J_VERSION="${SLF4J_VERSION:-1.7.30}"
JAMM_VERSION="${JAMM_VERSION:-0.4.0}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/game-sessions"

name="flink-cluster-${FLINK_PATCH_VERSION}-beam-${BEAM_JAVA_VERSION}"
cluster_dir="$CACHE_DIR/$name"
source_jar="$(BEAM_JAVA_VERSION="$BEAM_JAVA_VERSION" "$(dirname "${BASH_SOURCE[0]}")/build_pubsub_source.sh")"
source_build="$(basename "$(dirname "$source_jar")")"
target="$cluster_dir/beam-flink-live-${source_build##*-}.jar"

source "$(dirname "${BASH_SOURCE[0]}")/launcher_jar.sh"
begin_fetch fetch_flink_cluster "$target"

if [[ ! -d "$cluster_dir/lib" ]]; then
    staging="$work/$name"
    mkdir -p "$staging/lib"
    echo "fetch_flink_cluster: fetching Flink $FLINK_PATCH_VERSION and Beam $BEAM_JAVA_VERSION jars into $cluster_dir" >&2
    if ! copy_dependencies "$work" "$staging/lib" \
            "$(maven_dependency org.apache.beam "beam-runners-flink-${FLINK_VERSION}" "$BEAM_JAVA_VERSION")" \
            "$(maven_dependency org.apache.beam beam-sdks-java-io-google-cloud-platform "$BEAM_JAVA_VERSION")" \
            "$(maven_dependency org.apache.beam beam-sdks-java-expansion-service "$BEAM_JAVA_VERSION")" \
            "$(maven_dependency org.apache.flink flink-runtime-web "$FLINK_PATCH_VERSION")" \
            "$(maven_dependency org.apache.flink flink-runtime "$FLINK_PATCH_VERSION")" \
            "$(maven_dependency org.apache.flink flink-clients "$FLINK_PATCH_VERSION")" \
            "$(maven_dependency org.apache.flink flink-streaming-java "$FLINK_PATCH_VERSION")" \
            "$(maven_dependency com.github.jbellis jamm "$JAMM_VERSION")" \
            "$(maven_dependency org.slf4j slf4j-jdk14 "$SLF4J_VERSION")"; then
        echo "fetch_flink_cluster: Maven could not resolve the cluster's jars:" >&2
        grep -m5 -E 'Could not|Failed to|ERROR' "$work/assemble.log" >&2 || tail -5 "$work/assemble.log" >&2
        exit 1
    fi
    # Only one SLF4J binding: whatever else the tree brings would be picked at random.
    find "$staging/lib" -name 'slf4j-*.jar' ! -name "slf4j-api-*" ! -name "slf4j-jdk14-*" -delete
    find "$staging/lib" -name 'log4j-slf4j*.jar' -delete
    rm -rf "$cluster_dir"
    mv "$staging" "$cluster_dir"
fi
# Written beside lib/ and moved into place: the manifest's entries are relative to it.
write_launcher_jar "$cluster_dir/.$(basename "$target").tmp" "$work" "../$source_build/$(basename "$source_jar")"
mv "$cluster_dir/.$(basename "$target").tmp" "$target"
echo "$target"
