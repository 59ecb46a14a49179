"""$validate, $validate-code, $lookup and $translate over HTTP, on the alliance's own data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "profiles" / "examples"
TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"


def _param(body: dict, name: str) -> object:
    return next((p for p in body["parameter"] if p["name"] == name), None)


def test_lookup_returns_bilingual_concept(client: TestClient) -> None:
    body = client.get(f"/fhir/CodeSystem/$lookup?system={TIER}&code=village").json()
    assert body["resourceType"] == "Parameters", body
    designations = [p for p in body["parameter"] if p["name"] == "designation"]
    assert any(part.get("valueString") == "村" for d in designations for part in d["part"])


def test_lookup_unknown_code_is_404_outcome(client: TestClient) -> None:
    response = client.get(f"/fhir/CodeSystem/$lookup?system={TIER}&code=city")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("code", "expected"), [("female", True), ("F", False)])
def test_validate_code_against_value_set(client: TestClient, code: str, expected: bool) -> None:
    body = client.get(
        "/fhir/ValueSet/$validate-code",
        params={
            "url": "http://hl7.org/fhir/ValueSet/administrative-gender",
            "system": "http://hl7.org/fhir/administrative-gender",
            "code": code,
        },
    ).json()
    assert _param(body, "result") == {"name": "result", "valueBoolean": expected}


def test_translate_order_control_to_status(client: TestClient) -> None:
    cm = json.loads((ROOT / "mappings/conceptmaps/order-control-to-medicationrequest-status.json").read_text())
    source = cm["group"][0]["source"]
    body = client.get("/fhir/ConceptMap/$translate", params={"url": cm["url"], "system": source, "code": "CA"}).json()
    concepts = [
        part["valueCoding"]["code"]
        for m in body["parameter"]
        if m["name"] == "match"
        for part in m["part"]
        if "valueCoding" in part
    ]
    assert concepts == ["cancelled"]


def _invalid_examples() -> list[tuple[str, dict]]:
    """(file, expected issue) for every invalid example, as declared in examples/index.json."""
    index = json.loads((EXAMPLES / "index.json").read_text())
    return [(e["file"], issue) for e in index if not e["valid"] for issue in e["issues"]]


def test_validate_finds_every_declared_error_at_its_element(client: TestClient) -> None:
    checked = 0
    for name, expected in _invalid_examples():
        resource = json.loads((EXAMPLES / name).read_text())
        outcome = client.post(f"/fhir/{resource['resourceType']}/$validate", json=resource).json()
        assert outcome["resourceType"] == "OperationOutcome"
        found = {
            (c["code"], e)
            for i in outcome["issue"]
            for c in i.get("details", {}).get("coding", [])
            for e in i.get("expression", [])
        }
        assert (expected["error_code"], expected["expression"]) in found, (name, outcome)
        checked += 1
    assert checked >= 40


def test_validate_passes_the_valid_examples(client: TestClient) -> None:
    valid = sorted(EXAMPLES.glob("*.valid.*.json"))
    assert valid
    for path in valid:
        resource = json.loads(path.read_text())
        outcome = client.post(f"/fhir/{resource['resourceType']}/$validate", json=resource).json()
        errors = [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
        assert errors == [], (path.name, errors)


def test_validate_with_unknown_profile_is_an_error(client: TestClient) -> None:
    resource = json.loads(next(EXAMPLES.glob("yl-patient.valid.*.json")).read_text())
    outcome = client.post("/fhir/Patient/$validate?profile=http://example.org/nope", json=resource).json()
    assert any(i["severity"] == "error" for i in outcome["issue"])


def _error_codes(outcome: dict) -> set[str]:
    return {c["code"] for i in outcome["issue"] for c in i.get("details", {}).get("coding", [])}


def test_validate_takes_profiles_only_from_parameters_named_profile(client: TestClient) -> None:
    """A canonical in some other parameter is not a profile to validate against (``name ==
    "profile" and valueUri or valueCanonical`` once took every valueCanonical)."""
    resource = json.loads(next(EXAMPLES.glob("yl-patient.valid.*.json")).read_text())
    nope = "http://example.org/StructureDefinition/nope"
    other = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": resource}, {"name": "usageContext", "valueCanonical": nope}],
    }
    outcome = client.post("/fhir/Patient/$validate", json=other).json()
    assert "YL-3002" not in _error_codes(outcome), outcome
    for value in ("valueCanonical", "valueUri"):
        named = {
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": resource}, {"name": "profile", value: nope}],
        }
        outcome = client.post("/fhir/Patient/$validate", json=named).json()
        assert "YL-3002" in _error_codes(outcome), (value, outcome)
