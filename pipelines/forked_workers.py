"""A local replay's worker processes, forked from the job instead of started
afresh.

On the DirectRunner a replay runs on one SDK worker process per core
(`multi_processing`). Beam starts each worker as a new interpreter
(`python -m apache_beam.runners.worker.sdk_worker_main`) that imports Beam and
the job again before it does any work: 1.2 s of CPU per worker, measured, on
both cores at once, about a tenth of a 1M-event replay's wall time. Here the
workers are forks of a fork server, itself forked from the job once every
module is imported and before any thread or gRPC channel exists (so forking
is safe): a worker is running a few milliseconds after Beam asks for it.

Beam still starts and supervises each worker through a command line (a
`SubprocessSDKEnvironment`): that command is `worker_launcher.py`, a script of
the standard library only (no site packages: ~15 ms), which hands its
environment (the runner's control and logging addresses) to the fork server
and lives exactly as long as the worker it gets: the launcher exits with the
worker's exit code, and a worker whose launcher dies (Beam kills a worker by
killing its launcher) sees the connection drop and exits too.

The job runs on Beam's FnApiRunner directly, which is what the DirectRunner
picks for a batch job it can run itself. Asking the DirectRunner would first
try Beam's Prism runner, which downloads a binary from GitHub on first use: a
different runner depending on whether the machine is online.

Linux only (fork without exec is unsafe on macOS); elsewhere the replay keeps
Beam's own worker processes.
"""
import json
import logging
import os
import select
import shlex
import socket
import sys
import tempfile
import threading
import traceback
from typing import Optional

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.transforms.environments import SubprocessSDKEnvironment

from pipelines import worker_launcher
from pipelines.worker_launcher import WORKER_ENVIRONMENT
from transforms.worker import tune_gc

LAUNCHER = os.path.abspath(worker_launcher.__file__)
_REAP_SECONDS = 1.0


def can_fork_workers(options: PipelineOptions) -> bool:
    """A replay on the DirectRunner's worker processes, from a process that
    can fork safely (Linux, `_fork_is_safe`)."""
    standard, direct = options.view_as(StandardOptions), options.view_as(DirectOptions)
    return (not standard.streaming and (standard.runner or "DirectRunner") == "DirectRunner"
            and direct.direct_running_mode == "multi_processing" and (direct.direct_num_workers or 0) > 1
            and sys.platform.startswith("linux") and _fork_is_safe())


# Threads gRPC's core starts once a channel or server exists.
_GRPC_THREADS = ("grpc_global_tim", "event_engine")


def _fork_is_safe() -> bool:
    """No Python thread but this one and gRPC not started: a lock another
    thread holds at the fork stays locked in the fork forever, and gRPC does
    not survive a fork once started. True in a new `python -m` job; false in a
    process that ran a job before (a test session), which keeps Beam's worker
    threads. Native threads of numpy and jemalloc are fine: both libraries
    prepare for fork."""
    if threading.active_count() > 1:
        return False
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                if f.read().strip().startswith(_GRPC_THREADS):
                    return False
        except OSError:  # the thread ended meanwhile
            continue
    return True


class ForkServer:
    """Forks SDK workers on request, from a process forked off this one.

    A context manager: entering forks the server (so enter it before this
    process starts a thread), leaving stops it once its workers have ended
    (Beam stops its workers before a run returns)."""

    def __init__(self):
        self._folder: Optional[str] = None
        self._pid: Optional[int] = None
        self._stop: Optional[int] = None

    @property
    def address(self) -> str:
        """Where launchers ask for workers: a Unix socket."""
        return os.path.join(self._folder, "workers.sock")

    @property
    def pid(self) -> int:
        """The server's process: every worker's parent."""
        return self._pid

    def __enter__(self) -> "ForkServer":
        self._folder = tempfile.mkdtemp(prefix="game-sessions-workers-")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)
        listener.listen()
        stop_read, self._stop = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        self._pid = os.fork()
        if self._pid == 0:
            os.close(self._stop)
            _serve(listener, stop_read)  # never returns
        listener.close()
        os.close(stop_read)
        return self

    def __exit__(self, *_) -> None:
        os.close(self._stop)  # the server sees end of file and exits
        os.waitpid(self._pid, 0)
        os.remove(self.address)
        os.rmdir(self._folder)

    def runner(self, options: PipelineOptions) -> fn_runner.FnApiRunner:
        """Beam's FnApiRunner with this server's workers, provisioned with the
        job's options as the DirectRunner would."""
        command = " ".join(shlex.quote(part) for part in (sys.executable, "-I", "-S", LAUNCHER, self.address))
        runner = fn_runner.FnApiRunner(
            default_environment=SubprocessSDKEnvironment.from_command_string(command),
            provision_info=fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(
                pipeline_options=JobServiceHandle.encode_pipeline_options(options.get_all_options()))))
        # FnApiRunner swaps the environment for its own command when the mode
        # is multi_processing, and warns about in_memory with several workers;
        # with no mode it takes the environment it was given and
        # --direct_num_workers processes of it.
        options.view_as(DirectOptions).direct_running_mode = None
        return runner


def _serve(listener: socket.socket, stop: int) -> None:
    """The fork server's loop, until the job closes `stop`."""
    try:
        # Imported here, in the fork server, while the job builds its graph.
        from apache_beam.runners.worker import sdk_worker_main
        # Collected and frozen once here rather than in each worker's first
        # setup (~0.2 s each): what every worker inherits is then never
        # scanned again, nor copied on write by a collection.
        tune_gc()
        while True:
            ready, _, _ = select.select([listener, stop], [], [], _REAP_SECONDS)
            _reap(block=False)
            if stop in ready:
                break
            if listener in ready:
                connection, _ = listener.accept()
                if os.fork() == 0:
                    listener.close()
                    os.close(stop)
                    _run_worker(connection, sdk_worker_main)  # never returns
                connection.close()
        # Beam has stopped its workers (their launchers are gone) before the
        # job stops this server.
        _reap(block=True)
    except Exception:  # pylint: disable=broad-except
        # Said here: the job only sees its workers' launchers fail to connect.
        traceback.print_exc()
    finally:
        os._exit(0)


def _reap(block: bool) -> None:
    """Waits for ended workers: the kernel then adds their CPU time to this
    server's children, and so to the job's (what `time` and tools/bench.py
    report)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _run_worker(connection: socket.socket, sdk_worker_main) -> None:
    """One SDK worker, in the environment its launcher sent; its exit code
    goes back to the launcher."""
    code = 1
    try:
        request = connection.makefile("rb").readline()
        environment = json.loads(request)
        os.environ.update({name: environment[name] for name in WORKER_ENVIRONMENT if name in environment})
        # As in a new worker process, its log records go to the job through
        # Beam's logging service only, not also to the job's own handlers.
        logging.getLogger().handlers.clear()
        _exit_with_launcher(connection)
        sdk_worker_main.main([])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
    finally:
        try:
            connection.sendall(b"%d\n" % code)
        except OSError:
            pass
        sys.stdout.flush()
        sys.stderr.flush()
        # The worker's objects die with it: no interpreter shutdown, and no
        # atexit handlers inherited from the job.
        os._exit(code)


def _exit_with_launcher(connection: socket.socket) -> None:
    """The launcher never writes after its request: end of file means it died."""
    def watch():
        try:
            connection.recv(1)
        except OSError:
            pass
        os._exit(1)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()
