"""The direct path walker gives exactly what fhirpathpy gives, on every official example."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from gateway.search.fastpath import compile_simple, first_element
from gateway.search.parameters import _RESOLVE_IS, _strip_parens, all_definitions, split_union

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "tests" / "fixtures" / "r5-examples").glob("*.json")) + sorted(
    (ROOT / "profiles" / "examples").glob("*.valid.*.json")
)


def _normalise(values: list[Any]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        raise TypeError(type(value))

    return json.dumps(values, default=default, sort_keys=True)


def _branches(resource_type: str) -> list[str]:
    found = []
    for defn in all_definitions():
        if resource_type not in (defn.get("base") or ()):
            continue
        expressions = [defn.get("expression") or ""] + [c.get("expression", "") for c in defn.get("component") or ()]
        for expression in expressions:
            for branch in split_union(expression):
                branch = _RESOLVE_IS.sub("", _strip_parens(branch))
                if branch.startswith(resource_type + "."):
                    found.append(branch)
    return sorted(set(found))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_same_values_as_fhirpathpy(path: Path) -> None:
    resource = json.loads(path.read_text())
    compared = 0
    for branch in _branches(resource["resourceType"]):
        fast = compile_simple(branch)
        if fast is None:
            continue
        expected = fhirpath_compile(branch, models["r5"])(json.loads(path.read_text()))
        assert _normalise(fast(resource)) == _normalise(expected), branch
        compared += 1
    assert compared > 0


def _skippable(resource: dict[str, Any]) -> list[str]:
    """The branches index extraction skips for ``resource`` without evaluating them."""
    return [
        branch
        for branch in _branches(resource["resourceType"])
        if (first := first_element(branch)) is not None and first not in resource
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_a_branch_whose_first_element_is_absent_has_no_value(path: Path) -> None:
    """Index extraction skips such branches; fhirpathpy must find no value for them either."""
    resource = json.loads(path.read_text())
    for branch in _skippable(resource):
        assert fhirpath_compile(branch, models["r5"])(resource) == [], branch


def test_most_examples_have_branches_to_skip() -> None:
    skipping = [path for path in EXAMPLES if _skippable(json.loads(path.read_text()))]
    assert len(skipping) > len(EXAMPLES) // 2


def test_first_element_is_only_given_where_absence_is_conclusive() -> None:
    assert first_element("MedicationRequest.dispenseRequest.quantity") == "dispenseRequest"
    assert first_element("Observation.value.ofType(Quantity)") is None  # present as valueQuantity
    assert first_element("Patient.name.first()") is None  # not a simple form


@pytest.mark.parametrize(
    ("expression", "simple"),
    [
        ("MedicationRequest.subject", True),
        ("Observation.value.ofType(Quantity)", True),
        ("ConceptMap.sourceScope as uri", True),
        ("Patient.telecom.where(system='phone')", True),
        ("MedicationRequest.extension('http://x/y').value", True),
        ("(start | requestedPeriod.start).first()", False),
        ("Patient.name.first()", False),
        ("Patient.deceased.exists() and Patient.deceased != false", False),
    ],
)
def test_which_forms_are_walked_directly(expression: str, simple: bool) -> None:
    assert (compile_simple(expression) is not None) is simple


def test_choice_and_extension_values() -> None:
    resource = {
        "resourceType": "Observation",
        "valueQuantity": {"value": 6.10, "unit": "mmol/L"},
        "extension": [{"url": "http://x/y", "valueCode": "a"}, {"url": "http://x/z", "valueCode": "b"}],
    }
    assert compile_simple("Observation.value.ofType(Quantity)")(resource) == [{"value": 6.10, "unit": "mmol/L"}]  # type: ignore[misc]
    assert compile_simple("Observation.value.ofType(string)")(resource) == []  # type: ignore[misc]
    assert compile_simple("Observation.extension('http://x/z').value")(resource) == ["b"]  # type: ignore[misc]


def test_relative_component_expression() -> None:
    item = {"item": {"concept": {"coding": [{"code": "X"}]}}, "quantity": {"value": 5}}
    assert compile_simple("item.concept", relative=True)(item) == [{"coding": [{"code": "X"}]}]  # type: ignore[misc]
    assert compile_simple("item.concept")(item) == []  # type: ignore[misc]  # "item" read as a resource type
