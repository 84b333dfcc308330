"""Checks records against an AT Protocol lexicon file, read as it is.

The rules come from the lexicon document itself (schemas/lexicons/<nsid>.json),
not from a restatement of it, so a changed lexicon changes what passes. The
part of the lexicon language the project's lexicons use is supported: record,
object (required, nullable), ref within the same lexicon, string (enum, const,
minLength/maxLength in UTF-8 bytes, format datetime), integer (enum, const,
minimum, maximum), boolean (const) and array (items, minLength/maxLength).
A lexicon using anything else is refused when it is loaded, never passed
unchecked.
"""
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping

import schemas

LEXICONS = Path(schemas.__file__).parent / "lexicons"

# Keywords each supported type may carry; descriptions, defaults and
# knownValues (an open set) constrain nothing.
_KEYWORDS = {
    "record": {"type", "description", "key", "record"},
    "object": {"type", "description", "properties", "required", "nullable"},
    "ref": {"type", "description", "ref"},
    "string": {"type", "description", "default", "knownValues", "enum", "const",
               "minLength", "maxLength", "format"},
    "integer": {"type", "description", "default", "enum", "const", "minimum", "maximum"},
    "boolean": {"type", "description", "default", "const"},
    "array": {"type", "description", "items", "minLength", "maxLength"},
}
_NEEDED_KEYWORDS = {"record": {"record"}, "ref": {"ref"}, "array": {"items"}}
_FORMATS = {"datetime"}

# AT Protocol datetime: RFC 3339 with upper-case T and a mandatory offset.
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,20})?(?:Z|[+-](\d{2}):(\d{2}))")


def lexicon_path(nsid: str) -> Path:
    return LEXICONS / f"{nsid}.json"


@dataclass(frozen=True)
class Lexicon:
    id: str
    defs: Mapping[str, dict]

    @classmethod
    def named(cls, nsid: str) -> "Lexicon":
        """The project's copy of a lexicon, from schemas/lexicons/."""
        return cls.load(lexicon_path(nsid))

    @classmethod
    def load(cls, path: Path) -> "Lexicon":
        return cls.from_document(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> "Lexicon":
        if document.get("lexicon") != 1:
            raise ValueError(f"only lexicon language version 1 is supported, got {document.get('lexicon')!r}")
        if not isinstance(document.get("id"), str) or not isinstance(document.get("defs"), dict):
            raise ValueError("a lexicon needs a string id and an object of defs")
        lexicon = cls(document["id"], document["defs"])
        for name, definition in lexicon.defs.items():
            lexicon._check_definition(definition, f"#{name}", top_level=True)
        return lexicon

    def validate(self, record: Any, definition: str = "main") -> List[str]:
        """Every way `record` breaks the lexicon's `definition`; [] when it is valid."""
        schema = self._definition(definition)
        errors: List[str] = []
        if schema["type"] == "record":
            if isinstance(record, dict) and record.get("$type") != self.id:
                errors.append(f"$type: must be {self.id!r}, got {record.get('$type')!r}")
            schema = schema["record"]
        self._validate(schema, record, "", errors)
        return errors

    def _definition(self, name: str) -> dict:
        if name not in self.defs:
            raise ValueError(f"lexicon {self.id} has no definition {name!r}")
        return self.defs[name]

    def _resolve(self, ref: str) -> dict:
        nsid, _, name = ref.partition("#")
        if nsid not in ("", self.id):
            raise ValueError(f"ref {ref!r} points into another lexicon; only refs within {self.id} "
                             "are supported")
        return self._definition(name or "main")

    def _check_definition(self, schema: Any, where: str, top_level: bool = False) -> None:
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind not in _KEYWORDS or (kind == "record" and not top_level):
            raise ValueError(f"{self.id}{where}: type {kind!r} is not supported by this validator")
        unknown = set(schema) - _KEYWORDS[kind]
        if unknown:
            raise ValueError(f"{self.id}{where}: {', '.join(sorted(unknown))} not supported for {kind}")
        missing = _NEEDED_KEYWORDS.get(kind, set()) - set(schema)
        if missing:
            raise ValueError(f"{self.id}{where}: a {kind} needs {', '.join(sorted(missing))}")
        if kind == "record":
            self._check_definition(schema["record"], f"{where}.record")
        elif kind == "object":
            for name, property_schema in schema.get("properties", {}).items():
                self._check_definition(property_schema, f"{where}.{name}")
        elif kind == "ref":
            target = self._resolve(schema["ref"])
            if target.get("type") != "object":
                raise ValueError(f"{self.id}{where}: ref {schema['ref']!r} must name an object")
        elif kind == "array":
            self._check_definition(schema["items"], f"{where}[]")
        elif kind == "string" and schema.get("format") not in (None, *_FORMATS):
            raise ValueError(f"{self.id}{where}: string format {schema['format']!r} is not supported")

    def _validate(self, schema: dict, value: Any, path: str, errors: List[str]) -> None:
        kind = schema["type"]
        if kind == "ref":
            schema = self._resolve(schema["ref"])
            kind = schema["type"]
        where = path or "record"
        if kind == "object":
            if not isinstance(value, dict):
                errors.append(f"{where}: must be an object, got {_json_type(value)}")
                return
            self._validate_object(schema, value, path, errors)
        elif kind == "array":
            if not isinstance(value, list):
                errors.append(f"{where}: must be an array, got {_json_type(value)}")
                return
            _check_length(schema, len(value), "items", where, errors)
            for i, item in enumerate(value):
                self._validate(schema["items"], item, f"{path}[{i}]", errors)
        elif kind == "string":
            _validate_string(schema, value, where, errors)
        elif kind == "integer":
            _validate_integer(schema, value, where, errors)
        else:
            _validate_boolean(schema, value, where, errors)

    def _validate_object(self, schema: dict, value: Dict[str, Any], path: str, errors: List[str]) -> None:
        prefix = f"{path}." if path else ""
        for name in schema.get("required", ()):
            if name not in value:
                errors.append(f"{prefix}{name}: is required")
        nullable = set(schema.get("nullable", ()))
        for name, property_schema in schema.get("properties", {}).items():
            if name not in value:
                continue
            if value[name] is None:
                if name not in nullable:
                    errors.append(f"{prefix}{name}: must not be null")
                continue
            self._validate(property_schema, value[name], f"{prefix}{name}", errors)


def _validate_string(schema: dict, value: Any, where: str, errors: List[str]) -> None:
    if not isinstance(value, str):
        errors.append(f"{where}: must be a string, got {_json_type(value)}")
        return
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        errors.append(f"{where}: is not valid Unicode (lone surrogate)")
        return
    _check_length(schema, size, "UTF-8 bytes", where, errors)
    _check_enum_const(schema, value, where, errors)
    if schema.get("format") == "datetime" and not is_datetime(value):
        errors.append(f"{where}: {value[:40]!r} is not an RFC 3339 datetime with a timezone")


def _validate_integer(schema: dict, value: Any, where: str, errors: List[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{where}: must be an integer, got {_json_type(value)}")
        return
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: must be >= {schema['minimum']}, got {value}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{where}: must be <= {schema['maximum']}, got {value}")
    _check_enum_const(schema, value, where, errors)


def _validate_boolean(schema: dict, value: Any, where: str, errors: List[str]) -> None:
    if not isinstance(value, bool):
        errors.append(f"{where}: must be a boolean, got {_json_type(value)}")
        return
    _check_enum_const(schema, value, where, errors)


def _check_enum_const(schema: dict, value: Any, where: str, errors: List[str]) -> None:
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {', '.join(map(str, schema['enum']))}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: must be {schema['const']!r}, got {value!r}")


def _check_length(schema: dict, length: int, unit: str, where: str, errors: List[str]) -> None:
    if "minLength" in schema and length < schema["minLength"]:
        errors.append(f"{where}: must have at least {schema['minLength']} {unit}, has {length}")
    if "maxLength" in schema and length > schema["maxLength"]:
        errors.append(f"{where}: must have at most {schema['maxLength']} {unit}, has {length}")


def is_datetime(text: str) -> bool:
    """The lexicon's `datetime` format: RFC 3339 with a timezone (`Z` or
    ±hh:mm, "-00:00" excluded), a real calendar date and time."""
    m = _DATETIME.fullmatch(text)
    if not m or text.endswith("-00:00"):
        return False
    *moment, offset_hours, offset_minutes = m.groups()
    try:
        datetime(*map(int, moment))
    except ValueError:
        return False
    return offset_hours is None or (int(offset_hours) < 24 and int(offset_minutes) < 60)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
