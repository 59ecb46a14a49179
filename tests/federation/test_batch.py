"""The GET entries of a batch Bundle that name a patient by identifier federate like the same
searches sent alone (POL-08: a client batching its lookups sees the whole alliance too)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.federation.conftest import RESIDENT_ID, patient, put, r4_request
from tests.federation.test_prescriptions import ID_NUMBER, IDENT, matches, outcome, register

RX = "MedicationRequest"


def batch(client: TestClient, *entries: dict[str, Any], bundle_type: str = "batch") -> list[dict[str, Any]]:
    body = {"resourceType": "Bundle", "type": bundle_type, "entry": list(entries)}
    response = client.post("/fhir", json=body)
    assert response.status_code == 200, response.text
    return response.json()["entry"]  # type: ignore[no-any-return]


def get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def with_village(gateway: TestClient, tiny_member) -> None:  # type: ignore[no-untyped-def]
    village = tiny_member(resources=[patient("vp9", ID_NUMBER), r4_request("v-rx1", "V-001", "vp9", "2026-11-20", "m")])
    register(gateway, "village", "village", village.base, kind="fhir-r4")
    put(gateway, patient("cp", ID_NUMBER))


def test_pol08_batch_gets_federate_beside_local_entries(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    with_village(gateway, tiny_member)
    entries = batch(
        gateway,
        get(f"Patient/$prescriptions?identifier={IDENT}"),
        get(f"{RX}?patient.identifier={IDENT}"),
        get("Patient/cp"),
        {"request": {"method": "POST", "url": "Patient"}, "resource": patient("new", "110101199001011234")},
    )
    assert [e["response"]["status"][:3] for e in entries] == ["200", "200", "200", "201"]
    operation, search = entries[0]["resource"], entries[1]["resource"]
    assert [r["meta"]["source"] for r in matches(operation)] == ["urn:yaolian:member:village"]
    assert [r["identifier"][0]["value"] for r in matches(search)] == ["V-001"]
    assert operation["type"] == search["type"] == "searchset"
    assert not outcome(operation)
    assert entries[2]["resource"]["id"] == "cp"  # the local read, untouched


def test_pol08_bad_federated_entry_fails_alone(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    with_village(gateway, tiny_member)
    entries = batch(
        gateway,
        get("Patient/$prescriptions?identifier=no-system-bar"),
        get(f"{RX}?patient.identifier={IDENT}&_count=abc"),
        get(f"{RX}?patient.identifier={IDENT}"),
    )
    assert [e["response"]["status"][:3] for e in entries] == ["400", "400", "200"]
    first = entries[0]["response"]["outcome"]["issue"][0]
    assert first["expression"] == ["identifier"] and first["details"]["text"]
    assert [r["identifier"][0]["value"] for r in matches(entries[2]["resource"])] == ["V-001"]


def test_pol08_transaction_gets_stay_local(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    """A transaction's GET sees the transaction's own writes, so it is not federated."""
    with_village(gateway, tiny_member)
    entries = batch(gateway, get(f"{RX}?patient.identifier={IDENT}"), bundle_type="transaction")
    assert entries[0]["response"]["status"].startswith("200")
    assert matches(entries[0]["resource"]) == []  # the village's record lives on the village's server


def test_pol08_without_live_members_batch_get_is_the_local_search(gateway) -> None:  # type: ignore[no-untyped-def]
    put(gateway, patient("cp", ID_NUMBER))
    entries = batch(gateway, get(f"{RX}?patient.identifier={RESIDENT_ID}|{ID_NUMBER}"))
    assert entries[0]["response"]["status"].startswith("200")
    assert entries[0]["resource"]["total"] == 0


def test_pol08_prescriptions_operation_in_a_batch_without_live_members(gateway) -> None:  # type: ignore[no-untyped-def]
    """The operation answers inside a batch as it does alone: from the store when no member is live."""
    put(gateway, patient("cp", ID_NUMBER))
    entries = batch(gateway, get(f"Patient/$prescriptions?identifier={IDENT}"))
    assert entries[0]["response"]["status"].startswith("200")
    assert entries[0]["resource"]["type"] == "searchset" and entries[0]["resource"]["total"] == 0
    bad = batch(
        gateway, get("Patient/$prescriptions?identifier=no-system-bar"), get(f"{RX}?patient.identifier=x&_count=a")
    )
    assert [e["response"]["status"][:3] for e in bad] == ["400", "400"]  # the second by the store's own search


def test_an_oversized_batch_asks_no_member(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    village = tiny_member(resources=[patient("vp9", ID_NUMBER)])
    register(gateway, "village", "village", village.base, kind="fhir-r4")
    limit = gateway.app.state.settings.max_bundle_entries
    body = {"resourceType": "Bundle", "type": "batch", "entry": [get(f"{RX}?patient.identifier={IDENT}")] * (limit + 1)}
    response = gateway.post("/fhir", json=body)
    assert response.status_code == 400 and "YL-0801" in response.text
    assert village.fhir.requests == []
