"""The conformance resources shipped in the ``profiles`` package, loaded once per process."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson

__all__ = ["Conformance", "conformance"]

BASE = "http://yaolian.org/fhir/"


class Conformance:
    """StructureDefinitions, CodeSystems, ValueSets, NamingSystems and SearchParameters by
    canonical URL (``url|version`` is accepted and the version ignored)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.by_type: dict[str, dict[str, dict[str, Any]]] = {}
        for item in items:
            url = item.get("url")
            if url:
                self.by_type.setdefault(item["resourceType"], {})[url] = item

    def get(self, resource_type: str, url: str) -> dict[str, Any] | None:
        return self.by_type.get(resource_type, {}).get(url.split("|", 1)[0])

    def all(self, resource_type: str) -> list[dict[str, Any]]:
        return list(self.by_type.get(resource_type, {}).values())


@functools.cache
def conformance() -> Conformance:
    folder = resources.files("profiles")
    items: list[dict[str, Any]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        data = orjson.loads(entry.read_bytes())
        if data.get("resourceType") == "Bundle":
            items += [e["resource"] for e in data.get("entry", [])]
        else:
            items.append(data)
    return Conformance(items)
