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
    def __init__(self, output_dir: str):
        self._output_dir = output_dir

    def setup(self):
        self._records = Metrics.counter(NAMESPACE, "lexicon_records_written")

    def process(self, emitted) -> Iterable[str]:
        result = emitted.result
        if not isinstance(result, SessionEnd):
            return
        relative_path, body = record_file(result)
        path = FileSystems.join(self._output_dir, *relative_path.split("/"))
        write_atomically(path, body)
        self._records.inc()
        yield path


class WriteLexiconRecords(beam.PTransform):
    """SessionEvents -> one record file per SessionEnd;
    yields the paths written."""

    def __init__(self, output_dir: str):
        super().__init__()
        self._output_dir = output_dir

    def expand(self, results):
        return results | "WriteRecordFiles" >> beam.ParDo(_WriteRecordFiles(self._output_dir))
