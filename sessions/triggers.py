"""Campaign triggers (SPEC §7): an operator's CEL rules over the session
events the job emits, as pure Python.

A rules file is a list of triggers (YAML or JSON):

    - name: vip_milestone              # unique, [a-z0-9_]+
      on: gs_game_session_ended        # or gs_game_session_changed
      when: gs_total_bet_amount > 1000.0
      cooldown_seconds: 86400          # optional: once per user per day of event time
      action: {campaign: vip, channel: push}   # optional, passed through untouched

`load_rules` reads and checks it all before a job starts: YAML, keys, names,
and every expression compiled and type-checked by Google's CEL (cel-expr-python)
against the fields of its event, declared from `schemas/` (amounts as double,
counts, lengths and dates as int, ids as string, `gs_all_game_ids` as
list(string), nullable fields as dyn). Anything wrong is one `TriggerFileError`
line naming the trigger. Compiled expressions cannot be pickled, so workers
compile the checked rules again (`CampaignTriggers`).

Per user, session events are offered in the order the rules emit them (their
`event_ts` order), and cooldowns count event time, so a replay and a live run
fire exactly the same triggers.
"""
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

import schemas
from sessions.sessionizer import SessionEvent

CAMPAIGN_TRIGGER = schemas.CAMPAIGN_TRIGGER
_NAME = re.compile(r"[a-z0-9_]+")
_KEYS = ("name", "on", "when", "cooldown_seconds", "action")


class _RulesLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: YAML 1.1 reads the key `on` (and yes/no/off) as a
    boolean, and every trigger has an `on`."""


_RulesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_RulesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class TriggerFileError(ValueError):
    """A rules file the job cannot run with; the message is one line."""


@dataclass(frozen=True)
class TriggerRule:
    """One checked trigger, as read from the file (picklable)."""
    name: str
    on: str
    when: str
    cooldown_ms: int
    action: Optional[Mapping[str, Any]]


@dataclass(frozen=True)
class Firing:
    """One trigger fired by one session event: a `campaign_trigger` record."""
    trigger: str
    session_event: SessionEvent
    action: Optional[Mapping[str, Any]]

    table = CAMPAIGN_TRIGGER

    @property
    def user_id(self) -> str:
        return self.session_event.result.user_id

    @property
    def event_type(self) -> str:
        return self.session_event.result.event_type

    @property
    def fired_at(self) -> int:
        return self.session_event.result.event_ts

    @property
    def partition_ms(self) -> int:
        return self.fired_at

    @property
    def record(self) -> dict:
        event = self.session_event.record
        return {
            "trigger": self.trigger,
            "user_id": self.user_id,
            "event_type": self.event_type,
            "gs_gameplay_session_id": event["gs_gameplay_session_id"],
            "gs_game_session_id": event.get("gs_game_session_id"),
            "fired_at": self.fired_at,
            "action": self.action,
            "event": event,
        }


def load_rules(text: str, source: str = "--triggers") -> Tuple[TriggerRule, ...]:
    """Parses and checks a rules file's text; TriggerFileError otherwise."""
    try:
        document = yaml.load(text, Loader=_RulesLoader)
    except yaml.YAMLError as e:
        raise TriggerFileError(f"{source}: not valid YAML or JSON: {one_line(str(e))}") from None
    if isinstance(document, dict) and set(document) == {"triggers"}:
        document = document["triggers"]
    if not isinstance(document, list) or not document:
        raise TriggerFileError(f"{source}: expected a non-empty list of triggers (or `triggers:` holding one)")
    rules, seen = [], set()
    for position, entry in enumerate(document, start=1):
        rule = _rule(entry, source, position)
        if rule.name in seen:
            raise TriggerFileError(f"{source}: trigger {rule.name!r}: the name is used twice")
        seen.add(rule.name)
        rules.append(rule)
    CampaignTriggers(rules, source)  # compiles and type-checks every expression
    return tuple(rules)


def _rule(entry: Any, source: str, position: int) -> TriggerRule:
    where = f"{source}: trigger #{position}"
    if not isinstance(entry, dict):
        raise TriggerFileError(f"{where}: expected a mapping with name, on, when, got {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TriggerFileError(f"{where}: name must be [a-z0-9_]+, got {name!r}")
    where = f"{source}: trigger {name!r}"
    unknown = sorted(set(entry) - set(_KEYS), key=str)
    if unknown:
        raise TriggerFileError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    on = entry.get("on")
    if on not in schemas.EVENT_TYPES:
        raise TriggerFileError(f"{where}: on must be one of {', '.join(schemas.EVENT_TYPES)}, got {on!r}")
    when = entry.get("when")
    if not isinstance(when, str) or not when.strip():
        raise TriggerFileError(f"{where}: when must be a CEL expression (a string)")
    cooldown = entry.get("cooldown_seconds", 0)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
        raise TriggerFileError(f"{where}: cooldown_seconds must be a whole number >= 0, got {cooldown!r}")
    action = entry.get("action")
    if action is not None:
        if not isinstance(action, dict):
            raise TriggerFileError(f"{where}: action must be a mapping (a JSON object)")
        try:
            action = json.loads(json.dumps(action, allow_nan=False), parse_float=Decimal)
        except (TypeError, ValueError) as e:
            raise TriggerFileError(f"{where}: action is not JSON: {one_line(str(e))}") from None
    return TriggerRule(name, on, when, cooldown * 1000, action)


def one_line(message: str) -> str:
    return " ".join(message.split())[:300]


def _cel():
    from cel_expr_python import cel  # a C++ extension: imported where triggers are used
    return cel


# The one field a live run and a replay give different values (wall clock vs
# the ideal delay): a rule on it would break "the same triggers in both modes".
NOT_FOR_RULES = "gs_event_delay_seconds"


def cel_variables(event_type: str) -> Dict[str, Any]:
    """The CEL type of each field of an event type, from its Avro schema."""
    cel = _cel()
    types = {}
    for field in schemas.avsc_fields(event_type):
        if field["name"] == NOT_FOR_RULES:
            continue
        avro = field["type"]
        if isinstance(avro, list):
            types[field["name"]] = cel.Type.DYN  # ["null", T]: compare with null or a value
        elif isinstance(avro, dict) and avro.get("logicalType") == "decimal":
            types[field["name"]] = cel.Type.DOUBLE
        elif isinstance(avro, dict) and avro["type"] == "array":
            types[field["name"]] = cel.Type.List(cel.Type.STRING)
        elif isinstance(avro, dict):  # timestamp-millis
            types[field["name"]] = cel.Type.INT
        else:
            types[field["name"]] = {"string": cel.Type.STRING, "long": cel.Type.INT}[avro]
    return types


class _Compiled:
    __slots__ = ("rule", "expression")

    def __init__(self, rule: TriggerRule, expression):
        self.rule = rule
        self.expression = expression


class CampaignTriggers:
    """Checked rules, compiled; `fire` evaluates them for one user's next
    session event. Build one per process (it holds C++ objects)."""

    def __init__(self, rules: Sequence[TriggerRule], source: str = "--triggers"):
        cel = _cel()
        self._cel = cel
        self._by_event_type: Dict[str, List[_Compiled]] = {event_type: [] for event_type in schemas.EVENT_TYPES}
        self._environments = {}
        self._referenced: Dict[str, Tuple[str, ...]] = {}
        for event_type in schemas.EVENT_TYPES:
            variables = cel_variables(event_type)
            self._environments[event_type] = cel.NewEnv(variables=variables)
            mine = [rule for rule in rules if rule.on == event_type]
            # Only the fields some expression names go into an activation:
            # building one costs per variable.
            self._referenced[event_type] = tuple(
                name for name in variables if any(re.search(rf"\b{name}\b", rule.when) for rule in mine))
        for rule in rules:
            where = f"{source}: trigger {rule.name!r}"
            try:
                expression = self._environments[rule.on].compile(rule.when)
            except RuntimeError as e:
                if re.search(rf"\b{NOT_FOR_RULES}\b", rule.when):
                    raise TriggerFileError(f"{where}: {NOT_FOR_RULES} is not available to triggers: live runs and "
                                           "replays give it different values, so they would fire differently") from None
                raise TriggerFileError(f"{where}: when does not compile: {_cel_error(str(e))}") from None
            returns = expression.return_type()
            if returns != cel.Type.BOOL:
                raise TriggerFileError(f"{where}: when must be boolean, but gives {returns.name()}")
            self._by_event_type[rule.on].append(_Compiled(rule, expression))

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(c.rule.name for compiled in self._by_event_type.values() for c in compiled)

    def fire(self, session_event: SessionEvent, cooldowns: Dict[str, int]) -> Tuple[List[Firing], List[str]]:
        """(firings, names of triggers whose expression failed) for one
        session event; `cooldowns` (trigger -> last fired_at of this user) is
        updated in place."""
        result = session_event.result
        compiled = self._by_event_type[result.event_type]
        if not compiled:
            return [], []
        fired_at = result.event_ts
        due = [c for c in compiled
               if not c.rule.cooldown_ms or cooldowns.get(c.rule.name) is None
               or fired_at - cooldowns[c.rule.name] >= c.rule.cooldown_ms]
        if not due:
            return [], []
        record = session_event.record
        data = {name: _cel_value(record[name]) for name in self._referenced[result.event_type]}
        activation = self._environments[result.event_type].Activation(data)
        firings, failed = [], []
        for c in due:
            value = c.expression.eval(activation)
            if value.type() != self._cel.Type.BOOL:
                failed.append(c.rule.name)
            elif value.value():
                cooldowns[c.rule.name] = fired_at
                firings.append(Firing(c.rule.name, session_event, c.rule.action))
        return firings, failed


def _cel_value(value):
    if isinstance(value, Decimal):
        return float(value)
    return value


def _cel_error(message: str) -> str:
    # cel-cpp: "INVALID_ARGUMENT: ERROR: <input>:1:1: undeclared reference to 'x' ..." plus a caret drawing.
    first = message.strip().splitlines()[0]
    return one_line(re.sub(r"^(\w+: )?ERROR: <input>:", "at ", first))
