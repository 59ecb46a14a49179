"""The compiled FHIRPath closures give fhirpathpy's results on every constraint in profiles/.

Each constraint expression of the snapshots (our ``yl-*`` invariants and the R5 core ones the
compiler accepts) is evaluated on the examples and on mutations of them, both by fhirpathpy and
by the closure; whenever the closure answers (does not raise ``Unsure``) the answers must be
equal, and fhirpathpy must not have raised.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import re
from collections.abc import Iterator
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from gateway.validation._conformance import conformance
from gateway.validation._fhirpath import Unsure, closure, compiled

EXAMPLES = resources.files("profiles").joinpath("examples")
FILES = sorted(e.name for e in EXAMPLES.iterdir() if e.name.endswith(".json") and e.name != "index.json")
REPLACEMENTS: list[Any] = [
    None, "", "x", "village", "township", "snapshot", "transfer", "shortage", "2025-13-01", "1990-01-01",
    0, -1, 12, 13, 84, 85, 12.5, 84.0, 1e300, True, False, [], {}, ["x"], [{}], {"x": 1}, [1, 2],
]  # fmt: skip


def _constraints() -> dict[str, tuple[str, set[str]]]:
    """expression -> (key, contexts): a resource type, or "" for an element or extension."""
    out: dict[str, tuple[str, set[str]]] = {}
    for sd in conformance().all("StructureDefinition"):
        for element in sd.get("snapshot", {}).get("element", []):
            path = element["path"]
            context = path if "." not in path and path != "Extension" else ""
            for c in element.get("constraint", []):
                out.setdefault(c["expression"], (c["key"], set()))[1].add(context)
    return out


CONSTRAINTS = _constraints()
OUR_KEYS = {key for key, _ in CONSTRAINTS.values() if key.startswith("yl-")}


def _example(name: str) -> dict[str, Any]:
    return json.loads(EXAMPLES.joinpath(name).read_text("utf-8"))  # type: ignore[no-any-return]


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _mutate(resource: dict[str, Any], rng: random.Random, steps: int) -> dict[str, Any]:
    """Replace, drop, duplicate, shadow with a primitive extension, or retype elements."""
    mutated = copy.deepcopy(resource)
    for _ in range(steps):
        paths = [p for p in _paths(mutated) if p != ("resourceType",)]
        if not paths:
            break
        path = rng.choice(paths)
        parent = mutated
        for step in path[:-1]:
            parent = parent[step]
        last, op = path[-1], rng.random()
        if op < 0.2 and isinstance(parent, dict):
            del parent[last]
        elif op < 0.3 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        elif op < 0.37 and isinstance(parent, dict):
            parent["_" + str(last)] = {"extension": [{"url": "x", "valueString": "y"}]}
        elif op < 0.42 and isinstance(parent[last], dict):
            parent[last]["resourceType"] = "Patient"
        elif op < 0.5 and isinstance(parent, dict) and str(last).startswith("value"):
            parent["valueString" if last != "valueString" else "valueInteger"] = parent.pop(last)
        else:
            parent[last] = copy.deepcopy(rng.choice(REPLACEMENTS))
    return mutated


def _fragments(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _fragments(v)
    elif isinstance(node, list):
        for v in node:
            yield from _fragments(v)


def _normal(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


@functools.cache
def _reference(expression: str) -> Any:
    return fhirpath_compile(expression, models["r5"])


@functools.cache
def _closure(expression: str, root: str | None) -> Any:
    return closure(expression, root)


def _failure(exc: Exception) -> tuple[str, str, str]:
    return ("error", type(exc).__name__, re.sub(r" at 0x[0-9a-f]+", "", str(exc)))


def _cases(name: str, mutations: int) -> Iterator[dict[str, Any]]:
    resource = _example(name)
    rng = random.Random(name)
    yield resource
    for n in range(mutations):
        yield _mutate(resource, rng, 1 + n % 3)


def _check(expression: str, node: dict[str, Any], stats: dict[str, int]) -> None:
    root = node.get("resourceType")
    fn = _closure(expression, root if isinstance(root, str) else None)
    if fn is None:
        stats["unsupported"] += 1
        return
    try:
        reference: Any = ("ok", _normal(_reference(expression)(node)))
    except Exception as exc:
        reference = _failure(exc)
    try:
        ours = ("ok", _normal(fn([node])))
    except Unsure:
        stats["unsure"] += 1
    else:
        stats["answered"] += 1
        assert ours == reference, (expression, node)
    # through the public entry point the outcome is always fhirpathpy's
    try:
        public: Any = ("ok", _normal(compiled(expression)(node)))
    except Exception as exc:
        public = _failure(exc)
    assert public == reference, (expression, node)


@pytest.mark.parametrize("name", FILES)
def test_closures_agree_with_fhirpathpy(name: str) -> None:
    stats = {"answered": 0, "unsure": 0, "unsupported": 0}
    for n, case in enumerate(_cases(name, 40)):
        resource_type = case["resourceType"]
        for expression, (key, contexts) in CONSTRAINTS.items():
            if resource_type in contexts:
                _check(expression, case, stats)
            if "" in contexts and (key in OUR_KEYS or n < 8):  # core ones on fewer cases: fhirpathpy is slow
                for fragment in _fragments(case):
                    if fragment is not case:
                        _check(expression, fragment, stats)
    assert stats["answered"] > stats["unsure"]


def test_our_invariants_compile() -> None:
    for expression, (key, contexts) in CONSTRAINTS.items():
        if key in OUR_KEYS:
            for context in contexts:
                assert closure(expression, context or None) is not None, key


@pytest.mark.parametrize("name", [n for n in FILES if ".valid." in n])
def test_valid_examples_never_need_fhirpathpy(name: str) -> None:
    """The fast path is what a well-formed write takes."""
    resource = _example(name)
    for expression, (key, contexts) in CONSTRAINTS.items():
        if key not in OUR_KEYS:
            continue
        nodes = [resource] if resource["resourceType"] in contexts else []
        if "" in contexts:
            nodes += [f for f in _fragments(resource) if f is not resource and "url" in f]
        for node in nodes:
            fn = closure(expression, node.get("resourceType"))
            assert fn is not None
            fn([node])  # no Unsure


@pytest.mark.parametrize(
    ("expression", "resource", "expected"),
    [
        # three-valued logic and empty propagation
        ("active and deceased.exists()", {"resourceType": "Patient"}, [False]),
        ("active and true", {"resourceType": "Patient"}, []),
        ("active or true", {"resourceType": "Patient"}, [True]),
        ("active implies false", {"resourceType": "Patient"}, []),
        ("active implies false", {"resourceType": "Patient", "active": False}, [True]),
        ("active xor true", {"resourceType": "Patient", "active": False}, [True]),
        ("gender = 'male'", {"resourceType": "Patient"}, []),
        ("gender != 'male'", {"resourceType": "Patient", "gender": "female"}, [True]),
        # choice types and decimals
        ("extension('a').value.all($this <= 12)", {"extension": [{"url": "a", "valueInteger": 12}]}, [True]),
        ("extension('a').value.all($this < 12.5)", {"extension": [{"url": "a", "valueDecimal": 12.4}]}, [True]),
        ("extension('a').value.all($this <= 12)", {"extension": [{"url": "b", "valueInteger": 13}]}, [True]),
        ("extension('a').value.all($this <= 0.1)", {"extension": [{"url": "a", "valueDecimal": 0.1}]}, [True]),
        ("name.count() = 1.0", {"resourceType": "Patient", "name": [{"text": "x"}]}, [True]),
        # strings
        ("birthDate.toString().replace('-', '')", {"resourceType": "Patient", "birthDate": "1990-01-02"}, ["19900102"]),
        ("id.substring(2, 3)", {"resourceType": "Patient", "id": "abcdef"}, ["cde"]),
        ("id.substring(9)", {"resourceType": "Patient", "id": "abcdef"}, []),
        ("id.matches('^a.c')", {"resourceType": "Patient", "id": "abcdef"}, [True]),
        ("(name.count() + telecom.count()) > 0", {"resourceType": "Patient", "name": [{"text": "x"}]}, [True]),
    ],
)
def test_semantics(expression: str, resource: dict[str, Any], expected: list[Any]) -> None:
    fn = closure(expression, resource.get("resourceType"))
    assert fn is not None
    assert _normal(fn([resource])) == _normal(expected)
    assert _normal(fhirpath_compile(expression, models["r5"])(resource)) == _normal(expected)


@pytest.mark.parametrize(
    ("expression", "resource"),
    [
        ("gender = 'male'", {"resourceType": "Patient", "gender": "male", "_gender": {"extension": []}}),
        ("active and true", {"resourceType": "Patient", "active": "yes"}),
        ("name.given = 'x'", {"resourceType": "Patient", "name": [{"given": ["x", "y"]}]}),
        ("extension('a').exists()", {"extension": [{"url": "a"}, {"url": "a"}]}),
        ("extension('a').exists()", {"extension": [{"valueString": "no url"}]}),
        ("extension('a').value <= 1", {"extension": [{"url": "a", "valueString": "1"}]}),
    ],
)
def test_unsure_cases_go_to_fhirpathpy(expression: str, resource: dict[str, Any]) -> None:
    fn = closure(expression, resource.get("resourceType"))
    assert fn is not None
    with pytest.raises(Unsure):
        fn([resource])


@pytest.mark.parametrize(
    "expression",
    ["hasValue()", "children().count() > 1", "%resource.id.exists()", "name.ofType(HumanName)", "a | b", "-1 < 0"],
)
def test_unmodelled_expressions_are_left_to_fhirpathpy(expression: str) -> None:
    assert closure(expression, "Patient") is None
