"""Lets a live job on the Python DirectRunner ride out a Pub/Sub outage.

The DirectRunner pulls Pub/Sub itself (Dataflow replaces these transforms with
its own service-side I/O) and fails the whole pipeline when a pull or a
publish fails a few times in a row: a 15 s outage, or a subscription that
comes back a moment after its server, would end a local job. Applied only to
DirectRunner jobs, this makes the read wait and try again (a failed pull
returns no messages, so nothing is lost: Pub/Sub keeps unacknowledged
messages) and makes a publish retry until it goes through. A wait is logged
and counted (`pubsub_outage_retries`).
"""
import logging
import time

from apache_beam.metrics import Metrics

from transforms.counters import NAMESPACE

_LOGGER = logging.getLogger(__name__)
_MAX_WAIT_SECONDS = 10 * 60
_PATCHED = "_game_sessions_survives_outages"


def _transient_errors():
    from google.api_core import exceptions
    return (exceptions.GoogleAPICallError, exceptions.RetryError, ConnectionError)


def survive_pubsub_outages() -> None:
    """Idempotent; affects this process's DirectRunner Pub/Sub read and write."""
    from apache_beam.io.gcp import pubsub
    from apache_beam.runners.direct import transform_evaluator

    reader = transform_evaluator._PubSubReadEvaluator
    if not getattr(reader._read_from_pubsub, _PATCHED, False):
        reader._read_from_pubsub = _waiting_read(reader._read_from_pubsub)
    writer = pubsub._PubSubWriteDoFn
    if not getattr(writer._flush, _PATCHED, False):
        writer._flush = _retrying_flush(writer._flush)


def _waiting_read(read):
    def read_or_wait(self, timestamp_attribute):
        try:
            return read(self, timestamp_attribute)
        except _transient_errors() as e:
            _LOGGER.warning("Pub/Sub pull failed, trying again in 1 s: %s", e)
            Metrics.counter(NAMESPACE, "pubsub_outage_retries").inc()
            _drop_cached_client(self)
            time.sleep(1)
            return []
    setattr(read_or_wait, _PATCHED, True)
    return read_or_wait


def _drop_cached_client(evaluator) -> None:
    """A gRPC channel whose server went away backs off before reconnecting,
    while the DirectRunner's watermark keeps following the wall clock: the
    first messages after recovery would be read late. A new client connects
    at once."""
    cache = getattr(type(evaluator), "_subscriber_client_cache", None)
    transform = getattr(evaluator, "_applied_ptransform", None)
    if cache is not None and transform is not None:
        cache.pop(transform, None)


def _retrying_flush(flush):
    def flush_until_published(self):
        deadline = time.monotonic() + _MAX_WAIT_SECONDS
        while True:
            try:
                return flush(self)
            except _transient_errors() as e:
                if time.monotonic() > deadline:
                    raise
                # The buffer is kept on failure: the same messages go again
                # (a consumer may see one twice; ids let it drop the copy).
                _LOGGER.warning("Pub/Sub publish failed, trying again in 1 s: %s", e)
                Metrics.counter(NAMESPACE, "pubsub_outage_retries").inc()
                time.sleep(1)
    setattr(flush_until_published, _PATCHED, True)
    return flush_until_published
