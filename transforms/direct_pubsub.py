"""The Python DirectRunner's Pub/Sub read, made exact when the job is behind,
fast enough for a live stream, and able to ride out a Pub/Sub outage.

The DirectRunner pulls Pub/Sub itself (Dataflow replaces these transforms with
its own service-side I/O). For a live job, Beam's reader and runner have four
problems, patched here for DirectRunner jobs only (`patch_direct_pubsub`):

- **The read's watermark is the wall clock after every pull.** When the job is
  behind, the events still waiting in the subscription are then behind the
  watermark and every one of them is late, though it was published in time.
  Here the watermark is held back by what has not been read yet
  (`BacklogWatermark`): a backlog costs latency, never correctness.
- **It pulls 10 messages at a time with a 30 s timeout**: a bundle, and its
  runner overhead in every step, per 10 events, and an idle stream moves the
  watermark once every 30 s. Here pulls of up to `PULL_SIZE` are gathered into
  bundles of up to `BUNDLE_SIZE` while the subscription has more, and an empty
  pull waits about a second.
- **Every bundle of every step inspects the DoFn's method signatures** to find
  its state and timer specs: with small live bundles, half the job's CPU.
  Here they are worked out once per DoFn class.
- **A failed pull or publish fails the job**: a 15 s outage, or a
  subscription that comes back a moment after its server, would end it. Here
  the read waits and tries again (a failed pull returns no messages and holds
  the watermark, so nothing is lost: Pub/Sub keeps unacknowledged messages)
  and a publish retries until it goes through. A wait is logged and counted
  (`pubsub_outage_retries`).
"""
import logging
import threading
import time
import types
import weakref
from typing import Iterable, List, Optional, Tuple

from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from transforms.counters import NAMESPACE

_LOGGER = logging.getLogger(__name__)
_MAX_WAIT_SECONDS = 10 * 60
_PATCHED = "_game_sessions_patched"
# Pub/Sub's own maximum per pull. The emulator returns at most 100 a pull,
# so a pull that brings FULL_PULL or more says more is waiting.
PULL_SIZE = 1000
FULL_PULL = 100
BUNDLE_SIZE = 2000
# An empty pull is what lets the watermark reach the wall clock: a short one
# keeps an idle stream's sessions closing within about a second. (The
# emulator answers an empty subscription after half this timeout; at 1 s or
# less it answers at once, and an idle job would spin.)
PULL_TIMEOUT_SECONDS = 2.0


class BacklogWatermark:
    """The event-time watermark of a Pub/Sub read that cannot see its backlog.

    What a pull returns says where the unread messages are: Pub/Sub hands out
    a subscription's messages roughly oldest first, and publishers publish
    each event within `--max_disorder_seconds` of its time (SPEC §3.3), so
    the events still waiting are no older than the oldest event of the last
    bundle of pulls, less the disorder the job already tolerates. Only an empty pull
    proves the subscription drained: then everything published before the
    pull started has been read, and the watermark may reach that instant.
    So it never passes an event that is still in the backlog, and it is
    bounded: an idle stream's empty pulls take it to the wall clock; a failed
    pull (an outage) holds it where it was until reading resumes.
    Monotonic: an old straggler never moves it back.
    """

    def __init__(self):
        self.value: Timestamp = MIN_TIMESTAMP
        self.reported_at = 0.0  # wall clock of the last "behind" log line

    def pulled(self, started_at: Timestamp, event_times: Iterable[Timestamp]) -> Timestamp:
        self.value = max(self.value, min([started_at, *event_times]))
        return self.value


_WATERMARKS: "weakref.WeakKeyDictionary[object, BacklogWatermark]" = weakref.WeakKeyDictionary()
_WATERMARKS_LOCK = threading.Lock()


def _watermark_of(applied_ptransform) -> BacklogWatermark:
    with _WATERMARKS_LOCK:
        return _WATERMARKS.setdefault(applied_ptransform, BacklogWatermark())


def _transient_errors():
    from google.api_core import exceptions
    return (exceptions.GoogleAPICallError, exceptions.RetryError, ConnectionError)


def patch_direct_pubsub() -> None:
    """Idempotent; affects this process's DirectRunner Pub/Sub read and write."""
    from apache_beam.io.gcp import pubsub
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    reader = transform_evaluator._PubSubReadEvaluator
    if not getattr(reader._read_from_pubsub, _PATCHED, False):
        reader._read_from_pubsub = _waiting_read(_read_holding_watermark)
    if not getattr(reader.finish_bundle, _PATCHED, False):
        reader.finish_bundle = _holding_backlog(reader.finish_bundle)
    writer = pubsub._PubSubWriteDoFn
    if not getattr(writer._flush, _PATCHED, False):
        writer._flush = _retrying_flush(writer._flush)
    if not getattr(userstate.get_dofn_specs, _PATCHED, False):
        userstate.get_dofn_specs = transform_evaluator.get_dofn_specs = _specs_per_class(userstate.get_dofn_specs)


def _read_holding_watermark(evaluator, timestamp_attribute: Optional[str]) -> List[Tuple[Timestamp, object]]:
    """Beam's `_read_from_pubsub`, with bigger bundles, a shorter wait, and
    the watermark following what the pulls say about the backlog."""
    transform = evaluator._applied_ptransform
    client = evaluator._get_subscriber_client(transform)
    watermark = _watermark_of(transform)
    elements, first_started_at = [], None
    while True:
        started_at = Timestamp.of(time.time())
        if first_started_at is None:
            first_started_at = started_at
        try:
            received = client.pull(subscription=evaluator._sub_name, max_messages=PULL_SIZE,
                                   timeout=PULL_TIMEOUT_SECONDS).received_messages
        except _transient_errors():
            if elements:  # already acknowledged: they go on, the next read meets the failure
                return elements
            raise
        pulled = [_element(rm.message, timestamp_attribute) for rm in received]
        if received:
            # Acknowledged as soon as read, as Beam's reader does (the
            # DirectRunner does not retry bundles). A failed acknowledgement
            # only means a redelivery, which the job drops as a duplicate.
            try:
                client.acknowledge(subscription=evaluator._sub_name, ack_ids=[rm.ack_id for rm in received])
            except _transient_errors() as e:
                _LOGGER.warning("Pub/Sub acknowledgement failed; %d messages may come again: %s", len(received), e)
        elements.extend(pulled)
        if not received:
            # Drained when this pull started. What the bundle read before is
            # pending downstream, and the runner holds its watermark for that.
            watermark.pulled(started_at, [])
            break
        # Every bundle costs the runner milliseconds in each step it passes:
        # behind a backlog, read it in bundles of thousands.
        if len(received) < FULL_PULL or len(elements) >= BUNDLE_SIZE:
            # The whole bundle's oldest event, not the last pull's: Pub/Sub
            # hands a backlog out only roughly oldest first (the emulator
            # swaps neighbours a few hundred messages apart).
            watermark.pulled(first_started_at, (timestamp for timestamp, _ in elements))
            break
    _report_lag(watermark)
    return elements


def _report_lag(watermark: BacklogWatermark) -> None:
    """How far behind the job reads: a gauge, and a log line every 30 s
    while it is more than 10 s behind."""
    if watermark.value == MIN_TIMESTAMP:
        return
    now = time.time()
    lag = now - watermark.value.micros / 1e6
    Metrics.gauge(NAMESPACE, "pubsub_read_behind_seconds").set(int(lag))
    if lag > 10 and now - watermark.reported_at > 30:
        watermark.reported_at = now
        _LOGGER.warning("Reading a Pub/Sub backlog: the watermark is %.0f s behind the wall clock; "
                        "results wait for it, nothing read is late", lag)


def attribute_timestamp(value: str) -> Timestamp:
    """A timestamp attribute as Beam's Pub/Sub readers take it: epoch ms or
    RFC 3339; ValueError otherwise."""
    try:
        return Timestamp(micros=int(value) * 1000)
    except ValueError:
        try:
            return Timestamp.from_rfc3339(value)
        except ValueError as e:
            raise ValueError(f"Bad timestamp value: {e}") from e


def _element(message, timestamp_attribute: Optional[str]):
    """(event time, PubsubMessage) as Beam's reader makes it: the timestamp
    attribute in epoch ms or RFC 3339, else the publish time."""
    from apache_beam.io.gcp.pubsub import PubsubMessage

    parsed = PubsubMessage._from_message(message)
    value = parsed.attributes.get(timestamp_attribute) if timestamp_attribute else None
    if value is None:
        return Timestamp.from_utc_datetime(message.publish_time), parsed
    timestamp = attribute_timestamp(value)
    if timestamp.precision() > Timestamp.MICROS_PRECISION:
        timestamp = timestamp.to_precision(Timestamp.MICROS_PRECISION, allow_lossy_conversion=True)
    return timestamp, parsed


def _holding_backlog(finish_bundle):
    def finish_bundle_holding_backlog(self):
        result = finish_bundle(self)
        # Beam's reader holds its output watermark at the wall clock.
        result.keyed_watermark_holds = {None: _watermark_of(self._applied_ptransform).value}
        return result
    setattr(finish_bundle_holding_backlog, _PATCHED, True)
    return finish_bundle_holding_backlog


def _specs_per_class(get_dofn_specs):
    """The DirectRunner works out a DoFn's state and timer specs by
    inspecting the signature of every method, several times for every bundle
    of every step (a fresh unpickled copy each time): half its CPU time in a
    live job. They come from the methods, so they are the class's unless the
    instance carries bound methods of its own."""
    cache = {}

    def specs(dofn):
        if any(isinstance(value, types.MethodType) for value in getattr(dofn, "__dict__", {}).values()):
            return get_dofn_specs(dofn)
        cls = type(dofn)
        if cls not in cache:
            cache[cls] = get_dofn_specs(dofn)
        return cache[cls]
    setattr(specs, _PATCHED, True)
    return specs


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
    """A gRPC channel whose server went away backs off before reconnecting:
    the read would wait longer than the outage. A new client connects at once."""
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
