"""Bundles written as text around stored resource bytes (no re-encoding of resources)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.clock import now_instant

_MODES = {mode: b',"search":{"mode":"' + mode.encode() + b'"}' for mode in ("match", "include", "outcome")}


@dataclass
class Entry:
    full_url: str | None = None
    resource: bytes | None = None
    search_mode: str | None = None
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None

    def render(self) -> bytes:
        if self.request is None and self.response is None and self.full_url and self.resource is not None:
            # a search entry, most of every searchset: one concatenation (a federated page has ~200)
            mode = _MODES.get(self.search_mode) if self.search_mode else b""
            if mode is not None:
                return b'{"fullUrl":' + orjson.dumps(self.full_url) + b',"resource":' + self.resource + mode + b"}"
        parts: list[bytes] = []
        if self.full_url:
            parts.append(b'"fullUrl":' + orjson.dumps(self.full_url))
        if self.resource is not None:
            parts.append(b'"resource":' + self.resource)
        if self.search_mode:
            parts.append(b'"search":{"mode":' + orjson.dumps(self.search_mode) + b"}")
        if self.request:
            parts.append(b'"request":' + orjson.dumps(self.request))
        if self.response:
            response = dict(self.response)
            outcome = response.pop("outcome", None)
            text = orjson.dumps(response)
            if outcome is not None:
                text = text[:-1] + (b"," if len(text) > 2 else b"") + b'"outcome":' + outcome + b"}"
            parts.append(b'"response":' + text)
        return b"{" + b",".join(parts) + b"}"


def render_bundle(
    bundle_type: str,
    entries: Iterable[Entry],
    *,
    total: int | None = None,
    links: list[tuple[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now_instant()},
        "type": bundle_type,
    }
    if extra:
        head.update(extra)
    if total is not None:
        head["total"] = total
    if links:
        head["link"] = [{"relation": rel, "url": url} for rel, url in links]
    text = orjson.dumps(head)
    body = b",".join(e.render() for e in entries)
    return text[:-1] + b',"entry":[' + body + b"]}"
