"""Garbage-collector and allocator settings of a local replay's processes.

A replay allocates a few container objects per event (tuples of a segment's
rows, Events, lists), nearly all freed by reference counting, never in
cycles. CPython's default collector (a young collection every 700 net
allocations, a full one when the old generation grew by a quarter) kept
scanning them, and every full collection also walked the ~1M objects of
Beam's own modules: py-spy and gc.callbacks measured ~8 s of collection in a
~37 s one-process replay of 1M events (8 us per event).

`tune_gc` (called from the replay DoFns' setup, so inside every worker
process, and by the fork server of pipelines/forked_workers.py before it forks
workers, which then inherit the result) freezes what exists once the worker is set up (modules, Beam's
runtime: long-lived, never garbage) out of every future collection, and
collects young objects every 100k net allocations instead of 700. This is
safe: collection still runs, only less often (cyclic garbage waits at most
100k allocations, a few MB, before the young collection finds it), and
objects frozen at setup are still freed by reference counting; only a cycle
among them would outlive its use, and module-level objects live as long as
the process anyway. The job's own process tunes itself the same way before
it forks the fork server (pipelines/game_sessions.py): it builds and
supervises the run with every module loaded, and a full collection there
walked them all too.

`limit_malloc_arenas`: glibc gives every thread that allocates a malloc
arena of its own (up to 8 per core) and keeps what the thread freed there.
The job's process runs gRPC's threads and one thread per bundle, and each
stage left another arena of freed buffers resident: measured at 4M events,
peak RSS summed over the job's processes 898 MB with glibc's default, 841
with 2 arenas, 816 with 1 (wall time within the run-to-run spread).
"""
import ctypes
import gc
import os

YOUNG_THRESHOLD = 100_000
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h
_tuned_in = None  # the process that tuned itself; a forked child tunes again


def tune_gc() -> None:
    """Once per process; later calls do nothing. A child forked after the
    call collects and freezes what it added since (little)."""
    global _tuned_in
    if _tuned_in == os.getpid():
        return
    _tuned_in = os.getpid()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, max(older, 20), oldest)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Caps glibc's malloc arenas for this process and the ones it forks
    later. False where the C library has no such setting (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return mallopt(_M_ARENA_MAX, arenas) == 1
