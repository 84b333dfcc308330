"""Campaign triggers in the pipeline (SPEC §7): the rules are checked when the
job is built, compiled again on each worker, and evaluated right where session
events are emitted, per user and in order, by the replay and the live path
alike (`TriggerFiring`). Firings go to `campaign_trigger` files and to
`--trigger_topic`."""
from typing import Dict, Iterable, List, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems
from apache_beam.io.gcp.pubsub import PubsubMessage

from sessions.records import to_json
from sessions.sessionizer import SessionEvent
from sessions.triggers import CampaignTriggers, Firing, TriggerFileError, TriggerRule, load_rules, one_line
from transforms.counters import trigger_counters


def read_rules(path: str) -> Tuple[TriggerRule, ...]:
    """A rules file from any Beam filesystem, checked; TriggerFileError (one
    line naming the trigger) otherwise."""
    try:
        with FileSystems.open(path) as f:
            text = f.read().decode("utf-8")
    except Exception as e:  # Beam raises its own error types per filesystem
        raise TriggerFileError(f"--triggers={path}: cannot read it: {one_line(str(e))}") from None
    return load_rules(text, f"--triggers={path}")


class TriggerFiring:
    """What a DoFn that emits session events holds to fire triggers: build it
    in `setup` (compiled CEL cannot be pickled)."""

    def __init__(self, rules: Sequence[TriggerRule]):
        self._triggers = CampaignTriggers(rules)
        self._fired, self._failed = trigger_counters(self._triggers.names)

    def fire(self, session_events: Iterable[SessionEvent], cooldowns: Dict[str, int]) -> List[Firing]:
        """Firings of one user's session events, in order; an expression
        that fails is counted and does not fire."""
        firings = []
        for session_event in session_events:
            fired, failed = self._triggers.fire(session_event, cooldowns)
            for firing in fired:
                self._fired[firing.trigger].inc()
            for name in failed:
                self._failed[name].inc()
                self._failed[None].inc()
            firings.extend(fired)
        return firings


def trigger_message(firing: Firing) -> PubsubMessage:
    """Body: the campaign_trigger record; attributes let a CRM subscribe to one
    trigger with a Pub/Sub filter (attributes.trigger = "vip_milestone")."""
    return PubsubMessage(
        data=to_json(firing.record).encode("utf-8"),
        attributes={"trigger": firing.trigger, "user_id": firing.user_id, "event_type": firing.event_type})
