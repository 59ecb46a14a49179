"""The public API the REST layer calls: validate, default_profiles, known_profiles."""

from __future__ import annotations

import re

import pytest

from gateway import validation
from gateway.validation import ERROR_CODES, default_profiles, known_profiles, profiles_for, validate
from gateway.validation._structure import loc_to_fhirpath

SD = "http://yaolian.org/fhir/StructureDefinition/"


def test_all_is_pinned() -> None:
    assert sorted(validation.__all__) == [
        "ERROR_CODES",
        "default_profiles",
        "known_profiles",
        "profile_resource_type",
        "profiles_for",
        "structure_issues",
        "validate",
        "validate_json",
    ]


def test_error_codes_are_unique_and_in_the_3xxx_range() -> None:
    assert all(re.fullmatch(r"YL-3\d{3}", code) for code in ERROR_CODES)
    assert len({(v[2], v[3]) for v in ERROR_CODES.values()}) == len(ERROR_CODES)


def test_default_profiles() -> None:
    assert default_profiles("MedicationRequest") == (SD + "yl-prescription",)
    assert default_profiles("Observation") == ()
    for resource_type in ["Medication", "SupplyRequest", "InventoryReport", "Patient", "Organization", "Practitioner"]:
        [url] = default_profiles(resource_type)
        assert url in known_profiles()


def test_known_profiles_include_extensions() -> None:
    assert SD + "yl-long-term-prescription" in known_profiles()


def test_profiles_for_merges_meta_profile_and_default() -> None:
    res = {"resourceType": "Patient", "meta": {"profile": ["http://example.org/p|1.0", SD + "yl-patient"]}}
    assert profiles_for(res) == ("http://example.org/p", SD + "yl-patient")


def test_unknown_profile_is_an_issue_not_an_exception() -> None:
    [found] = validate({"resourceType": "Patient"}, ["http://example.org/StructureDefinition/nope"])
    assert (found.error_code, found.severity, found.expression) == ("YL-3002", "warning", ("Patient",))


def test_profile_for_another_type() -> None:
    [found] = validate({"resourceType": "Patient"}, [SD + "yl-drug"])
    assert found.error_code == "YL-3003"


@pytest.mark.parametrize("bad", [[], {"id": "x"}, {"resourceType": 3}])
def test_not_a_resource(bad: object) -> None:
    [found] = validate(bad)  # type: ignore[arg-type]
    assert found.error_code == "YL-3004"


def test_unknown_resource_type() -> None:
    [found] = validate({"resourceType": "Prescription"})
    assert (found.error_code, found.expression) == ("YL-3004", ("Prescription",))


def test_structure_false_skips_the_base_model() -> None:
    res = {"resourceType": "Patient", "gender": "female", "unknownElement": 1}
    assert [i.error_code for i in validate(res)] == ["YL-3001"]
    assert validate(res, structure=False) == []


def test_missing_required_element_reported_once() -> None:
    res = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medication": {"concept": {"text": "x"}},
    }
    found = [i for i in validate(res, [SD + "yl-prescription"]) if i.expression == ("MedicationRequest.subject",)]
    assert [(i.error_code, i.code) for i in found] == [("YL-3001", "required")]


def test_loc_to_fhirpath() -> None:
    assert loc_to_fhirpath("MedicationRequest", ("dosageInstruction", 0, "timing")) == (
        "MedicationRequest.dosageInstruction[0].timing"
    )
    assert loc_to_fhirpath("Medication", ("contained", 0, "code", "root")) == "Medication.contained[0].code"
    assert loc_to_fhirpath("Patient", ("name", "function-after[x]", 1)) == "Patient.name[1]"


def test_issue_messages_are_bilingual() -> None:
    [found] = validate({"resourceType": "Patient"}, ["http://example.org/nope"])
    assert "Unknown profile" in found.en and "未知" in found.zh


def test_profile_resource_type() -> None:
    assert validation.profile_resource_type(SD + "yl-prescription") == "MedicationRequest"
    assert validation.profile_resource_type(SD + "yl-long-term-prescription") is None  # an extension
    assert validation.profile_resource_type("http://example.org/unknown") is None


def test_absent_sliced_element_still_reports_its_required_slices() -> None:
    """A prescription with no extension at all lacks the category slice (1..1)."""
    import json
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "profiles" / "examples"
    rx = json.loads(next(examples.glob("yl-prescription.valid.*.json")).read_text())
    rx.pop("extension")
    found = [(i.error_code, i.where) for i in validate(rx, profiles_for(rx))]
    assert ("YL-3010", "MedicationRequest.extension") in found
    assert any("category" in i.en for i in validate(rx, profiles_for(rx)) if i.error_code == "YL-3010")


def test_an_unknown_contained_type_is_a_finding_not_an_exception() -> None:
    [found] = validate({"resourceType": "Patient", "contained": [{"resourceType": "Unicorn"}]})
    assert (found.error_code, found.expression) == ("YL-3001", ("Patient",))
