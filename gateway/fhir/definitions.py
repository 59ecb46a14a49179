"""FHIR R5 structure and search-parameter definitions, read from pre-generated data.

Why pre-generated: the official ``hl7.fhir.r5.core`` package is ~60 MB of StructureDefinitions
whose snapshots repeat every inherited element with its full documentation. The gateway needs
a few facts per element (JSON name, type, cardinality, summary/modifier flags, order), so
``scripts/build_fhir_definitions.py`` extracts them once into ``data/types.json`` (< 1 MB)
and ``data/search-parameters.json``, which are committed and shipped inside the wheel. Nothing
is downloaded or unpacked at run or test time (STYLE.md, rule 10), and loading is one
``orjson.loads`` per file, cached for the life of the process.

Layout of ``types.json``::

    {"fhirVersion": "5.0.0",
     "types": {"<TypeName>": {"kind": "primitive-type" | "complex-type" | "resource",
                              "base": "<BaseType>", "abstract": true?,
                              "json": "string" | "number" | "boolean"   (primitives only),
                              "elements": [<element>, ...]}}}           (snapshot order)

    <element> = {"name": "value[x]", "types": ["Quantity", ...],
                 "choices": {"valueQuantity": "Quantity", ...}?   (choice elements)
                 "array": true?, "min": 1?, "summary": true?, "modifier": true?,
                 "attr": true?      (XML attribute: Element.id, Extension.url, primitive value)
                 "targets": [...]?  (Reference/canonical target types)
                 "ref": "Questionnaire.item"?  (contentReference: children of that path)
                 "elements": [<element>, ...]?}  (BackboneElement / nested Element children)

Children are addressed by a *context*: a type name (``"HumanName"``) or a backbone path
(``"Patient.contact"``, ``"Timing.repeat"``). :func:`elements` returns a mapping from every
JSON name of a context (choice elements expanded: ``valueQuantity``…) to an
:class:`ElementInfo`, so ``element(context, name)`` is a dictionary lookup.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

import orjson

__all__ = [
    "ElementInfo",
    "JsonKind",
    "TypeInfo",
    "element",
    "elements",
    "mandatory_elements",
    "ordered_elements",
    "primitive_json_kind",
    "resource_types",
    "search_parameters",
    "summary_elements",
    "type_info",
]

JsonKind = Literal["string", "number", "boolean", "object", "resource", "xhtml"]
"""How an element's value is written in JSON.

``resource`` is an element of type ``Resource`` (``contained``, ``Bundle.entry.resource``…),
which XML wraps in an element named after the resource type; ``xhtml`` is ``Narrative.div``,
a string in JSON and embedded XHTML in XML.
"""


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """One JSON name of an element (a choice element yields one per allowed type)."""

    path: str
    """Definition path, e.g. ``Observation.value[x]`` or ``Patient.contact.name``."""
    name: str
    """JSON (and XML) name, e.g. ``valueQuantity``."""
    type: str
    """Type code for this name: ``Quantity``, ``BackboneElement``, ``string``…"""
    types: tuple[str, ...]
    """All type codes the definition allows."""
    json_kind: JsonKind
    children: str | None
    """Context of the child elements (type name or backbone path); None for primitives."""
    order: int
    """Position of the definition within its parent (choice names share it)."""
    min: int
    is_array: bool
    is_summary: bool
    is_modifier: bool
    is_choice: bool
    is_xml_attribute: bool
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TypeInfo:
    name: str
    kind: Literal["primitive-type", "complex-type", "resource"]
    base: str | None
    is_abstract: bool
    json: Literal["string", "number", "boolean"] | None
    """JSON representation of a primitive type; None for complex types and resources."""


@functools.cache
def _load(name: str) -> Any:
    return orjson.loads(resources.files("gateway.fhir").joinpath("data", name).read_bytes())


def _raw_types() -> dict[str, Any]:
    types: dict[str, Any] = _load("types.json")["types"]
    return types


@functools.cache
def _contexts() -> Mapping[str, tuple[ElementInfo, ...]]:
    """Every context (type or backbone path) -> its ElementInfos in definition order."""
    raw = _raw_types()
    contexts: dict[str, tuple[ElementInfo, ...]] = {}

    def json_kind(type_code: str, has_children: bool) -> JsonKind:
        if has_children:
            return "object"
        if type_code == "Resource":
            return "resource"
        if type_code == "xhtml":
            return "xhtml"
        info = raw.get(type_code)
        if info is None:
            # FHIRPath system types (primitive ``value``): not addressable as JSON members.
            return "string"
        if info["kind"] == "primitive-type":
            kind: JsonKind = info["json"]
            return kind
        return "object"

    def walk(context: str, entries: list[dict[str, Any]]) -> None:
        infos: list[ElementInfo] = []
        for order, entry in enumerate(entries):
            path = f"{context}.{entry['name']}"
            nested = entry.get("elements")
            if nested:
                walk(path, nested)
            names: dict[str, str] = entry.get("choices") or {
                entry["name"]: entry["types"][0] if entry["types"] else "BackboneElement"
            }
            for name, type_code in names.items():
                if nested:
                    children: str | None = path
                elif "ref" in entry:
                    children = entry["ref"]
                elif type_code in raw and raw[type_code]["kind"] != "primitive-type":
                    children = type_code
                else:
                    children = None
                infos.append(
                    ElementInfo(
                        path=path,
                        name=name,
                        type=type_code,
                        types=tuple(entry["types"]),
                        json_kind=json_kind(type_code, bool(nested) or "ref" in entry),
                        children=children,
                        order=order,
                        min=entry.get("min", 0),
                        is_array=entry.get("array", False),
                        is_summary=entry.get("summary", False),
                        is_modifier=entry.get("modifier", False),
                        is_choice="choices" in entry,
                        is_xml_attribute=entry.get("attr", False),
                        targets=tuple(entry.get("targets", ())),
                    )
                )
        contexts[context] = tuple(infos)

    for type_name, info in raw.items():
        walk(type_name, info["elements"])
    return MappingProxyType(contexts)


@functools.cache
def elements(context: str) -> Mapping[str, ElementInfo]:
    """JSON name -> ElementInfo for a type name or backbone path; empty if unknown."""
    return MappingProxyType({info.name: info for info in _contexts().get(context, ())})


@functools.cache
def choice_element_names() -> frozenset[str]:
    """Names of the choice elements of all types (``Observation.value[x]`` -> ``value``)."""
    return frozenset(
        info.path.rsplit(".", 1)[-1].removesuffix("[x]")
        for infos in _contexts().values()
        for info in infos
        if info.is_choice
    )


def ordered_elements(context: str) -> tuple[ElementInfo, ...]:
    """ElementInfos of a context in definition (XML) order; empty if unknown."""
    return _contexts().get(context, ())


def element(context: str, name: str) -> ElementInfo | None:
    """Element ``name`` (a JSON name such as ``valueQuantity``) of a type or backbone path."""
    return elements(context).get(name)


@functools.cache
def type_info(name: str) -> TypeInfo | None:
    raw = _raw_types().get(name)
    if raw is None:
        return None
    return TypeInfo(
        name=name,
        kind=raw["kind"],
        base=raw.get("base"),
        is_abstract=raw.get("abstract", False),
        json=raw.get("json"),
    )


def primitive_json_kind(type_name: str) -> Literal["string", "number", "boolean"] | None:
    """JSON representation of a primitive type (``integer64`` is a string); None otherwise."""
    info = type_info(type_name)
    return info.json if info is not None else None


@functools.cache
def resource_types() -> frozenset[str]:
    """Names of the concrete (non-abstract) R5 resource types."""
    return frozenset(
        name for name, raw in _raw_types().items() if raw["kind"] == "resource" and not raw.get("abstract", False)
    )


@functools.cache
def summary_elements(resource_type: str) -> frozenset[str]:
    """Top-level JSON names kept by ``_summary=true``: summary-flagged plus mandatory ones."""
    return frozenset(info.name for info in ordered_elements(resource_type) if info.is_summary or info.min > 0)


@functools.cache
def mandatory_elements(resource_type: str) -> frozenset[str]:
    """Top-level JSON names with min > 0 (for a choice, every concrete name is listed)."""
    return frozenset(info.name for info in ordered_elements(resource_type) if info.min > 0)


def search_parameters() -> list[dict[str, Any]]:
    """Every core R5 SearchParameter (url, code, base, type, expression…), sorted by url.

    Returns the cached list itself: callers must not mutate it.
    """
    params: list[dict[str, Any]] = _load("search-parameters.json")
    return params
