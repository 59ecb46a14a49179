"""RFC 6902 JSON Patch on a :func:`loads_exact` tree (numbers stay as the client wrote them).

Small enough to own: the PyPI packages either re-encode numbers as floats or copy the whole
document per operation.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from gateway.errors import BadRequest, Unprocessable
from gateway.fhir.json_text import RawNumber


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def _get(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, key = _parent(doc, parts)
    if isinstance(parent, list):
        index = len(parent) if key == "-" else int(key)
        if index < 0 or index > len(parent):
            raise IndexError(f"index {index} out of range")
        parent.insert(index, value)
    else:
        parent[key] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent, key = _parent(doc, parts)
    if isinstance(parent, list):
        del parent[int(key)]
    else:
        del parent[key]
    return doc


def _equal(a: Any, b: Any) -> bool:
    """RFC 6902 §4.6: numbers are equal by value (``1.0`` = ``1``), a number never equals a
    string (``10`` != ``"10"``), objects regardless of member order, arrays item by item."""
    if isinstance(a, RawNumber) or isinstance(b, RawNumber):
        return isinstance(a, RawNumber) and isinstance(b, RawNumber) and Decimal(a) == Decimal(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def apply_patch(document: Any, operations: Any) -> Any:
    """Apply ``operations`` to ``document`` (both :func:`loads_exact` trees), changing it in place."""
    if not isinstance(operations, list):
        raise BadRequest("YL-0600", index=0, reason="a JSON Patch document is an array of operations")
    doc = document
    for index, operation in enumerate(operations):
        try:
            op = operation["op"]
            parts = _pointer(operation["path"])
            if op == "add":
                doc = _add(doc, parts, copy.deepcopy(operation["value"]))
            elif op == "remove":
                doc = _remove(doc, parts)
            elif op == "replace":
                _get(doc, parts)
                doc = (
                    _add(_remove(doc, parts), parts, copy.deepcopy(operation["value"])) if parts else operation["value"]
                )
            elif op in ("move", "copy"):
                source = _pointer(operation["from"])
                value = copy.deepcopy(_get(doc, source))
                if op == "move":
                    doc = _remove(doc, source)
                doc = _add(doc, parts, value)
            elif op == "test":
                if not _equal(_get(doc, parts), operation["value"]):
                    raise Unprocessable("YL-0600", index=index, reason=f"test failed at {operation['path']}")
            else:
                raise ValueError(f"unknown op {op!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise Unprocessable("YL-0600", index=index, reason=f"{type(exc).__name__}: {exc}") from None
    return doc
