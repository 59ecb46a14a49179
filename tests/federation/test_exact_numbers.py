"""A member's decimals reach the caller as the member wrote them: ``0.50`` stays ``0.50`` (FHIR
decimals carry their precision), through the federated answer, the answer cache and a
continuation stored here (POL-08)."""

from __future__ import annotations

import httpx

from tests.federation.conftest import RX_NUMBER, medication, patient, put, r5_request
from tests.federation.test_prescriptions import ID_NUMBER, IDENT, register


def with_dose(resource_id: str, rx: str, patient_id: str, dose: str, quantity: str) -> bytes:
    """A MedicationRequest as raw JSON, its numbers written exactly as given."""
    body = r5_request(resource_id, rx, patient_id, "2026-11-02T09:00:00+08:00", "amlo")
    text = httpx.Request("PUT", "/", json=body).content.decode()[:-1]
    return (
        text + f',"dosageInstruction":[{{"doseAndRate":[{{"doseQuantity":{{"value":{dose},"unit":"mg"}}}}]}}],'
        f'"dispenseRequest":{{"quantity":{{"value":{quantity},"unit":"片"}}}}}}'
    ).encode()


def test_pol08_decimals_pass_through_federation_as_written(gateway, yaolian_member) -> None:  # type: ignore[no-untyped-def]
    township = yaolian_member("township")
    with httpx.Client() as member:
        put(member, patient("tp1", ID_NUMBER), township.base)
        put(member, medication("amlo", "氨氯地平片"), township.base)
        raw = with_dose("t-rx1", "T-001", "tp1", "2.50", "28.0")
        stored = member.put(
            f"{township.base}/MedicationRequest/t-rx1", content=raw, headers={"Content-Type": "application/fhir+json"}
        )
        assert stored.status_code in (200, 201), stored.text
    register(gateway, "township", "township", township.base)
    put(gateway, patient("cp", ID_NUMBER))
    put(gateway, medication("amlo", "氨氯地平片"))
    local = gateway.put(
        "/fhir/MedicationRequest/c-rx1",
        content=with_dose("c-rx1", "C-001", "cp", "0.50", "1.10"),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert local.status_code == 201, local.text

    for _ in range(2):  # asked, then from the answer cache
        text = gateway.get("/fhir/Patient/$prescriptions", params={"identifier": IDENT}).text
        assert '"value":2.50' in text and '"value":28.0' in text  # the member's
        assert '"value":0.50' in text and '"value":1.10' in text  # the store's

    continued = gateway.post(
        "/fhir/MedicationRequest/$continue",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "prescription", "valueIdentifier": {"system": RX_NUMBER, "value": "T-001"}},
                {"name": "patient", "valueReference": {"reference": "Patient/cp"}},
            ],
        },
    )
    assert continued.status_code == 201, continued.text
    assert '"value":2.50' in continued.text
    assert continued.json()["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 2.5  # a number
