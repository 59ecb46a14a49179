"""FHIR R5 ConceptMaps as code tables: loaded once, validated against the R5 model, indexed.

Translation is a dictionary lookup on ``(source system, code)``. R5 target ``property``
entries (e.g. ``frequency``/``period``/``periodUnit`` for a frequency code) come back as a
plain dict so a mapping rule can spread them onto FHIR elements such as ``Timing.repeat``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from adapters.errors import ConceptMapError

__all__ = ["ConceptMap", "Target", "load_conceptmap"]

_PROPERTY_VALUE_KEYS = (
    "valueCode",
    "valueString",
    "valueInteger",
    "valueDecimal",
    "valueBoolean",
    "valueDateTime",
    "valueCoding",
)


@dataclass(frozen=True, slots=True)
class Target:
    system: str
    code: str
    display: str
    properties: dict[str, Any]


@dataclass(slots=True)
class ConceptMap:
    id: str
    url: str
    source_systems: tuple[str, ...]
    forward: dict[tuple[str, str], list[Target]] = field(default_factory=dict)
    by_code: dict[str, list[Target]] = field(default_factory=dict)
    reverse: dict[tuple[str, str], list[Target]] = field(default_factory=dict)
    _targets: frozenset[str] | None = None

    def translate(self, code: str, system: str | None = None) -> list[Target]:
        """Targets for ``code``; without a system, any group's source matches."""
        if system:
            return self.forward.get((system, code), [])
        return self.by_code.get(code, [])

    def untranslate(self, code: str, system: str | None = None) -> list[Target]:
        """Source concepts that map to ``code`` (used by the FHIR -> source direction)."""
        if system:
            return self.reverse.get((system, code), [])
        return [t for (_, c), ts in self.reverse.items() if c == code for t in ts]

    def target_codes(self) -> frozenset[str]:
        if self._targets is None:
            self._targets = frozenset(t.code for ts in self.forward.values() for t in ts)
        return self._targets


def load_conceptmap(path: Path) -> ConceptMap:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConceptMapError(f"ConceptMap does not load: {exc}", file=str(path)) from exc
    from fhir.resources.conceptmap import ConceptMap as R5ConceptMap

    try:
        R5ConceptMap.model_validate(data)
    except Exception as exc:  # pydantic ValidationError; keep the text, not the trace
        raise ConceptMapError(f"not a valid R5 ConceptMap: {exc}", file=str(path)) from exc
    cmap = ConceptMap(
        id=data.get("id", path.stem),
        url=data.get("url", ""),
        source_systems=tuple(g.get("source", "") for g in data.get("group", [])),
    )
    for group in data.get("group", []):
        source = group.get("source", "")
        target_system = group.get("target", "")
        for element in group.get("element", []):
            code = element.get("code", "")
            for tgt in element.get("target", []):
                if tgt.get("relationship") == "not-related-to":
                    continue
                props = {}
                for prop in tgt.get("property", []):
                    for key in _PROPERTY_VALUE_KEYS:
                        if key in prop:
                            props[prop["code"]] = prop[key]
                            break
                target = Target(target_system, tgt.get("code", ""), tgt.get("display", ""), props)
                cmap.forward.setdefault((source, code), []).append(target)
                cmap.by_code.setdefault(code, []).append(target)
                back = Target(source, code, element.get("display", ""), {})
                cmap.reverse.setdefault((target_system, target.code), []).append(back)
    return cmap
