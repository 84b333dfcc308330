"""The DirectRunner's Pub/Sub I/O waits out failures instead of ending the job."""
from google.api_core import exceptions

from transforms import direct_pubsub


class _Flaky:
    def __init__(self, failures):
        self.failures, self.calls = failures, 0

    def __call__(self, *args):
        self.calls += 1
        if self.calls <= self.failures:
            raise exceptions.ServiceUnavailable("emulator down")
        return ["message"]


def test_a_failed_pull_returns_nothing_and_the_next_one_reads(monkeypatch):
    monkeypatch.setattr(direct_pubsub.time, "sleep", lambda s: None)
    pull = _Flaky(failures=1)
    read = direct_pubsub._waiting_read(pull)
    assert read(None, None) == []
    assert read(None, None) == ["message"]


def test_a_failed_publish_is_retried_until_it_goes_through(monkeypatch):
    monkeypatch.setattr(direct_pubsub.time, "sleep", lambda s: None)
    flush = _Flaky(failures=3)
    assert direct_pubsub._retrying_flush(flush)(None) == ["message"]
    assert flush.calls == 4


def test_other_errors_are_not_swallowed(monkeypatch):
    def broken(*args):
        raise ValueError("Bad timestamp value")
    read = direct_pubsub._waiting_read(broken)
    try:
        read(None, None)
    except ValueError:
        return
    raise AssertionError("a ValueError must reach the runner")


def test_patching_is_idempotent():
    from apache_beam.runners.direct import transform_evaluator
    direct_pubsub.patch_direct_pubsub()
    first = transform_evaluator._PubSubReadEvaluator._read_from_pubsub
    direct_pubsub.patch_direct_pubsub()
    assert transform_evaluator._PubSubReadEvaluator._read_from_pubsub is first


def test_id_label_is_refused_on_the_direct_runner_with_one_clear_line(capsys):
    from pipelines.game_sessions import main
    code = main(["--streaming", "--input_subscription=projects/p/subscriptions/s",
                 "--ended_topic=projects/p/topics/t", "--id_label=event_id"])
    assert code == 2
    assert "--id_label is honoured by Dataflow only" in capsys.readouterr().err


def _ts(seconds):
    from apache_beam.utils.timestamp import Timestamp
    return Timestamp.of(seconds)


def test_a_backlog_holds_the_watermark_at_its_oldest_event_not_the_wall_clock():
    """Beam's reader put its watermark at the wall clock after every pull:
    with a minute of backlog, the next pull's events were a minute late."""
    watermark = direct_pubsub.BacklogWatermark()
    assert watermark.pulled(_ts(1000), [_ts(940), _ts(941.5), _ts(940.3)]) == _ts(940)
    # The next pull of the backlog: its events are not behind the watermark.
    assert watermark.pulled(_ts(1000.2), [_ts(942), _ts(943)]) == _ts(942)


def test_only_an_empty_pull_takes_the_watermark_to_when_it_started():
    watermark = direct_pubsub.BacklogWatermark()
    watermark.pulled(_ts(1000), [_ts(940)])
    assert watermark.pulled(_ts(1001), []) == _ts(1001)


def test_the_watermark_never_moves_back_for_a_straggler_or_a_clock_ahead():
    watermark = direct_pubsub.BacklogWatermark()
    watermark.pulled(_ts(1000), [])
    assert watermark.pulled(_ts(1001), [_ts(10)]) == _ts(1000)
    # An event time ahead of the wall clock does not drag the watermark there.
    assert watermark.pulled(_ts(1002), [_ts(5000)]) == _ts(1002)


def test_dofn_specs_are_worked_out_once_per_class_unless_the_instance_has_its_own_methods():
    from apache_beam.transforms import userstate
    from transforms.live import _LiveSessionizer
    calls = []

    def counting(dofn):
        calls.append(dofn)
        return userstate.get_dofn_specs(dofn)
    specs = direct_pubsub._specs_per_class(counting)
    first, second = _LiveSessionizer(1, 1, 1), _LiveSessionizer(2, 2, 2)
    assert specs(first) == userstate.get_dofn_specs(first)
    assert specs(second) is specs(first) and len(calls) == 1

    class Holder:
        def method(self):
            pass
    second.extra = Holder().method  # a bound method of its own: inspected every time
    specs(second)
    specs(second)
    assert len(calls) == 3
