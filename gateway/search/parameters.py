"""Search parameter definitions, read from the R5 core package and the alliance profiles.

Nothing is hand-listed: every SearchParameter whose ``base`` names a supported resource type
(or ``Resource``/``DomainResource``) becomes a :class:`SearchParam` with its FHIRPath
expression compiled once. ``resolve() is X`` filters are turned into target-type filters,
because fhirpathpy cannot resolve references and the index only needs the type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, cast

import orjson
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models as fhirpath_models

from gateway.fhir import definitions
from gateway.search.fastpath import compile_simple, first_element

SUPPORTED_TYPES = ("token", "string", "date", "reference", "number", "quantity", "uri", "composite")
# Parameters served from columns of the resource table, not from index tables.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})
# R5 parameters whose meaning is not an element value (membership in Lists etc.): not indexed.
EXCLUDED_PARAMS = frozenset({"_in", "_list", "_has", "_text", "_content", "_filter", "_query", "_type"})

_RESOLVE_IS = re.compile(r"\.where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)")
Evaluator = Callable[[Any], list[Any]]


@dataclass(frozen=True)
class Branch:
    """One ``|``-separated part of an expression that applies to this resource type."""

    evaluate: Evaluator
    target_types: frozenset[str]
    #: the top-level element the branch reads first, if its absence means no value (fastpath.first_element)
    first: str | None = None


@dataclass
class Component:
    definition: str
    evaluate: Evaluator
    param: SearchParam | None = None


@dataclass
class SearchParam:
    code: str
    type: str
    url: str
    resource_type: str
    expression: str
    branches: list[Branch]
    targets: frozenset[str] = frozenset()
    modifiers: frozenset[str] = frozenset()
    comparators: frozenset[str] = frozenset()
    components: list[Component] = field(default_factory=list)
    chains: frozenset[str] = frozenset()
    description: str = ""

    @property
    def supported(self) -> bool:
        return self.type in SUPPORTED_TYPES


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression on top-level ``|`` (outside parentheses and quotes)."""
    parts: list[str] = []
    depth = 0
    quote = False
    start = 0
    for i, ch in enumerate(expression):
        if ch == "'" and (i == 0 or expression[i - 1] != "\\"):
            quote = not quote
        elif quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]


def _strip_parens(text: str) -> str:
    while text.startswith("(") and text.endswith(")"):
        inner = text[1:-1]
        depth = 0
        balanced = True
        for ch in inner:
            depth += ch == "("
            depth -= ch == ")"
            if depth < 0:
                balanced = False
                break
        if not balanced or depth != 0:
            break
        text = inner.strip()
    return text


def _branch_root(branch: str) -> str:
    match = re.match(r"\(*\s*([A-Za-z]+)", branch)
    return match.group(1) if match else ""


def _fhirpath(expression: str) -> Evaluator:
    # fhirpathpy annotates its compiled expression as taking (resource, context), but the
    # context parameter defaults to None (fhirpathpy.engine.util.set_paths.__call__).
    return cast(Evaluator, fhirpath_compile(expression, fhirpath_models["r5"]))


@cache
def _compile(expression: str) -> Evaluator:
    """The direct walker for simple paths (µs), fhirpathpy for the rest (tens of µs)."""
    return compile_simple(expression) or _fhirpath(expression)


@cache
def _compile_relative(expression: str) -> Evaluator:
    """Composite components are evaluated on the composite's item, not on a resource."""
    return compile_simple(expression, relative=True) or _fhirpath(expression)


def branches_for(expression: str, resource_type: str) -> list[Branch]:
    out: list[Branch] = []
    for raw in split_union(expression):
        branch = _strip_parens(raw)
        root = _branch_root(branch)
        if root in ("Resource", "DomainResource"):
            branch = re.sub(rf"^(\(*\s*){root}\b", rf"\g<1>{resource_type}", branch)
        elif root != resource_type:
            continue
        targets = frozenset(_RESOLVE_IS.findall(branch))
        branch = _RESOLVE_IS.sub("", branch)
        out.append(Branch(_compile(branch), targets, first_element(branch)))
    return out


def _load_profile_parameters() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    root = resources.files("profiles")
    for entry in _walk(root):
        if entry.name.startswith("SearchParameter-") and entry.name.endswith(".json"):
            found.append(orjson.loads(entry.read_bytes()))
    return found


def _walk(node: Any) -> Iterable[Any]:
    for child in node.iterdir():
        if child.is_dir():
            yield from _walk(child)
        else:
            yield child


@cache
def all_definitions() -> tuple[dict[str, Any], ...]:
    """Core SearchParameters plus the alliance's own from ``profiles/``."""
    return tuple(definitions.search_parameters()) + tuple(_load_profile_parameters())


def _build(defn: dict[str, Any], resource_type: str, by_url: dict[str, dict[str, Any]]) -> SearchParam:
    expression = defn.get("expression") or ""
    param = SearchParam(
        code=defn["code"],
        type=defn["type"],
        url=defn.get("url", ""),
        resource_type=resource_type,
        expression=expression,
        branches=branches_for(expression, resource_type) if expression else [],
        targets=frozenset(defn.get("target") or ()),
        modifiers=frozenset(defn.get("modifier") or ()),
        comparators=frozenset(defn.get("comparator") or ()),
        chains=frozenset(defn.get("chain") or ()),
        description=(defn.get("description") or "")[:300],
    )
    for comp in defn.get("component") or ():
        sub = by_url.get(comp.get("definition", ""))
        component = Component(comp.get("definition", ""), _compile_relative(comp["expression"]))
        if sub is not None:
            component.param = SearchParam(
                code=sub["code"],
                type=sub["type"],
                url=sub.get("url", ""),
                resource_type=resource_type,
                expression="",
                branches=[],
            )
        param.components.append(component)
    return param


@cache
def parameters_for(resource_type: str) -> dict[str, SearchParam]:
    """All usable search parameters of a type, by code (later definitions override earlier)."""
    defs = all_definitions()
    by_url = {d.get("url", ""): d for d in defs}
    out: dict[str, SearchParam] = {}
    for defn in defs:
        bases = defn.get("base") or ()
        if resource_type not in bases and "Resource" not in bases and "DomainResource" not in bases:
            continue
        if defn.get("type") not in SUPPORTED_TYPES:
            continue
        code = defn["code"]
        if code in EXCLUDED_PARAMS:
            continue
        if code in COLUMN_PARAMS:
            out[code] = SearchParam(code, defn["type"], defn.get("url", ""), resource_type, "", [])
            continue
        param = _build(defn, resource_type, by_url)
        if param.branches or param.components:
            if param.type == "composite" and any(c.param is None for c in param.components):
                continue
            out[code] = param
    return out
