"""A neutral tree for record-shaped input (a JSON object, a CSV row as a dict).

Paths are dotted keys: ``patient.name``, ``items[*]`` (iterate), and inside an ``each`` a
leading dot reads the current item: ``.code``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.contract import Issue
from adapters.errors import StructureError

__all__ = ["RecordPath", "RecordPathSyntax", "RecordTree"]


@dataclass(frozen=True, slots=True)
class RecordPath:
    keys: tuple[str, ...]
    relative: bool
    text: str


class RecordPathSyntax:
    def compile(self, text: str) -> RecordPath:
        text = text.strip()
        relative = text.startswith(".")
        body = text[1:] if relative else text
        keys = tuple(k.removesuffix("[*]") for k in body.split(".") if k)
        if not keys or any(not k.replace("_", "").replace("-", "").isalnum() for k in keys):
            raise ValueError("expected dotted keys such as patient.name, items[*] or .code")
        return RecordPath(keys, relative, text)


@dataclass(frozen=True, slots=True)
class _Ctx:
    node: Any
    group: int | None = None


class RecordTree:
    def __init__(self, record: dict[str, Any], key: str) -> None:
        self.record = record
        self.root = _Ctx(record)
        self.key = key
        self.used: set[str] = set()

    @classmethod
    def from_json(cls, raw: bytes) -> RecordTree:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StructureError(
                f"input is not JSON: {exc}",
                [Issue("fatal", "structure", en=f"input is not JSON: {exc}", zh="输入不是 JSON", error_code="YL-2102")],
            ) from None
        if not isinstance(record, dict):
            raise StructureError("input is not a JSON object")
        return cls(record, hashlib.sha256(raw).hexdigest()[:16])

    def _walk(self, path: RecordPath, ctx: _Ctx) -> Any:
        node = ctx.node if path.relative else self.record
        if not path.relative:
            self.used.add(path.keys[0])
        for key in path.keys:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    def read(self, path: RecordPath, ctx: _Ctx) -> str:
        value = self._walk(path, ctx)
        if value is None or isinstance(value, dict | list):
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def iterate(self, path: RecordPath, ctx: _Ctx) -> list[_Ctx]:
        value = self._walk(path, ctx)
        items = value if isinstance(value, list) else ([value] if value is not None else [])
        return [_Ctx(item, ctx.group) for item in items]

    def groups(self, path: RecordPath) -> list[_Ctx]:
        return [_Ctx(c.node, i) for i, c in enumerate(self.iterate(path, self.root))]

    def group_of(self, ctx: _Ctx) -> int | None:
        return ctx.group

    def location(self, path: RecordPath, ctx: _Ctx) -> str:
        return path.text

    def unused(self, ignore: Sequence[RecordPath]) -> list[str]:
        skip = {p.keys[0] for p in ignore}
        return [k for k, v in self.record.items() if v not in (None, "") and k not in self.used | skip]

    def message_key(self) -> str:
        return self.key
