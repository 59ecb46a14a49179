"""Local terminology: ``$validate-code``, ``$lookup`` and ``$translate`` without a server.

Code systems and value sets come from ``profiles/`` (ours, plus expansions of the R5 core value
sets our required bindings use); concept maps from ``mappings/conceptmaps/*.json``. Value sets are
expanded lazily and cached: explicit concepts, whole code systems, ``regex`` / ``=`` / ``in``
filters on ``code`` and nested value sets. A code system whose code list is not distributed
(ICD-10 China, WS 364 dosage forms) is accepted on its format (:mod:`identifiers`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson

from gateway.validation._conformance import conformance
from gateway.validation.identifiers import FORMATS

__all__ = ["in_value_set", "lookup", "translate", "validate_code"]


@dataclass(slots=True)
class _Expansion:
    codes: dict[tuple[str, str], str] = field(default_factory=dict)  # (system, code) -> display
    whole_systems: set[str] = field(default_factory=set)
    filters: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)
    unresolved: bool = False  # something could not be expanded: membership may be unknown


def _concepts(concepts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in concepts:
        out.append(c)
        out += _concepts(c.get("concept", []))
    return out


@functools.cache
def _code_system_index(system: str) -> dict[str, dict[str, Any]] | None:
    cs = conformance().get("CodeSystem", system)
    if cs is None or cs.get("content") not in ("complete", "fragment"):
        return None
    return {c["code"]: c for c in _concepts(cs.get("concept", []))}


@functools.cache
def _expansion(url: str) -> _Expansion | None:
    vs = conformance().get("ValueSet", url)
    if vs is None:
        return None
    exp = _Expansion()
    for c in vs.get("expansion", {}).get("contains", []):
        exp.codes[(c["system"], c["code"])] = c.get("display", c["code"])
    for inc in vs.get("compose", {}).get("include", []):
        for nested in inc.get("valueSet", []):
            sub = _expansion(nested)
            if sub is None:
                exp.unresolved = True
                continue
            exp.codes.update(sub.codes)
            exp.whole_systems |= sub.whole_systems
            exp.filters += sub.filters
            exp.unresolved |= sub.unresolved
        system = inc.get("system")
        if system is None:
            continue
        if "concept" in inc:
            index = _code_system_index(system) or {}
            for c in inc["concept"]:
                display = c.get("display") or index.get(c["code"], {}).get("display", c["code"])
                exp.codes[(system, c["code"])] = display
        elif "filter" in inc:
            for flt in inc["filter"]:
                op, value = flt.get("op"), flt.get("value", "")
                if flt.get("property") != "code" or op not in ("regex", "=", "in"):
                    exp.unresolved = True
                elif op == "regex":
                    exp.filters.append((system, re.compile(value)))
                else:
                    codes = value.split(",") if op == "in" else [value]
                    exp.filters.append(
                        (system, re.compile("^(" + "|".join(re.escape(c.strip()) for c in codes) + ")$"))
                    )
        else:
            exp.whole_systems.add(system)
    return exp


def _display(system: str, code: str) -> str | None:
    index = _code_system_index(system)
    if index and code in index:
        return index[code].get("display")
    return None


def in_value_set(url: str, system: str | None, code: str) -> tuple[bool | None, str | None]:
    """(member?, display). ``None`` when the value set is unknown or cannot decide."""
    exp = _expansion(url)
    if exp is None:
        return None, None
    display: str | None
    if system is None:  # a bare ``code`` element: any system of the value set
        for (_, c), display in exp.codes.items():
            if c == code:
                return True, display
        for sys_ in exp.whole_systems:
            ok, display, _ = _in_system(sys_, code)
            if ok:
                return True, display
        return (None if exp.unresolved else False), None
    if (system, code) in exp.codes:
        return True, exp.codes[(system, code)]
    for sys_, pattern in exp.filters:
        if sys_ == system and pattern.search(code):
            return _in_system(system, code)[0] is not False, _display(system, code)
    if system in exp.whole_systems:
        ok, display, _ = _in_system(system, code)
        return ok, display
    return (None if exp.unresolved else False), None


def _in_system(system: str, code: str) -> tuple[bool | None, str | None, str]:
    index = _code_system_index(system)
    if index is not None:
        if code in index:
            return True, index[code].get("display"), ""
        return False, None, f"code {code} is not in code system {system}"
    fmt = FORMATS.get(system)
    if fmt is not None:
        if fmt.pattern.match(code):
            return True, None, f"{system}: code list not distributed; format checked"
        return False, None, f"{code} is not a valid {fmt.name_en}"
    return None, None, f"code system {system} is not known here"


def validate_code(system: str, code: str, valueset: str | None = None) -> tuple[bool, str | None, str]:
    """``$validate-code``: (valid, display, message). With ``valueset``, membership in it;
    without, the code in the code system (or its format when the list is not distributed)."""
    if valueset is not None:
        if conformance().get("ValueSet", valueset) is None:
            return False, None, f"value set {valueset} is not known"
        member, display = in_value_set(valueset, system, code)
        if member:
            return True, display or _display(system, code), ""
        if member is None:
            return False, None, f"cannot decide whether {system}|{code} is in {valueset}"
        return False, None, f"{system}|{code} is not in value set {valueset}"
    ok, display, message = _in_system(system, code)
    return bool(ok), display, message


def lookup(system: str, code: str) -> dict[str, Any] | None:
    """``$lookup``: name, version, display, designations and properties, or None."""
    cs = conformance().get("CodeSystem", system)
    index = _code_system_index(system)
    if cs is None or index is None or code not in index:
        return None
    concept = index[code]
    return {
        "name": cs.get("name"),
        "version": cs.get("version"),
        "system": system,
        "code": code,
        "display": concept.get("display"),
        "definition": concept.get("definition"),
        "designation": concept.get("designation", []),
        "property": concept.get("property", []),
    }


@functools.cache
def _concept_maps() -> tuple[dict[str, Any], ...]:
    try:
        folder = resources.files("mappings").joinpath("conceptmaps")
        entries = sorted(folder.iterdir(), key=lambda e: e.name) if folder.is_dir() else []
    except (ModuleNotFoundError, FileNotFoundError):
        return ()
    maps = []
    for entry in entries:
        if entry.name.endswith(".json"):
            data = orjson.loads(entry.read_bytes())
            if data.get("resourceType") == "ConceptMap":
                maps.append(data)
    return tuple(maps)


def translate(conceptmap_url_or_id: str, system: str, code: str) -> list[dict[str, Any]]:
    """``$translate``: the targets of ``system|code`` in the concept map (by url, id or name),
    each ``{relationship, system, code, display}``; empty if no map or no match."""
    key = conceptmap_url_or_id.split("|", 1)[0]
    matches: list[dict[str, Any]] = []
    for cm in _concept_maps():
        if key not in (cm.get("url"), cm.get("id"), cm.get("name")):
            continue
        for group in cm.get("group", []):
            if group.get("source") not in (None, system):
                continue
            for element in group.get("element", []):
                if element.get("code") != code:
                    continue
                for target in element.get("target", []):
                    matches.append(
                        {
                            "relationship": target.get("relationship") or target.get("equivalence", "equivalent"),
                            "system": group.get("target"),
                            "code": target.get("code"),
                            "display": target.get("display"),
                        }
                    )
    return matches
