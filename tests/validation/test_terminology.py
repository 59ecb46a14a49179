"""$validate-code, $lookup and $translate over profiles/ and mappings/conceptmaps/."""

from __future__ import annotations

import pytest

from gateway.validation.terminology import in_value_set, lookup, translate, validate_code

CS = "http://yaolian.org/fhir/CodeSystem/"
VS = "http://yaolian.org/fhir/ValueSet/"
ICD10 = "urn:oid:2.16.156.10011.2.3.3.11.1"


def test_validate_code_in_code_system() -> None:
    assert validate_code(CS + "alliance-tier", "township") == (True, "Township", "")
    ok, display, message = validate_code(CS + "alliance-tier", "city")
    assert not ok and display is None and "city" in message


def test_validate_code_in_value_set() -> None:
    assert validate_code(CS + "review-result", "reject", VS + "review-result")[0]
    assert not validate_code(CS + "alliance-tier", "county", VS + "review-result")[0]
    assert "not known" in validate_code(CS + "alliance-tier", "county", VS + "nope")[2]


@pytest.mark.parametrize(
    ("valueset", "code", "member"),
    [
        ("chronic-hypertension-icd10", "I10.x00x002", True),
        ("chronic-hypertension-icd10", "I15.000", True),
        ("chronic-hypertension-icd10", "I16", False),
        ("chronic-diabetes-icd10", "E11.900", True),
        ("chronic-diabetes-icd10", "E15", False),
        ("chronic-copd-icd10", "J44.100", True),
        ("chronic-copd-icd10", "J45.900", False),
        ("chronic-disease-icd10", "E14", True),
        ("chronic-disease-icd10", "K29.700", False),
    ],
)
def test_chronic_disease_ranges(valueset: str, code: str, member: bool) -> None:
    assert in_value_set(VS + valueset, ICD10, code)[0] is member
    assert validate_code(ICD10, code, VS + valueset)[0] is member


def test_code_list_not_distributed_checks_the_format() -> None:
    assert validate_code(ICD10, "E11.900")[0]
    assert not validate_code(ICD10, "E11-900")[0]
    assert not validate_code("http://example.org/unknown", "x")[0]


def test_core_required_value_sets_are_expanded() -> None:
    gender = "http://hl7.org/fhir/ValueSet/administrative-gender"
    assert in_value_set(gender, None, "female") == (True, "Female")
    assert in_value_set(gender, None, "F")[0] is False


def test_lookup() -> None:
    found = lookup(CS + "chronic-disease-group", "copd")
    assert found is not None
    assert found["display"] == "COPD"
    assert {"language": "zh-CN", "value": "慢阻肺病"} in found["designation"]
    assert {"code": "icd10-range", "valueString": "J44-J44"} in found["property"]
    assert lookup(CS + "chronic-disease-group", "asthma") is None
    assert lookup("http://example.org/none", "x") is None


def test_translate_over_mappings_conceptmaps() -> None:
    matches = translate("route-to-national", "http://terminology.hl7.org/CodeSystem/v2-0162", "PO")
    assert {
        "relationship": "equivalent",
        "system": "urn:oid:2.16.156.10011.2.3.1.158",
        "code": "1",
        "display": "口服",
    } in matches
    assert translate("route-to-national", "http://terminology.hl7.org/CodeSystem/v2-0162", "NOPE") == []
    assert translate("no-such-map", "x", "y") == []
