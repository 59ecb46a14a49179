"""Base-structure checks of gateway.fhir.structure: the models' findings located and bilingual,
and the FHIR JSON rules the models do not enforce."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.fhir.structure import json_form_issues
from gateway.validation import structure_issues

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(
    ("resource", "expression", "code"),
    [
        ({"resourceType": "Patient", "birthDate": "x"}, "Patient.birthDate", "value"),
        ({"resourceType": "Patient", "active": [1]}, "Patient.active", "value"),
        ({"resourceType": "Patient", "colour": "red"}, "Patient.colour", "structure"),
        (
            {"resourceType": "MedicationRequest", "status": "active", "intent": "order"},
            "MedicationRequest.medication",
            "required",
        ),
        ({"resourceType": "Patient", "name": {"family": "Li"}}, "Patient.name", "value"),
    ],
)
def test_model_findings_are_located_and_bilingual(resource: dict[str, Any], expression: str, code: str) -> None:
    issues = structure_issues(resource)
    first = issues[0]
    assert first.expression == (expression,)
    assert first.code == code
    assert first.error_code in ("YL-3001", "YL-3070")  # 3070: a primitive's R5 grammar (issue 17)
    assert CJK.search(first.zh), first.zh


def test_valid_resources_have_no_findings() -> None:
    extension = [{"url": "http://example.org/fhir/StructureDefinition/x", "valueString": "y"}]
    name = {"family": "Li", "given": ["Wei", None], "_given": [None, {"id": "g", "extension": extension}]}
    patient = {"resourceType": "Patient", "name": [name]}
    assert structure_issues(patient) == []
    assert json_form_issues(patient) == []


def test_the_structure_check_includes_ele_1() -> None:
    """One structure check for the write path and gateway.validation: a primitive with only an
    id (no value, no extension) fails ele-1 wherever it is judged (the JSON form is fine)."""
    name = {"family": "Li", "given": ["Wei", None], "_given": [None, {"id": "g"}]}
    patient = {"resourceType": "Patient", "name": [name]}
    [found] = structure_issues(patient)
    assert (found.error_code, found.expression) == ("YL-3060", ("Patient.name[0].given[1]",))
    assert json_form_issues(patient) == []


@pytest.mark.parametrize(
    ("resource", "code", "expression"),
    [
        ({"resourceType": "Patient", "active": "true"}, "YL-0108", "Patient.active"),
        ({"resourceType": "Patient", "birthDate": None}, "YL-0108", "Patient.birthDate"),
        ({"resourceType": "Patient", "name": ["Li"]}, "YL-0108", "Patient.name[0]"),
        ({"resourceType": "Patient", "_birthDate": "x"}, "YL-0108", "Patient._birthDate"),
        ({"resourceType": "Patient", "multipleBirthInteger": 2.0}, "YL-0108", "Patient.multipleBirthInteger"),
        ({"resourceType": "Medication", "totalVolume": {"value": True}}, "YL-0108", "Medication.totalVolume.value"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<p/>"}}, "YL-0109", "Patient.text.div"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<div"}}, "YL-0109", "Patient.text.div"),
        ({"resourceType": "Patient", "contained": [{"resourceType": "Unicorn"}]}, "YL-0112", "Patient.contained[0]"),
        ({"resourceType": "Patient", "contained": [{"id": "x"}]}, "YL-0112", "Patient.contained[0]"),
        (
            {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": 5}}]},
            "YL-0108",
            "Bundle.entry[0].request.url",
        ),
    ],
)
def test_fhir_json_rules(resource: dict[str, Any], code: str, expression: str) -> None:
    (found,) = json_form_issues(resource)
    assert found.error_code == code
    assert found.expression == (expression,)
    assert CJK.search(found.zh)


def test_decimals_and_integer64_kinds() -> None:
    assert json_form_issues({"resourceType": "Medication", "totalVolume": {"value": 6}}) == []
    assert json_form_issues({"resourceType": "Medication", "totalVolume": {"value": 6.1}}) == []
    assert json_form_issues({"resourceType": "Patient", "multipleBirthInteger": 2}) == []
