"""The alliance scenario (POL-08, POL-09): one patient's prescriptions pushed over HL7 v2 by the
county hospital, held live by a township centre's R5 server (another Yaolian) and a village
clinic's R4 server — all found in one query, each with its source, none duplicated — then one
continued at another member with the chain queryable both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.federation.endpoints import endpoint_resource
from gateway.settings import Settings
from tests.federation.conftest import (
    RESIDENT_ID,
    RX_NUMBER,
    medication,
    organization,
    patient,
    put,
    r4_request,
    r5_request,
)

GOLDEN = Path(__file__).parents[1] / "golden" / "hl7v2" / "RDE_O11" / "rde-o11-new-amlodipine.hl7"
ID_NUMBER = "140423196703151230"  # PID-3 of the golden message
COUNTY_RX = "RX202511030087"


def _register(gateway: Any, code: str, tier: str, address: str | None = None, kind: str = "pushed") -> None:
    org = organization(code, f"{code} 名称", tier)
    if address is not None:
        put(gateway, endpoint_resource(f"{code}-ep", kind, address, name=code, organization=f"Organization/{code}"))
        org["endpoint"] = [{"reference": f"Endpoint/{code}-ep"}]
    put(gateway, org)


def _matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]


@pytest.fixture
def gateway(database_url: str) -> Iterator[TestClient]:
    """The gateway under test on each store backend (SQLite and PostgreSQL)."""
    settings = Settings(database=database_url, insecure_dev=True, audit=False, federation_timeout=2.0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_pol08_pol09_one_patient_across_the_alliance(gateway, yaolian_member, tiny_member) -> None:  # type: ignore[no-untyped-def]
    township = yaolian_member("township")
    with httpx.Client() as client:
        put(client, patient("tp", ID_NUMBER), township.base)
        put(client, medication("amlo", "苯磺酸氨氯地平片"), township.base)
        put(client, r5_request("t1", "T-001", "tp", "2025-11-20T09:00:00+08:00", "amlo"), township.base)
        # the township also keeps a copy of the county's prescription (same number): not a second entry
        put(client, r5_request("copy", COUNTY_RX, "tp", "2025-11-03T09:25:00+08:00", "amlo"), township.base)
    village = tiny_member(
        resources=[
            patient("vp", ID_NUMBER),
            medication("met", "二甲双胍片"),
            r4_request("v1", "V-001", "vp", "2025-12-01T10:00:00+08:00", "met"),
        ]
    )
    _register(gateway, "XYXRMYY", "county")
    _register(gateway, "xy-wangqiao", "township", township.base, "fhir-r5")
    _register(gateway, "xy-dongpo", "village", village.base, "fhir-r4")
    _register(gateway, "xy-nanhan", "village")
    pushed = gateway.post(
        "/fhir/$ingest?adapter=hl7v2", content=GOLDEN.read_bytes(), headers={"Content-Type": "application/hl7-v2"}
    )
    assert pushed.status_code == 200, pushed.text

    bundle = gateway.get("/fhir/Patient/$prescriptions", params={"identifier": f"{RESIDENT_ID}|{ID_NUMBER}"}).json()
    found = [(r["identifier"][-1]["value"], r["meta"]["source"]) for r in _matches(bundle)]
    assert found == [
        ("V-001", "urn:yaolian:member:xy-dongpo"),
        ("T-001", "urn:yaolian:member:xy-wangqiao"),
        (COUNTY_RX, "urn:yaolian:member:XYXRMYY"),  # pushed later than the township's copy: newest wins
    ]
    assert not [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]

    # continued at xy-nanhan as an extended prescription dispensed there
    local_patient = gateway.get("/fhir/Patient", params={"identifier": f"{RESIDENT_ID}|{ID_NUMBER}"}).json()["entry"][0]
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "prescription", "valueIdentifier": {"system": RX_NUMBER, "value": "V-001"}},
            {"name": "patient", "valueReference": {"reference": f"Patient/{local_patient['resource']['id']}"}},
            {"name": "identifier", "valueIdentifier": {"system": RX_NUMBER, "value": "N-001"}},
            {"name": "member", "valueString": "xy-nanhan"},
            {"name": "dispensingMember", "valueString": "xy-nanhan"},
        ],
    }
    continued = gateway.post("/fhir/MedicationRequest/$continue", json=parameters)
    assert continued.status_code == 201, continued.text
    new = continued.json()
    assert new["priorPrescription"]["identifier"] == {"system": RX_NUMBER, "value": "V-001"}  # A's is remote
    assert new["medication"] == {"concept": {"text": "二甲双胍片"}}
    extended = new["extension"][0]
    assert {e["url"]: next(v for k, v in e.items() if k.startswith("value")) for e in extended["extension"]} == {
        "dispensingMember": {"reference": "Organization/xy-nanhan"},
        "originPrescription": {"system": RX_NUMBER, "value": "V-001"},
    }
    # forward: from A's number to its continuations
    forward = gateway.get(
        "/fhir/MedicationRequest", params={"prior-prescription:identifier": f"{RX_NUMBER}|V-001"}
    ).json()
    assert [e["resource"]["id"] for e in forward["entry"]] == [new["id"]]
    # back: B's record names A's, which the federated query finds by that number
    after = gateway.get("/fhir/Patient/$prescriptions", params={"identifier": f"{RESIDENT_ID}|{ID_NUMBER}"}).json()
    records = {r["identifier"][-1]["value"]: r for r in _matches(after)}
    assert set(records) == {"N-001", "V-001", "T-001", COUNTY_RX}
    assert records["N-001"]["meta"]["source"] == "urn:yaolian:member:xy-nanhan"
    prior = records["N-001"]["priorPrescription"]["identifier"]
    assert any(i == prior for i in records["V-001"]["identifier"])

    # a local prescription is continued by reference
    local_rx = gateway.get("/fhir/MedicationRequest", params={"identifier": f"{RX_NUMBER}|{COUNTY_RX}"}).json()[
        "entry"
    ][0]
    parameters["parameter"][0]["valueIdentifier"]["value"] = COUNTY_RX
    parameters["parameter"][2]["valueIdentifier"]["value"] = "N-002"
    by_reference = gateway.post("/fhir/MedicationRequest/$continue", json=parameters).json()
    assert by_reference["priorPrescription"] == {"reference": f"MedicationRequest/{local_rx['resource']['id']}"}
    back = gateway.get(
        "/fhir/MedicationRequest", params={"prior-prescription": f"MedicationRequest/{local_rx['resource']['id']}"}
    )
    assert [e["resource"]["id"] for e in back.json()["entry"]] == [by_reference["id"]]
