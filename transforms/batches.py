"""Batches: many records travelling as one Beam element.

Per-element overhead is what dominates a Python Beam job, so parsed events
and a bucket's session results move between DoFns as lists. Beam samples the
size of the elements a DoFn emits by encoding them (for its metrics), and a
pickled list of thousands of namedtuples costs more to encode than to
process; a Batch's coder estimates its size from its length instead.
"""
import pickle

import apache_beam as beam
from apache_beam.coders.coder_impl import CallbackCoderImpl
from apache_beam.coders.coders import FastCoder

# Bytes per record assumed by the size estimate (a parsed event is about 200).
NOMINAL_RECORD_BYTES = 200


class Batch(list):
    """A list of records (e.g. (arrival, Event) or (result, delay))."""


class BatchCoder(FastCoder):
    def _create_impl(self):
        return CallbackCoderImpl(
            lambda batch: pickle.dumps(batch, pickle.HIGHEST_PROTOCOL), pickle.loads,
            lambda batch: NOMINAL_RECORD_BYTES * len(batch))

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return Batch


beam.coders.registry.register_coder(Batch, BatchCoder)
