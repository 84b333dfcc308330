"""Output files: one folder per table, Hive-style `dt=YYYY-MM-DD/` partitions
of the session start, Avro (BigQuery-loadable) and/or JSONL (SPEC §4).

Files are written under a hidden temporary name and renamed into place, so no
reader ever sees a partial file. A file's name and bytes (Avro sync marker
included) derive from its sorted contents: a retried bundle rewrites the same
file, and replaying the same input twice gives identical files.
"""
import hashlib
import io
from collections import defaultdict
from typing import Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import fastavro
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window

import schemas
from sessions.records import from_json, partition_date, to_json
from transforms.counters import NAMESPACE

AVRO, JSONL = "avro", "jsonl"
OUTPUT_FORMATS = {"avro": (AVRO,), "jsonl": (JSONL,), "both": (AVRO, JSONL)}

# (table, dt partition or None, the record as a JSON line). Rows cross the
# shuffle rendered: a dict of Decimals would be pickled value by value.
TableRow = Tuple[str, Optional[str], str]


def session_rows(emitted) -> TableRow:
    """A SessionEvent or a trigger Firing -> the row of its table."""
    return emitted.table, partition_date(emitted.partition_ms), to_json(emitted.record)


def _line(row: Tuple[str, Optional[dict]]) -> str:
    return row[0]


def dead_letter_rows(dead_letter) -> TableRow:
    return schemas.DEAD_LETTER, None, dead_letter.to_json()


class _WriteFiles(beam.DoFn):
    """((table, partition), rows) groups -> files."""

    def __init__(self, output_dir: str, formats: Sequence[str]):
        self._output_dir = output_dir
        self._formats = tuple(formats)

    def setup(self):
        self._files = Metrics.counter(NAMESPACE, "files_written")

    def process(self, group) -> Iterable[str]:
        (table, partition), lines = group
        yield from self._write(table, partition, ((line, None) for line in lines))

    def _write(self, table: str, partition: Optional[str],
               rows: Iterable[Tuple[str, Optional[dict]]]) -> List[str]:
        """One file per format of a table partition's rows: (JSON line, the
        record it renders, or None to read it back from the line)."""
        rows = sorted(rows, key=_line)
        body = "".join(line + "\n" for line, _ in rows).encode("utf-8")
        digest = hashlib.sha256(body).hexdigest()
        folder = FileSystems.join(self._output_dir, table, *([f"dt={partition}"] if partition else []))
        paths = []
        for fmt in ((JSONL,) if table == schemas.DEAD_LETTER else self._formats):
            if fmt == JSONL:
                data = body
            else:
                buffer = io.BytesIO()
                records = (schemas.avro_record(table, from_json(line) if record is None else record)
                           for line, record in rows)
                fastavro.writer(buffer, schemas.avro_schema(table), records,
                                codec="deflate", sync_marker=bytes.fromhex(digest[:32]))
                data = buffer.getvalue()
            path = FileSystems.join(folder, f"part-{digest[:24]}.{fmt}")
            write_atomically(path, data)
            self._files.inc()
            paths.append(path)
        return paths


class _WriteSessionBatch(_WriteFiles):
    """One replay bucket's SessionEvents and Firings -> files, per table
    partition."""

    def process(self, results) -> Iterable[str]:
        by_partition = defaultdict(list)
        for emitted in results:
            record = emitted.record
            by_partition[emitted.table, partition_date(emitted.partition_ms)].append((to_json(record), record))
        for (table, partition), rows in sorted(by_partition.items()):
            yield from self._write(table, partition, rows)


def write_atomically(path: str, data: bytes) -> None:
    folder, name = path.rsplit("/", 1)
    temporary = f"{folder}/.{name}.inprogress"
    with FileSystems.create(temporary) as f:
        f.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])  # same name means same content: a retry
    FileSystems.rename([temporary], [path])


class WriteTables(beam.PTransform):
    """TableRows -> files; yields the paths written.

    In streaming, rows are grouped in the global window and flushed by a
    processing-time trigger, so nothing emitted late by the session logic can
    be dropped by a window that has already closed."""

    def __init__(self, output_dir: str, formats: Sequence[str], flush_seconds: Optional[int] = None):
        super().__init__()
        self._output_dir = output_dir
        self._formats = formats
        self._flush_seconds = flush_seconds

    def expand(self, rows):
        keyed = rows | "ByPartition" >> beam.Map(lambda row: ((row[0], row[1]), row[2]))
        if self._flush_seconds:
            keyed = keyed | "FlushEvery" >> beam.WindowInto(
                window.GlobalWindows(),
                trigger=trigger.Repeatedly(trigger.AfterProcessingTime(self._flush_seconds)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING)
        return (
            keyed
            | "GroupFiles" >> beam.GroupByKey()
            | "WriteFiles" >> beam.ParDo(_WriteFiles(self._output_dir, self._formats)))


class WriteSessionBatches(beam.PTransform):
    """Lists of SessionEvents and Firings, one per replay bucket -> files, one per
    table partition of each list: no shuffle, and the same input gives the
    same lists, so the same files."""

    def __init__(self, output_dir: str, formats: Sequence[str]):
        super().__init__()
        self._output_dir = output_dir
        self._formats = formats

    def expand(self, batches):
        return batches | "WriteFiles" >> beam.ParDo(_WriteSessionBatch(self._output_dir, self._formats))
