"""Garbage-collector settings of a replay worker process.

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
the process anyway.
"""
import gc

YOUNG_THRESHOLD = 100_000
_tuned = False


def tune_gc() -> None:
    """Once per process; later calls do nothing."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, max(older, 20), oldest)
