"""ele-1 (every element has a value or children other than id), which the models do not check."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.validation import validate
from gateway.validation._fastpath import certainly_valid
from gateway.validation._structure import model_class


def _ele1(resource: dict[str, Any]) -> list[str]:
    return [i.where for i in validate(resource) if i.error_code == "YL-3060" and "ele-1" in i.en]


@pytest.mark.parametrize(
    ("resource", "expressions"),
    [
        ({"resourceType": "Patient", "name": [{}]}, ["Patient.name[0]"]),
        ({"resourceType": "Patient", "maritalStatus": {"id": "m"}}, ["Patient.maritalStatus"]),
        ({"resourceType": "Patient", "name": [{"text": "x", "period": {}}]}, ["Patient.name[0].period"]),
        ({"resourceType": "Patient", "_birthDate": {}}, ["Patient.birthDate"]),
        ({"resourceType": "Patient", "_birthDate": {"id": "b"}}, ["Patient.birthDate"]),
        ({"resourceType": "Patient", "birthDate": "1990-01-01", "_birthDate": {"id": "b"}}, []),
        (
            {"resourceType": "Patient", "name": [{"given": ["Li", None, "Wei"], "_given": [{}, {"id": "g"}, None]}]},
            ["Patient.name[0].given[1]"],
        ),
        (
            {"resourceType": "Patient", "extension": [{"url": "urn:x", "valueCoding": {}}]},
            ["Patient.extension[0].valueCoding"],
        ),
        ({"resourceType": "Medication", "contained": [{"resourceType": "Patient"}]}, []),  # resources are exempt
        ({"resourceType": "Patient", "name": [{"text": "x"}], "telecom": [{"system": "phone", "value": "1"}]}, []),
    ],
)
def test_ele1(resource: dict[str, Any], expressions: list[str]) -> None:
    assert _ele1(resource) == expressions


def test_fast_path_leaves_id_only_objects_to_the_model() -> None:
    patient = {"resourceType": "Patient", "name": [{"text": "x"}]}
    assert certainly_valid(model_class("Patient"), patient)
    assert not certainly_valid(model_class("Patient"), {**patient, "maritalStatus": {"id": "m"}})


def test_ele1_is_an_error_with_the_constraint_text() -> None:
    [found] = [i for i in validate({"resourceType": "Patient", "name": [{}]}) if i.error_code == "YL-3060"]
    assert found.severity == "error" and found.code == "invariant"
    assert "@value or children" in found.en and "ele-1" in found.zh
