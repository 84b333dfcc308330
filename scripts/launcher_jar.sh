# Sourced by the fetch scripts: resolves Maven artifacts and their dependency
# trees into a folder, and writes a launcher jar whose manifest puts that
# folder on the classpath (`java -jar` then starts Beam's Flink job server).

# begin_fetch SCRIPT TARGET: prints TARGET and exits when a previous fetch
# cached it; else checks for Maven and a JDK and makes $work, a scratch
# folder in $CACHE_DIR removed on exit (results are built there and moved into
# place, so an interrupted fetch leaves nothing half-made to trust).
begin_fetch() {
    local script="$1" target="$2" tool
    if [[ -s "$target" ]]; then
        echo "$target"
        exit 0
    fi
    for tool in mvn java jar; do
        command -v "$tool" >/dev/null || {
            echo "$script: '$tool' is not installed (needs a JDK 11+ and Maven)" >&2
            exit 1
        }
    done
    mkdir -p "$CACHE_DIR"
    work="$(mktemp -d "$CACHE_DIR/.fetch-XXXXXX")"
    trap 'rm -rf "$work"' EXIT
}

# maven_dependency GROUP ARTIFACT VERSION: one <dependency> element.
maven_dependency() {
    echo "<dependency><groupId>$1</groupId><artifactId>$2</artifactId><version>$3</version></dependency>"
}

# copy_dependencies WORK LIB_DIR DEPENDENCY...: every jar the dependencies
# need at runtime into LIB_DIR; Maven's log in WORK/assemble.log. Fails as
# Maven does.
copy_dependencies() {
    local work="$1" lib_dir="$2"
    shift 2
    cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>game-sessions</groupId>
  <artifactId>launcher</artifactId>
  <version>1</version>
  <dependencies>
    $*
  </dependencies>
</project>
POM
    mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$lib_dir" >"$work/assemble.log" 2>&1
}

# write_launcher_jar JAR WORK [ENTRY...]: a jar that starts FlinkJobServerDriver
# with the jars of lib/ beside it, and the ENTRYs (paths relative to JAR's
# folder), on its classpath.
write_launcher_jar() {
    local jar="$1" work="$2"
    shift 2
    # Class-Path entries are relative to the launcher jar. One entry per
    # continuation line (it starts with a space; the second space separates
    # entries) keeps every line under the manifest reader's length limit.
    {
        echo "Main-Class: org.apache.beam.runners.flink.FlinkJobServerDriver"
        echo "Class-Path: "
        for lib in "$(dirname "$jar")"/lib/*.jar; do
            echo "  lib/$(basename "$lib")"
        done
        for entry in "$@"; do
            echo "  $entry"
        done
    } >"$work/MANIFEST.MF"
    jar --create --file "$jar" --manifest "$work/MANIFEST.MF"
}
