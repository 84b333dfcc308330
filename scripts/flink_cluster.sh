#!/usr/bin/env bash
# A local multi-process Flink 1.19 session cluster for the live job: one
# JobManager, two TaskManagers and Beam's Java expansion service (for the
# cross-language Pub/Sub read), each its own java process, all from the jars
# scripts/fetch_flink_cluster.sh caches (Maven Central; no Flink distribution)
# and the project's Pub/Sub read it builds (java/pubsub-source).
#
#   scripts/flink_cluster.sh start            # JM + 2 TMs + expansion service; waits until 2 slots are up
#   scripts/flink_cluster.sh status           # processes, TaskManagers, jobs
#   scripts/flink_cluster.sh exec CMD ARGS... # run CMD inside the cluster's network (see below)
#   scripts/flink_cluster.sh kill-tm N        # SIGKILL TaskManager N (1 or 2) and its process group
#   scripts/flink_cluster.sh start-tm N       # start TaskManager N again
#   scripts/flink_cluster.sh stop             # everything above, gone
#
# Settings (environment):
#   FLINK_RUN_DIR      run dir (generated flink-conf.yaml, logs, pids, checkpoints);
#                      default /tmp/game-sessions-flink (outside git)
#   FLINK_REST_PORT    REST/UI port, default 8081 (what --flink_master names)
#   EXPANSION_PORT     Beam expansion service port, default 8097
#   CHECKPOINT_INTERVAL_MS  default 5000; checkpoints go to $FLINK_RUN_DIR/checkpoints
#   BUFFER_TIMEOUT_MS  default 10: how long a network buffer between tasks may wait before it
#                      is sent (Flink's default 100); a job setting, written to
#                      $FLINK_RUN_DIR/client-conf/flink-conf.yaml for the job server
#                      (--flink_conf_dir; tools/flink_live.py passes it)
#   PUBSUB_EMPTY_PULL_PAUSE_MS  the Pub/Sub read's pause after an empty pull (default 100)
#   FLINK_TASKMANAGERS default 2; FLINK_TM_SLOTS default 1 (slots per TaskManager)
#   PYTHON_VENV        the venv whose `python` runs the SDK workers; default ./.venv
#   PUBSUB_EMULATOR_HOST  where the SDK workers' Pub/Sub clients publish; default
#                      127.0.0.1:8085, the emulator `make flink-live` starts in the
#                      namespace (which has no route to Google's Pub/Sub anyway)
#
# The network: Flink itself binds 127.0.0.1 only (jobmanager.bind-host,
# rest.bind-address, taskmanager.bind-host). But the gRPC servers Beam opens
# inside every TaskManager for the Python SDK workers (control, data, state,
# logging, artifacts), Beam's job server and the expansion service bind every
# interface (Beam's ServerFactory binds the port only). So the whole cluster
# lives in a private network namespace (plus PID namespace) that has nothing
# but a loopback interface, like tests/test_flink.py: nothing in it is
# reachable from outside this machine, and its ports cannot collide with
# anything else on the machine. `exec` runs a command in that namespace (the
# Pub/Sub emulator, the job submission, curl on the REST port). `stop` ends
# the namespace's first process, which makes the kernel end every other one.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${FLINK_RUN_DIR:-/tmp/game-sessions-flink}"
REST_PORT="${FLINK_REST_PORT:-8081}"
EXPANSION_PORT="${EXPANSION_PORT:-8097}"
CHECKPOINT_INTERVAL_MS="${CHECKPOINT_INTERVAL_MS:-5000}"
BUFFER_TIMEOUT_MS="${BUFFER_TIMEOUT_MS:-10}"
TASKMANAGERS="${FLINK_TASKMANAGERS:-2}"
TM_SLOTS="${FLINK_TM_SLOTS:-1}"
PYTHON_VENV="${PYTHON_VENV:-$REPO/.venv}"
EMULATOR_HOST="${PUBSUB_EMULATOR_HOST:-127.0.0.1:8085}"
CONF="$RUN_DIR/conf"
LOGS="$RUN_DIR/log"
PIDS="$RUN_DIR/pids"

# Java 17: Flink serializes state through reflection into JDK classes; without
# these every checkpoint fails (the list Flink's own flink-conf.yaml ships).
JAVA_OPENS=(
    --add-exports=java.base/sun.net.util=ALL-UNNAMED
    --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED
    --add-opens=java.base/java.lang=ALL-UNNAMED
    --add-opens=java.base/java.net=ALL-UNNAMED
    --add-opens=java.base/java.io=ALL-UNNAMED
    --add-opens=java.base/java.nio=ALL-UNNAMED
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens=java.base/java.text=ALL-UNNAMED
    --add-opens=java.base/java.time=ALL-UNNAMED
    --add-opens=java.base/java.util=ALL-UNNAMED
    --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
    --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
    --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED
)

die() { echo "flink_cluster: $*" >&2; exit 1; }

ns_pid() { cat "$PIDS/netns" 2>/dev/null || true; }

ns_alive() {
    local pid
    pid="$(ns_pid)"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# Runs "$@" inside the namespace (foreground).
in_ns() {
    ns_alive || die "the cluster is not running (scripts/flink_cluster.sh start)"
    nsenter --target "$(ns_pid)" --user --net --pid --preserve-credentials -- "$@"
}

# launch NAME CMD...: in the namespace, in the background, in a process group
# of its own whose id (a host pid) goes to $PIDS/NAME; output to $LOGS/NAME.log.
launch() {
    local name="$1"
    shift
    # From the run dir: Beam's boot program writes pipeline_options.json into its working dir.
    (cd "$RUN_DIR" && exec setsid nsenter --target "$(ns_pid)" --user --net --pid --preserve-credentials -- "$@" \
        >>"$LOGS/$name.log" 2>&1 </dev/null) &
    echo $! >"$PIDS/$name"
}

alive() { [[ -s "$PIDS/$1" ]] && kill -0 "$(cat "$PIDS/$1")" 2>/dev/null; }

# Resolved once per invocation (every JVM shares it): call `classpath
# >/dev/null` in this shell first, so that the $(classpath) subshells find it.
# The launcher jar the job server runs: its manifest names every jar (the
# fetched lib/ and the project's Pub/Sub read), and Java follows it on -cp too.
CLASSPATH_CACHE=""
classpath() {
    if [[ -z "$CLASSPATH_CACHE" ]]; then
        CLASSPATH_CACHE="$("$REPO/scripts/fetch_flink_cluster.sh")"
    fi
    echo "$CLASSPATH_CACHE"
}

write_conf() {
    mkdir -p "$CONF" "$LOGS" "$PIDS" "$RUN_DIR/checkpoints" "$RUN_DIR/savepoints" "$RUN_DIR/tmp"
    cat >"$CONF/flink-conf.yaml" <<EOF
# Generated by scripts/flink_cluster.sh; rewritten on every start.
jobmanager.rpc.address: 127.0.0.1
jobmanager.bind-host: 127.0.0.1
jobmanager.rpc.port: 6123
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $REST_PORT
blob.server.port: 6124
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.numberOfTaskSlots: $TM_SLOTS
parallelism.default: 2
jobmanager.memory.process.size: 1024m
taskmanager.memory.process.size: 1280m
taskmanager.memory.managed.fraction: 0.05
# Checkpoints: every $CHECKPOINT_INTERVAL_MS ms, heap state written to files under the run dir,
# kept when the job is cancelled (so a job can be resubmitted from the last one).
state.backend.type: hashmap
execution.checkpointing.storage: filesystem
state.checkpoints.dir: file://$RUN_DIR/checkpoints
state.savepoints.dir: file://$RUN_DIR/savepoints
execution.checkpointing.interval: ${CHECKPOINT_INTERVAL_MS}ms
execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
state.checkpoints.num-retained: 3
# A lost TaskManager restarts the job from the last checkpoint, as often as it takes.
restart-strategy.type: fixed-delay
restart-strategy.fixed-delay.attempts: 1000
restart-strategy.fixed-delay.delay: 2s
# Notice a dead TaskManager within seconds rather than Flink's default 50 s.
heartbeat.interval: 2000
heartbeat.timeout: 10000
# Beam's classes are on every process's classpath; the job jar Beam stages adds nothing.
classloader.resolve-order: parent-first
io.tmp.dirs: $RUN_DIR/tmp
web.tmpdir: $RUN_DIR/tmp
web.upload.dir: $RUN_DIR/tmp
EOF
    # What the job server reads when it builds a job (--flink_conf_dir): job settings only.
    mkdir -p "$RUN_DIR/client-conf"
    cat >"$RUN_DIR/client-conf/flink-conf.yaml" <<EOF
# Generated by scripts/flink_cluster.sh; rewritten on every start. The job server
# reads it when it builds the job (--flink_conf_dir=$RUN_DIR/client-conf).
# A network buffer between two tasks (records and watermarks alike) leaves when
# full or after this long: Flink's default 100 ms is added at every shuffle.
execution.buffer-timeout.interval: ${BUFFER_TIMEOUT_MS}ms
EOF
}

# BashJavaUtils prints the JVM memory flags and the matching dynamic
# properties, as Flink's own jobmanager.sh/taskmanager.sh use them.
resource_params() {
    local command="$1" out
    out="$(java -cp "$(classpath)" org.apache.flink.runtime.util.bash.BashJavaUtils "$command" \
        --configDir "$CONF" 2>>"$LOGS/bash-java-utils.log")" || die "BashJavaUtils $command failed: see $LOGS/bash-java-utils.log"
    grep '^BASH_JAVA_UTILS_EXEC_RESULT:' <<<"$out" | sed 's/^BASH_JAVA_UTILS_EXEC_RESULT://'
}

start_jm() {
    local params jvm dynamic
    params="$(resource_params GET_JM_RESOURCE_PARAMS)"
    jvm="$(sed -n 1p <<<"$params")"
    dynamic="$(sed -n 2p <<<"$params")"
    # shellcheck disable=SC2086  # word splitting of the generated flags is intended
    launch jobmanager java $jvm "${JAVA_OPENS[@]}" -Dlog.file="$LOGS/jobmanager.log" -cp "$(classpath)" \
        org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint --configDir "$CONF" $dynamic
}

start_tm() {
    local n="$1" params jvm dynamic
    params="$(resource_params GET_TM_RESOURCE_PARAMS)"
    jvm="$(sed -n 1p <<<"$params")"
    dynamic="$(sed -n 2p <<<"$params")"
    # The SDK workers (scripts/fetch_beam_boot.sh) find this venv's python first on PATH
    # and run in it rather than in a fresh venv per worker; they inherit this environment,
    # PUBSUB_EMULATOR_HOST included (Python's WriteToPubSub runs in them), and import
    # the job's modules from this checkout (PYTHONPATH), whatever the venv's editable
    # install points at.
    # shellcheck disable=SC2086
    launch "taskmanager-$n" env PATH="$PYTHON_VENV/bin:$PATH" RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1 \
        PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" \
        PUBSUB_EMULATOR_HOST="$EMULATOR_HOST" \
        java $jvm "${JAVA_OPENS[@]}" ${PUBSUB_EMPTY_PULL_PAUSE_MS:+-Dgamesessions.pubsub.emptyPullPauseMs=$PUBSUB_EMPTY_PULL_PAUSE_MS} \
        -cp "$(classpath)" org.apache.flink.runtime.taskexecutor.TaskManagerRunner \
        --configDir "$CONF" $dynamic -Dtaskmanager.resource-id="taskmanager-$n" \
        -Dtaskmanager.tmp.dirs="$RUN_DIR/tmp"
}

start_expansion_service() {
    # EMBEDDED: the expanded Java transforms run inside the TaskManagers' JVMs.
    # use_deprecated_read: the project's Pub/Sub read (registered with the
    # service through its jar's META-INF/services) as Beam's UnboundedSource,
    # checkpointed by Flink's source wrapper; the splittable-DoFn wrapper
    # around a source makes checkpoint state grow without bound on Flink
    # (apache/beam#27648).
    launch expansion-service java "${JAVA_OPENS[@]}" -cp "$(classpath)" \
        org.apache.beam.sdk.expansion.service.ExpansionService "$EXPANSION_PORT" \
        --defaultEnvironmentType=EMBEDDED --experiments=use_deprecated_read
}

rest() { in_ns "$PYTHON_VENV/bin/python" -c "
import sys, urllib.request
print(urllib.request.urlopen('http://127.0.0.1:$REST_PORT' + sys.argv[1], timeout=3).read().decode())" "$1"; }

registered_slots() {
    rest /taskmanagers 2>/dev/null | "$PYTHON_VENV/bin/python" -c "
import json, sys
print(sum(tm['slotsNumber'] for tm in json.load(sys.stdin)['taskmanagers']))" 2>/dev/null || echo 0
}

port_open() {
    in_ns "$PYTHON_VENV/bin/python" -c "
import socket, sys
socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=1).close()" "$1" 2>/dev/null
}

wait_for_slots() {
    local want="$1" deadline=$((SECONDS + ${2:-90}))
    while ((SECONDS < deadline)); do
        [[ "$(registered_slots)" -ge "$want" ]] && return 0
        alive jobmanager || die "the JobManager exited; see $LOGS/jobmanager.log"
        sleep 1
    done
    die "fewer than $want task slots registered within ${2:-90} s; see $LOGS/"
}

cmd_start() {
    if ns_alive; then
        echo "flink_cluster: already running (run dir $RUN_DIR)" >&2
        return 0
    fi
    command -v unshare >/dev/null && command -v nsenter >/dev/null || die "needs unshare and nsenter (util-linux)"
    [[ -x "$PYTHON_VENV/bin/python" ]] || die "no venv at $PYTHON_VENV (make venv)"
    classpath >/dev/null
    rm -rf "$PIDS" "$LOGS"
    write_conf
    # The namespace's first process: `sleep` as PID 1 of a new PID namespace,
    # with a network namespace holding only loopback. --kill-child: if the
    # unshare process dies, so does it (and with it the whole namespace).
    unshare --user --map-root-user --net --pid --fork --kill-child \
        sh -c 'ip link set lo up && exec sleep infinity' >>"$LOGS/netns.log" 2>&1 </dev/null &
    local holder=$! child="" i
    for i in $(seq 50); do
        child="$(cat /proc/$holder/task/$holder/children 2>/dev/null | tr -d ' ')"
        [[ -n "$child" ]] && break
        sleep 0.1
    done
    [[ -n "$child" ]] || die "could not create the private network namespace; see $LOGS/netns.log"
    echo "$holder" >"$PIDS/unshare"
    echo "$child" >"$PIDS/netns"
    sleep 0.3  # `ip link set lo up` before anything binds

    start_jm
    for i in $(seq "$TASKMANAGERS"); do start_tm "$i"; done
    start_expansion_service
    wait_for_slots $((TASKMANAGERS * TM_SLOTS)) 120
    local deadline=$((SECONDS + 60))
    until port_open "$EXPANSION_PORT"; do
        ((SECONDS < deadline)) || die "the expansion service did not listen on $EXPANSION_PORT; see $LOGS/expansion-service.log"
        sleep 1
    done
    echo "flink_cluster: up: JobManager REST 127.0.0.1:$REST_PORT, $TASKMANAGERS TaskManagers x $TM_SLOTS slot(s), expansion service 127.0.0.1:$EXPANSION_PORT (inside the cluster's network namespace; scripts/flink_cluster.sh exec ...); run dir $RUN_DIR"
}

cmd_stop() {
    local name
    # Kill the namespace's PID 1 first: the kernel then kills every process
    # inside (Python SDK workers included); then the process groups.
    if [[ -s "$PIDS/netns" ]]; then kill -KILL "$(cat "$PIDS/netns")" 2>/dev/null || true; fi
    if [[ -d "$PIDS" ]]; then
        for name in "$PIDS"/*; do
            [[ -s "$name" ]] || continue
            case "$(basename "$name")" in
                netns | unshare) kill -KILL "$(cat "$name")" 2>/dev/null || true ;;
                *) kill -KILL -- "-$(cat "$name")" 2>/dev/null || true ;;
            esac
            rm -f "$name"
        done
    fi
    echo "flink_cluster: stopped (run dir $RUN_DIR kept: logs, checkpoints)"
}

cmd_status() {
    ns_alive || { echo "flink_cluster: not running"; return 1; }
    local name
    for name in "$PIDS"/*; do
        [[ "$(basename "$name")" =~ ^(netns|unshare)$ ]] && continue
        if alive "$(basename "$name")"; then echo "$(basename "$name"): running (pgid $(cat "$name"))"
        else echo "$(basename "$name"): not running"; fi
    done
    echo "task slots registered: $(registered_slots)"
    rest /jobs/overview | "$PYTHON_VENV/bin/python" -c "
import json, sys
for job in json.load(sys.stdin)['jobs']:
    print(f\"job {job['jid']} {job['name']}: {job['state']}\")" || true
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    exec) shift; in_ns "$@" ;;
    kill-tm)
        [[ -n "${2:-}" ]] || die "kill-tm needs a TaskManager number"
        alive "taskmanager-$2" || die "TaskManager $2 is not running"
        kill -KILL -- "-$(cat "$PIDS/taskmanager-$2")"
        echo "flink_cluster: TaskManager $2 killed (SIGKILL)" ;;
    start-tm)
        [[ -n "${2:-}" ]] || die "start-tm needs a TaskManager number"
        alive "taskmanager-$2" && die "TaskManager $2 is already running"
        classpath >/dev/null
        start_tm "$2"
        echo "flink_cluster: TaskManager $2 started" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
