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
    direct_pubsub.survive_pubsub_outages()
    first = transform_evaluator._PubSubReadEvaluator._read_from_pubsub
    direct_pubsub.survive_pubsub_outages()
    assert transform_evaluator._PubSubReadEvaluator._read_from_pubsub is first


def test_id_label_is_refused_on_the_direct_runner_with_one_clear_line(capsys):
    from pipelines.game_sessions import main
    code = main(["--streaming", "--input_subscription=projects/p/subscriptions/s",
                 "--ended_topic=projects/p/topics/t", "--id_label=event_id"])
    assert code == 2
    assert "--id_label is honoured by Dataflow only" in capsys.readouterr().err
