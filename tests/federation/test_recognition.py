"""``MedicationRequest/$continue``: what it refuses (POL-08); the chain itself is in test_scenario.py."""

from __future__ import annotations

from typing import Any

from gateway.federation.recognition import EXTENDED, Origin, continuation
from tests.federation.conftest import RX_NUMBER, r4_request


def _continue(gateway: Any, *parameters: dict[str, Any]) -> Any:
    return gateway.post(
        "/fhir/MedicationRequest/$continue", json={"resourceType": "Parameters", "parameter": list(parameters)}
    )


def test_continue_refuses_what_it_cannot_continue(gateway) -> None:  # type: ignore[no-untyped-def]
    missing = _continue(gateway)
    assert missing.status_code == 400 and "YL-1030" in missing.text
    unknown = _continue(gateway, {"name": "prescription", "valueIdentifier": {"system": RX_NUMBER, "value": "NOPE"}})
    assert unknown.status_code == 400 and "NOPE" in unknown.json()["issue"][0]["diagnostics"]
    not_parameters = gateway.post("/fhir/MedicationRequest/$continue", json={"resourceType": "Patient"})
    assert not_parameters.status_code == 400


def test_a_remote_prescription_is_pointed_at_by_its_number_and_its_medication_code() -> None:
    prior = r4_request("v1", "V-001", "vp", "2026-11-20", "met")
    prior["medication"] = {"reference": {"reference": "Medication/met"}}
    origin = Origin(
        prior, "xy-dongpo", local=False, medication={"resourceType": "Medication", "code": {"text": "二甲双胍片"}}
    )
    new = continuation(
        origin, patient="Patient/p", number_system=RX_NUMBER, dispenser=("xy-nanhan", "Organization/xy-nanhan")
    )
    assert new["priorPrescription"] == {
        "identifier": {"system": RX_NUMBER, "value": "V-001"},
        "display": "xy-dongpo V-001",
    }
    assert new["medication"] == {"concept": {"text": "二甲双胍片"}}
    assert new["subject"] == {"reference": "Patient/p"} and new["dosageInstruction"] == prior["dosageInstruction"]
    assert new["extension"][0]["url"] == EXTENDED
    local = continuation(
        Origin({**prior, "id": "c9"}, "county", local=True), patient="Patient/p", number_system=RX_NUMBER
    )
    assert local["priorPrescription"] == {"reference": "MedicationRequest/c9"} and "extension" not in local
