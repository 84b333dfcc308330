"""The end-of-run summary: the job's books, from its Beam counters."""
from dataclasses import dataclass
from typing import Dict, Sequence

from apache_beam.metrics.metric import MetricsFilter

from sessions.events import DEAD_LETTER_REASONS
from transforms.counters import NAMESPACE


@dataclass(frozen=True)
class RunCounts:
    counters: Dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.counters.get(name, 0)

    @property
    def dead_lettered(self) -> Dict[str, int]:
        return {r: self[f"dead_letter_{r}"] for r in DEAD_LETTER_REASONS if self[f"dead_letter_{r}"]}

    @property
    def accounted(self) -> int:
        """What the identity of the books says events read must equal."""
        return (self["events_used"] + sum(self.dead_lettered.values())
                + self["ignored_event_type"] + self["duplicate_event"])

    def per_trigger(self, prefix: str) -> Dict[str, int]:
        """{trigger name: count} of the `<prefix><name>` counters."""
        return {name[len(prefix):]: n for name, n in sorted(self.counters.items()) if name.startswith(prefix)}

    @property
    def balanced(self) -> bool:
        return self["events_read"] == self.accounted


def run_counts(result, namespace: str = NAMESPACE) -> RunCounts:
    query = result.metrics().query(MetricsFilter().with_namespace(namespace))
    counters: Dict[str, int] = {}
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + (value or 0)
    return RunCounts(counters)


def print_summary(result, output_dir: str, trigger_names: Sequence[str] = ()) -> RunCounts:
    """Prints the books; every trigger gets a row, firings or not (Beam
    reports no counter that was never incremented)."""
    counts = run_counts(result)
    dead = counts.dead_lettered
    rows = [
        ("events read", counts["events_read"]),
        ("  used", counts["events_used"]),
        ("  dead-lettered", sum(dead.values())),
        *((f"    {reason}", n) for reason, n in dead.items()),
        ("  ignored event types", counts["ignored_event_type"]),
        ("  duplicates dropped", counts["duplicate_event"]),
        ("unattributed wins/rollbacks", counts["unattributed_event"]),
        ("logouts outside a session", counts["logout_outside_session"]),
        ("sessions ended", counts["sessions_ended"]),
        ("game switches", counts["game_switches"]),
    ]
    fired, failed = counts.per_trigger("trigger_fired_"), counts.per_trigger("trigger_error_")
    if trigger_names:
        rows.append(("campaign triggers fired", sum(fired.values())))
        for name in trigger_names:
            errors = f" ({failed[name]:,} failed to evaluate)" if failed.get(name) else ""
            rows.append((f"  {name}{errors}", fired.get(name, 0)))
        rows.append(("trigger errors", counts["trigger_error"]))
    rows.append(("files written", counts["files_written"]))
    width = max(len(label) for label, _ in rows)
    print(f"game_sessions: replay finished, output in {output_dir}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value:>10,}")
    verdict = "balanced" if counts.balanced else f"NOT balanced: {counts.accounted:,} accounted for"
    print(f"  books: read = used + dead-lettered + ignored + duplicates: {verdict}")
    return counts
