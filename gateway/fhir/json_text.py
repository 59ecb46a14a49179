"""Keep the client's JSON text.

fhir.resources re-serialises lossily (date-times, decimal trailing zeros, integer64), so the
gateway stores and returns the exact member texts the client sent and only writes the members
it owns (``resourceType``, ``id``, ``meta``). These helpers find the spans of an object's
members and an array's items using the C-accelerated scanners of :mod:`json`, so a 2 KB
resource is split in a few microseconds without re-encoding anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import BadRequest

_WS = re.compile(r"[ \t\n\r]*")
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
MAX_NUMBER_CHARS = 100  # a JSON number longer than this is refused (issue 12: no 100,000-digit decimals)


class _Refused(Exception):
    """A member the scanner refuses: a key given twice in one object, an over-long number."""

    def __init__(self, reason: str, key: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.key = reason, key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused("duplicate key", key)
            seen.add(key)
    return found


def _bounded_number(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    return text


# The span scanner parses each member anyway: it is also where JSON that orjson would take
# silently is refused - duplicate keys (the last would win) and numbers too long to convert.
_raw_decoder = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_int=_bounded_number, parse_float=_bounded_number)


class RawNumber(str):
    """A JSON number kept as its source text (so ``6.10`` stays ``6.10``)."""


def _raw_number(text: str) -> RawNumber:
    return RawNumber(text)


def loads_exact(text: str | bytes) -> Any:
    """Parse JSON keeping numbers as :class:`RawNumber` (for patch and XML paths)."""
    return json.loads(text, parse_float=_raw_number, parse_int=_raw_number)


_NUMBER_MARK = "\x00n:"
_NUMBER_RE = re.compile(rb'"\\u0000n:([-+0-9.eE]+)"')


def _mark_numbers(value: Any) -> Any:
    if isinstance(value, RawNumber):
        return _NUMBER_MARK + value
    if isinstance(value, dict):
        return {k: _mark_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_numbers(v) for v in value]
    return value


def dumps_exact(value: Any) -> bytes:
    """Serialise a :func:`loads_exact` tree, writing numbers back verbatim."""
    return _NUMBER_RE.sub(rb"\1", orjson.dumps(_mark_numbers(value)))


#: A JSON number a float would not write back as it was sent (``0.50``, ``1e3``, sixteen digits
#: or more), where a value may start. It also finds such text inside a string (``"剂量: 1.50"``):
#: that only costs the slower parse.
_REWRITTEN_NUMBER = re.compile(rb"[:,\[]\s*-?(?:\d+\.\d*0(?![0-9])|\d+(?:\.\d+)?[eE]|\d{16,})")


def loads_keeping_numbers(raw: bytes) -> Any:
    """JSON someone else wrote, to be passed on (a member's answer, a stored resource): parsed
    by orjson, unless it holds a number a float would rewrite; then by :func:`loads_exact`, so
    ``0.50`` stays ``0.50`` (FHIR decimals keep their precision) when
    :func:`dumps_keeping_numbers` writes it out again. Malformed JSON raises ``ValueError``."""
    return loads_exact(raw) if _REWRITTEN_NUMBER.search(raw) else orjson.loads(raw)


def _verbatim(value: Any) -> Any:
    if isinstance(value, RawNumber):
        return orjson.Fragment(str(value))
    if isinstance(value, str):  # other subclasses (a StrEnum …) as their plain base
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps_keeping_numbers(value: Any) -> bytes:
    """orjson's serialisation, writing :class:`RawNumber` values back verbatim (as fast as plain
    orjson where there are none: the hook runs only for them)."""
    return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_SUBCLASS, default=_verbatim)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def _error(text: str, pos: int, reason: str) -> BadRequest:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return BadRequest("YL-0100", reason=f"{reason} at line {line} column {col}")


def _skip_ws(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    return match.end() if match else pos


def _value_end(text: str, pos: int, where: str = "the resource") -> int:
    try:
        _, end = _raw_decoder.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        raise _error(text, exc.pos, exc.msg) from None
    except RecursionError:
        raise _error(text, pos, "nesting too deep") from None
    except _Refused as exc:
        if exc.key is not None:
            raise BadRequest("YL-0114", element=where, key=exc.key, expression=[where]) from None
        raise _error(text, pos, exc.reason) from None
    return end


def object_members(text: str, pos: int = 0) -> tuple[list[tuple[str, Span]], int]:
    """Return ``[(key, value_span)]`` of the object starting at ``pos`` and the end offset."""
    pos = _skip_ws(text, pos)
    if not text.startswith("{", pos):
        raise _error(text, pos, "expected an object")
    pos = _skip_ws(text, pos + 1)
    members: list[tuple[str, Span]] = []
    if text.startswith("}", pos):
        return members, pos + 1
    keys: set[str] = set()
    while True:
        if not text.startswith('"', pos):
            raise _error(text, pos, "expected a member name")
        try:
            key, pos = _scanstring(text, pos + 1)
        except json.JSONDecodeError as exc:
            raise _error(text, exc.pos, exc.msg) from None
        if key in keys:
            raise BadRequest("YL-0114", element="the resource", key=key, expression=[key])
        keys.add(key)
        pos = _skip_ws(text, pos)
        if not text.startswith(":", pos):
            raise _error(text, pos, "expected ':'")
        start = _skip_ws(text, pos + 1)
        end = _value_end(text, start, key)
        members.append((key, Span(start, end)))
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
            continue
        if text.startswith("}", pos):
            return members, pos + 1
        raise _error(text, pos, "expected ',' or '}'")


def array_items(text: str, pos: int) -> list[Span]:
    """Spans of the items of the array starting at ``pos``."""
    pos = _skip_ws(text, pos)
    if not text.startswith("[", pos):
        raise _error(text, pos, "expected an array")
    pos = _skip_ws(text, pos + 1)
    items: list[Span] = []
    if text.startswith("]", pos):
        return items
    while True:
        end = _value_end(text, pos, f"item {len(items)}")
        items.append(Span(pos, end))
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
            continue
        if text.startswith("]", pos):
            return items
        raise _error(text, pos, "expected ',' or ']'")


def decode_utf8(raw: bytes | bytearray) -> str:
    """FHIR JSON is UTF-8 (a UTF-8 byte order mark is tolerated and removed by the caller)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("YL-0100", reason=f"not UTF-8 (byte {exc.start})") from None


@dataclass
class ResourceText:
    """A resource as the client wrote it: parsed data plus each top-level member's exact text."""

    data: dict[str, Any]
    members: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes | str) -> ResourceText:
        text = decode_utf8(raw) if isinstance(raw, bytes | bytearray) else raw
        if text.startswith("\ufeff"):
            text = text[1:]
        members, end = object_members(text, 0)
        if _skip_ws(text, end) != len(text):
            raise _error(text, end, "unexpected data after the resource")
        member_text = {k: text[s.start : s.end] for k, s in members}
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:  # pragma: no cover - the scanner above caught it
            raise BadRequest("YL-0100", reason=str(exc)) from None
        return cls(data=data, members=member_text)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ResourceText:
        """Wrap a resource built in Python (numbers may be :class:`RawNumber`)."""
        members = {k: dumps_exact(v).decode() for k, v in data.items()}
        return cls(data=orjson.loads(dumps_exact(data)), members=members)

    @classmethod
    def of_plain_data(cls, data: dict[str, Any]) -> ResourceText:
        """Wrap a resource built in Python of plain JSON values (str, int, float, bool, None,
        dict, list), taking ownership of ``data``: one serialisation per member, no reparse."""
        return cls(data=data, members={k: orjson.dumps(v).decode() for k, v in data.items()})

    def copy(self) -> ResourceText:
        """A copy safe to rewrite: :meth:`replace_strings` and the writers replace top-level
        members, never change nested values in place."""
        return ResourceText(dict(self.data), dict(self.members))

    @property
    def resource_type(self) -> str | None:
        value = self.data.get("resourceType")
        return value if isinstance(value, str) else None

    def render(self, *, resource_id: str | None, meta: dict[str, Any] | None) -> bytes:
        """The stored form: ``resourceType``, ``id``, ``meta`` first, then the client's members."""
        parts = [f'"resourceType":{orjson.dumps(self.resource_type).decode()}']
        if resource_id is not None:
            parts.append(f'"id":{orjson.dumps(resource_id).decode()}')
        if meta:
            parts.append(f'"meta":{orjson.dumps(meta).decode()}')
        for key, value in self.members.items():
            if key in ("resourceType", "id", "meta"):
                continue
            parts.append(f"{orjson.dumps(key).decode()}:{value}")
        return ("{" + ",".join(parts) + "}").encode()

    def replace_strings(self, mapping: dict[str, str]) -> None:
        """Rewrite whole JSON string values (``urn:uuid:`` references in a transaction).

        Only members whose text contains a key are touched, in the text and in the parsed data
        alike; ``id`` and ``meta`` stay (a PUT entry needs its id, and meta.profile names the
        profiles to validate against).
        """
        if not mapping:
            return
        quoted = [(orjson.dumps(k).decode(), orjson.dumps(v).decode()) for k, v in mapping.items()]
        for key, value in self.members.items():
            new = value
            for old_text, new_text in quoted:
                if old_text in new:
                    new = new.replace(old_text, new_text)
            if new is not value:
                self.members[key] = new
                self.data[key] = _replace_in(self.data.get(key), mapping)


def _replace_in(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, str):
        return mapping.get(node, node)
    if isinstance(node, dict):
        return {k: _replace_in(v, mapping) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_in(v, mapping) for v in node]
    return node
