"""The definitions the kit generates its tests from.

Everything here is data read through `importlib.resources`: the alliance CapabilityStatement,
StructureDefinitions, SearchParameters, CodeSystems, ValueSets and NamingSystems of the `profiles`
package, the examples in `profiles.examples`, and the subset of the R5 core SearchParameters the
CapabilityStatement names (`conformance/data`). Nothing is read from `gateway` or from the server
under test, so a vendor's server cannot make its own test easier by declaring less.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

EXPECTATION_URL = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-expectation"
COMBINATION_URL = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-parameter-combination"
CHAIN_URL = "http://yaolian.org/fhir/StructureDefinition/capabilitystatement-search-chain"
ALLIANCE_CS = "CapabilityStatement-alliance-server.json"
POL_RE = re.compile(r"POL-\d\d")
FORMAT_RE = re.compile(r"format (\^.*\$)")

Json = dict[str, Any]


def _read_json(package: str, name: str) -> Any:
    return json.loads(resources.files(package).joinpath(name).read_text(encoding="utf-8"))


def _expectation(element: Json | None, default: str = "SHALL") -> str:
    for ext in (element or {}).get("extension", []):
        if ext.get("url") == EXPECTATION_URL:
            return str(ext.get("valueCode", default))
    return default


def policy_refs(text: str | None) -> list[str]:
    """The POL-xx requirement ids cited in a definition's description or documentation."""
    return sorted(set(POL_RE.findall(text or "")))


@dataclass(frozen=True)
class SearchParamReq:
    """One search parameter the alliance requires of a resource type."""

    resource_type: str
    name: str
    type: str
    expectation: str
    definition: Json
    policies: tuple[str, ...]

    @property
    def required(self) -> bool:
        return self.expectation == "SHALL"

    @property
    def expression(self) -> str:
        return expression_for(self.definition, self.resource_type)

    @property
    def comparators(self) -> tuple[str, ...]:
        declared = self.definition.get("comparator")
        if declared:
            return tuple(declared)
        return ("eq", "ne", "gt", "ge", "lt", "le") if self.type in ("date", "quantity", "number") else ()


@dataclass(frozen=True)
class Expected:
    """A requirement with its expectation: an include, a chain, a combination, an interaction."""

    value: str
    expectation: str

    @property
    def required(self) -> bool:
        return self.expectation == "SHALL"


@dataclass
class ResourceReq:
    """What the alliance requires for one resource type (one `rest.resource` entry)."""

    type: str
    expectation: str
    profile: str | None
    documentation: str
    interactions: list[Expected]
    search_params: list[SearchParamReq]
    includes: list[Expected]
    revincludes: list[Expected]
    combinations: list[tuple[list[str], str]]
    chains: list[Expected]
    policies: list[str] = field(default_factory=list)

    def interaction(self, code: str) -> Expected | None:
        return next((i for i in self.interactions if i.value == code), None)

    def param(self, name: str) -> SearchParamReq | None:
        return next((p for p in self.search_params if p.name == name), None)


def expression_for(definition: Json, resource_type: str) -> str:
    """The part of a (possibly multi-base) SearchParameter expression that applies to one type.

    `resolve() is X` cannot be evaluated without a server, so it is rewritten into a test of the
    literal reference, which is what the kit writes anyway.
    """
    expression = str(definition.get("expression", ""))
    parts = [p.strip() for p in _split_union(expression)]
    mine = [p for p in parts if p.lstrip("(").startswith(resource_type + ".") or p.startswith("Resource.")]
    chosen = " | ".join(mine or parts)
    if chosen.startswith("Resource."):
        chosen = resource_type + chosen[len("Resource") :]
    return re.sub(r"\.where\(resolve\(\) is (\w+)\)", r".where(reference.startsWith('\1/'))", chosen)


def _split_union(expression: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in expression:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


@dataclass
class Definitions:
    """All definitions in one place, loaded once."""

    capability: Json
    structure_definitions: dict[str, Json]
    search_parameters: dict[str, Json]
    code_systems: dict[str, Json]
    value_sets: dict[str, Json]
    identifier_formats: dict[str, re.Pattern[str]]
    examples: list[Json]
    resources: list[ResourceReq]

    def resource(self, type_: str) -> ResourceReq | None:
        return next((r for r in self.resources if r.type == type_), None)

    @property
    def profiled(self) -> list[ResourceReq]:
        return [r for r in self.resources if r.profile]

    def example(self, file: str) -> Json:
        return _read_json("profiles.examples", file)  # type: ignore[no-any-return]

    def extension_definition(self, url: str) -> Json | None:
        sd = self.structure_definitions.get(url)
        return sd if sd and sd.get("type") == "Extension" else None


@cache
def load() -> Definitions:
    structure_definitions: dict[str, Json] = {}
    search_parameters: dict[str, Json] = {}
    code_systems: dict[str, Json] = {}
    value_sets: dict[str, Json] = {}
    identifier_formats: dict[str, re.Pattern[str]] = {}
    for entry in sorted(resources.files("profiles").iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".json") or "-" not in entry.name:
            continue
        kind = entry.name.split("-", 1)[0]
        if kind not in ("StructureDefinition", "SearchParameter", "CodeSystem", "ValueSet", "NamingSystem"):
            continue
        data = json.loads(entry.read_text(encoding="utf-8"))
        if kind == "StructureDefinition":
            structure_definitions[data["url"]] = data
        elif kind == "SearchParameter":
            search_parameters[data["url"]] = data
        elif kind == "CodeSystem":
            code_systems[data["url"]] = data
        elif kind == "ValueSet":
            value_sets[data["url"]] = data
        else:
            for uid in data.get("uniqueId", []):
                match = FORMAT_RE.search(uid.get("comment", ""))
                if uid.get("type") == "uri" and match:
                    identifier_formats[uid["value"]] = re.compile(match.group(1))
    for sp in _read_json("conformance.data", "core-search-parameters.json")["parameters"]:
        search_parameters.setdefault(sp["url"], sp)
    capability = _read_json("profiles", ALLIANCE_CS)
    examples = _read_json("profiles.examples", "index.json")
    reqs = [_resource_req(r, search_parameters) for r in capability["rest"][0].get("resource", [])]
    return Definitions(
        capability,
        structure_definitions,
        search_parameters,
        code_systems,
        value_sets,
        identifier_formats,
        examples,
        reqs,
    )


def _resource_req(entry: Json, search_parameters: dict[str, Json]) -> ResourceReq:
    type_ = entry["type"]
    params = []
    for sp in entry.get("searchParam", []):
        definition = search_parameters.get(sp.get("definition", ""), {})
        if not definition:
            definition = {"code": sp["name"], "type": sp["type"], "expression": ""}
        text = " ".join([sp.get("documentation", ""), definition.get("description", "")])
        params.append(
            SearchParamReq(type_, sp["name"], sp["type"], _expectation(sp), definition, tuple(policy_refs(text)))
        )

    def listed(key: str) -> list[Expected]:
        values = entry.get(key, [])
        meta = entry.get("_" + key, [])
        return [Expected(v, _expectation(meta[i] if i < len(meta) else None)) for i, v in enumerate(values)]

    combinations, chains = [], []
    for ext in entry.get("extension", []):
        if ext.get("url") == COMBINATION_URL:
            parts = [e["valueString"] for e in ext.get("extension", []) if e.get("url") == "required"]
            combinations.append((parts, _expectation(ext)))
        elif ext.get("url") == CHAIN_URL:
            chain = next(e["valueString"] for e in ext.get("extension", []) if e.get("url") == "chain")
            chains.append(Expected(chain, _expectation(ext)))
    return ResourceReq(
        type=type_,
        expectation=_expectation(entry),
        profile=entry.get("profile"),
        documentation=entry.get("documentation", ""),
        interactions=[Expected(i["code"], _expectation(i)) for i in entry.get("interaction", [])],
        search_params=params,
        includes=listed("searchInclude"),
        revincludes=listed("searchRevInclude"),
        combinations=combinations,
        chains=chains,
        policies=policy_refs(entry.get("documentation")),
    )
