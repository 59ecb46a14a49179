"""Outbound mapping kind ``outbound-json``: FHIR resources -> a JSON message of another system.

The inbound mappings read a message into FHIR; an outbound one writes the messages of a system
that does not speak FHIR (the national insurance platform's e-prescription interfaces,
``mappings/insurance/e-prescription.yaml``). A mapping is data: for each message (``infno``)
its fields in order, each with

- ``name``: the field name of the target (snake_case, as the target spells it);
- ``from``: a FHIRPath expression over the context (a dict of resources: ``rx``, ``patient``,
  ``dr``, ``org``, ``med``, ``enc``, ``phar`` and ``phar_role`` (the reviewing pharmacist), and
  ``answer``, the output of the previous message; in a ``list`` section also ``item``), or
  ``value``: a constant; ``default`` when it finds nothing;
- ``len``: the maximum length in characters, ``required``: whether it must have a value;
- ``code``: a code table of the mapping (``codes``) the value is translated through;
- ``format``: ``datetime`` (``YYYY-MM-DD HH:MM:SS`` in China time), ``number``,
  ``days_from_authored``, ``validity_end``, ``base64_json``;
- ``fields`` (a nested object) and ``list`` (an array, one element per item the expression finds);
- ``part``: a named group of fields of the mapping (``parts``), shared by several messages: on
  its own (``{part: P}``) its fields are written in place; with a ``name`` they make a nested
  object, which a ``format: base64_json`` turns into one string (what is signed by one message
  and uploaded, field by field, by the next: 7102 signs what 7103 carries).

The ``answer`` of the context is what the platform said so far (outputs of the earlier messages
of the chain, keys in snake_case): a message can carry back what a previous one returned.

:func:`build` returns the message and its problems (a missing required field, a value too
long, a code not in its table), each naming the field's path: a message with problems is not sent.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any

import orjson
import yaml
from fhirpathpy import compile as fhirpath_compile

__all__ = ["FieldSpec", "MessageSpec", "OutboundMapping", "Problem", "build", "load_outbound", "parse_fields"]

CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class FieldSpec:
    name: str
    source: str | None = None
    value: str | None = None
    default: str | None = None
    length: int | None = None
    required: bool = False
    code: str | None = None
    format: str | None = None
    fields: tuple[FieldSpec, ...] = ()
    list_source: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any], parts: dict[str, tuple[FieldSpec, ...]] | None = None) -> FieldSpec:
        parts = parts or {}
        if data.get("part") is not None and data["part"] not in parts:
            raise ValueError(f"field {data.get('name')!r} names part {data['part']!r}, which the mapping lacks")
        nested = parts[data["part"]] if data.get("part") is not None else parse_fields(data.get("fields"), parts)
        return cls(
            name=str(data["name"]),
            source=data.get("from"),
            value=None if data.get("value") is None else str(data["value"]),
            default=None if data.get("default") is None else str(data["default"]),
            length=data.get("len"),
            required=bool(data.get("required", False)),
            code=data.get("code"),
            format=data.get("format"),
            fields=nested,
            list_source=data.get("list"),
        )


def parse_fields(items: Any, parts: dict[str, tuple[FieldSpec, ...]]) -> tuple[FieldSpec, ...]:
    """Field specs in order, a bare ``{part: P}`` replaced by the fields of part P."""
    out: list[FieldSpec] = []
    for item in items or ():
        if "name" not in item and item.get("part") is not None:
            if item["part"] not in parts:
                raise ValueError(f"the mapping has no part {item['part']!r}")
            out.extend(parts[item["part"]])
        else:
            out.append(FieldSpec.parse(item, parts))
    return tuple(out)


@dataclass(frozen=True)
class MessageSpec:
    infno: str
    name: str
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class OutboundMapping:
    name: str
    envelope: dict[str, str]
    codes: dict[str, dict[str, str]]
    messages: dict[str, MessageSpec]

    def message(self, infno: str) -> MessageSpec:
        return self.messages[infno]


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str


def load_outbound(name: str) -> OutboundMapping:
    """A mapping of the ``mappings`` package by name (``insurance/e-prescription``)."""
    text = resources.files("mappings").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if data.get("kind") != "outbound-json":
        raise ValueError(f"mappings/{name}.yaml is not an outbound-json mapping")
    parts: dict[str, tuple[FieldSpec, ...]] = {}
    for part, items in (data.get("parts") or {}).items():  # in file order: a part may use an earlier one
        parts[str(part)] = parse_fields(items, parts)
    return OutboundMapping(
        name=str(data["mapping"]),
        envelope={k: str(v) for k, v in (data.get("envelope") or {}).items()},
        codes={t: {str(k): str(v) for k, v in table.items()} for t, table in (data.get("codes") or {}).items()},
        messages={
            str(infno): MessageSpec(str(infno), str(m.get("name", infno)), parse_fields(m["fields"], parts))
            for infno, m in data["messages"].items()
        },
    )


_COMPILED: dict[str, Any] = {}


def _evaluate(expression: str, context: dict[str, Any]) -> list[Any]:
    path = _COMPILED.get(expression)
    if path is None:
        path = _COMPILED[expression] = fhirpath_compile(expression)
    try:
        return list(path(context, None))  # (resource, environment): no %variables here
    except Exception:  # a context without the element asked for answers nothing
        return []


def _instant(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=CHINA) if parsed.tzinfo is None else parsed


def _format(spec: FieldSpec, value: Any, context: dict[str, Any], built: dict[str, Any]) -> Any:
    kind = spec.format
    if kind == "datetime":
        moment = _instant(str(value))
        return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S") if moment else str(value)
    if kind == "number":
        number = float(value)
        return str(int(number)) if number.is_integer() else str(value)
    if kind == "days_from_authored":
        start = _instant(str(_first(_evaluate("rx.authoredOn", context)) or ""))
        end = _instant(str(value))
        return str(max(1, (end - start).days)) if start and end else None
    if kind == "validity_end":
        start = _instant(str(value))
        days = int(built.get("valid_days") or 3)
        return (start + timedelta(days=days)).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S") if start else None
    if kind == "base64_json":  # keys sorted: the same content is the same string (it may be signed)
        return base64.b64encode(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).decode()
    return value


def _first(values: list[Any]) -> Any:
    for v in values:
        if v is not None and v != "":
            return v
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fields(
    mapping: OutboundMapping, specs: tuple[FieldSpec, ...], context: dict[str, Any], path: str, problems: list[Problem]
) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for spec in specs:
        where = f"{path}.{spec.name}" if path else spec.name
        if spec.list_source is not None:
            items = _evaluate(spec.list_source, context) if spec.list_source != "rx" else [context.get("rx")]
            built[spec.name] = [
                _fields(mapping, spec.fields, {**context, "item": item}, f"{where}[{i}]", problems)
                for i, item in enumerate(items)
                if item is not None
            ]
            if not built[spec.name] and spec.required:
                problems.append(Problem(where, "required, and nothing to list"))
            continue
        value: Any = spec.value
        if spec.fields:
            nested = _fields(mapping, spec.fields, context, where, problems)
            if spec.format is None:
                built[spec.name] = nested
                continue
            value = nested
        elif value is None and spec.source is not None:
            value = _first(_evaluate(spec.source, context)) if spec.source != "rx" else context.get("rx")
        if value is not None and spec.format is not None:
            value = _format(spec, value, context, built)
        defaulted = value is None or value == ""
        if defaulted:
            value = spec.default  # already in the target's terms: not translated
        if value is None:
            if spec.required:
                problems.append(Problem(where, "required, and the prescription has no value for it"))
            continue
        text = _text(value)
        if spec.code is not None and not defaulted:
            table = mapping.codes[spec.code]
            if text not in table:
                problems.append(Problem(where, f"{text!r} is not in code table {spec.code}"))
                continue
            text = table[text]
        if spec.length is not None and len(text) > spec.length:
            problems.append(Problem(where, f"{len(text)} characters, at most {spec.length}"))
            continue
        built[spec.name] = text
    return built


def build(mapping: OutboundMapping, infno: str, context: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """The ``input`` of message ``infno`` for ``context``, and what stops it from being sent."""
    problems: list[Problem] = []
    spec = mapping.message(infno)
    return _fields(mapping, spec.fields, context, "input", problems), problems


def spec_table(mapping: OutboundMapping, infno: str) -> dict[str, FieldSpec]:
    """Every field of a message by its dotted path (documentation, tests of the data itself)."""
    table: dict[str, FieldSpec] = {}

    def walk(specs: tuple[FieldSpec, ...], prefix: str) -> None:
        for spec in specs:
            path = f"{prefix}{spec.name}"
            table[path] = spec
            walk(spec.fields, path + ".")

    walk(mapping.message(infno).fields, "")
    return table
