"""Ended sessions as AT Protocol `net.anisota.beta.game.session` records
(SPEC §6): one small JSON file per record, `DIR/<user_id>/<rkey>.json`.

Each file is named by its record and written atomically (temporary name,
then rename), so it needs no grouping and works the same in replay and in
streaming, in any window: a retried bundle rewrites the same bytes.
"""
from typing import Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from sessions.lexicon import record_file
from sessions.sessionizer import SessionEnd
from transforms.counters import NAMESPACE
from transforms.write import write_atomically


class _WriteRecordFiles(beam.DoFn):
    def __init__(self, output_dir: str, gap_ms: int):
        self._output_dir = output_dir
        self._gap_ms = gap_ms

    def setup(self):
        self._records = Metrics.counter(NAMESPACE, "lexicon_records_written")

    def process(self, result_delay) -> Iterable[str]:
        result, _ = result_delay
        if not isinstance(result, SessionEnd):
            return
        relative_path, body = record_file(result, self._gap_ms)
        path = FileSystems.join(self._output_dir, *relative_path.split("/"))
        write_atomically(path, body)
        self._records.inc()
        yield path


class WriteLexiconRecords(beam.PTransform):
    """(GameSwitch | SessionEnd, delay) -> one record file per SessionEnd;
    yields the paths written. `gap_seconds` is the job's session gap (it
    dates `createdAt`)."""

    def __init__(self, output_dir: str, gap_seconds: int):
        super().__init__()
        self._output_dir = output_dir
        self._gap_seconds = gap_seconds

    def expand(self, results):
        gap_seconds = self._gap_seconds
        if gap_seconds <= 0:
            raise ValueError(f"the session gap must be a positive number of seconds, got {gap_seconds}")
        return results | "WriteRecordFiles" >> beam.ParDo(
            _WriteRecordFiles(self._output_dir, gap_seconds * 1000))
