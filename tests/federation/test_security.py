"""Federation under access control: the gateway authenticates to a member's FHIR server with
SMART Backend Services, and the caller's own rights apply to what members answer (POL-08)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from gateway.federation.endpoints import SmartCredentials, endpoint_resource
from tests.federation.conftest import RESIDENT_ID, medication, organization, patient, r5_request, write_as_operator
from tests.security.conftest import Keys, add_jwt_client, bearer, new_keys, secure_client

ID_NUMBER = "140423195603071234"
IDENT = f"{RESIDENT_ID}|{ID_NUMBER}"


def _dispense(did: str, patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationDispense",
        "id": did,
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.20", "value": f"D-{did}"}],
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medication": {"reference": {"reference": "Medication/amlo"}},
        "whenHandedOver": "2026-11-03T10:00:00+08:00",
    }


@pytest.fixture
def secured(tmp_path: Path, yaolian_member: Any) -> Iterator[tuple[TestClient, Keys, str, str]]:
    """A gateway requiring tokens, with a township member whose own server requires tokens too
    and knows the gateway as its client (private_key_jwt)."""
    township_db = f"sqlite:///{tmp_path / 'township.sqlite'}"
    write_as_operator(
        township_db,
        patient("tp", ID_NUMBER),
        medication("amlo", "氨氯地平片"),
        r5_request("t1", "T-001", "tp", "2026-11-02T09:00:00+08:00", "amlo"),
        _dispense("td1", "tp"),
    )
    gateway_keys = new_keys("RS384")
    gateway_at_township = add_jwt_client(
        township_db,
        tmp_path,
        gateway_keys,
        extra=(
            "--scope",
            "system/MedicationRequest.rs system/MedicationDispense.rs system/Medication.rs system/Patient.rs",
        ),
    )
    key_file = tmp_path / "gateway-key.pem"
    pem = gateway_keys.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file.write_bytes(pem)
    township = yaolian_member("township-secure", insecure_dev=False, database=township_db)
    gateway_db = f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    smart = SmartCredentials(
        township.base.removesuffix("/fhir") + "/auth/token", gateway_at_township, str(key_file), gateway_keys.kid
    )
    org = organization("township", "王桥镇卫生院", "township")
    org["endpoint"] = [{"reference": "Endpoint/township-ep"}]
    ep = endpoint_resource(
        "township-ep", "fhir-r5", township.base, name="t", organization="Organization/township", smart=smart
    )
    write_as_operator(gateway_db, ep, org, organization("county", "县医院", "county"), patient("cp", ID_NUMBER))
    write_as_operator(
        gateway_db,
        {
            **r5_request("c1", "C-001", "cp", "2026-10-01T08:00:00+08:00", "amlo"),
            "meta": {"tag": [{"system": "http://yaolian.org/fhir/sid/member", "code": "county"}]},
        },
    )
    client_keys = new_keys("ES384")
    for client in secure_client(gateway_db, audit=False):
        yield client, client_keys, gateway_db, str(tmp_path)


def _prescriptions(client: TestClient, headers: dict[str, str]) -> Any:
    return client.get("/fhir/Patient/$prescriptions", params={"identifier": IDENT}, headers=headers)


def test_pol08_member_client_sees_the_alliance_in_patient_context_via_smart_remote(secured) -> None:  # type: ignore[no-untyped-def]
    client, keys, database, tmp = secured
    member_id = add_jwt_client(database, Path(tmp), keys, role="member", extra=("--member", "xy-nanhan"))
    response = _prescriptions(client, bearer(client, keys, member_id, "system/*.rs"))
    assert response.status_code == 200, response.text
    bundle = response.json()
    found = sorted(
        (e["resource"]["resourceType"], e["resource"]["meta"]["source"])
        for e in bundle["entry"]
        if e["search"]["mode"] == "match"
    )
    assert found == [
        ("MedicationDispense", "urn:yaolian:member:township"),
        ("MedicationRequest", "urn:yaolian:member:county"),  # another member's, stored here: patient context
        ("MedicationRequest", "urn:yaolian:member:township"),  # asked live with the gateway's own token
    ]
    assert not [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]


def test_the_callers_scopes_filter_what_members_answer(secured) -> None:  # type: ignore[no-untyped-def]
    client, keys, database, tmp = secured
    member_id = add_jwt_client(database, Path(tmp), keys, role="member", extra=("--member", "xy-nanhan"))
    only_requests = bearer(
        client, keys, member_id, "system/MedicationRequest.rs system/Patient.rs system/Organization.rs"
    )
    bundle = _prescriptions(client, only_requests).json()
    types = {e["resource"]["resourceType"] for e in bundle["entry"] if e["search"]["mode"] == "match"}
    assert types == {"MedicationRequest"}  # the township's dispense is not shown to this client
    patients_only = bearer(client, keys, member_id, "system/Patient.rs")
    refused = _prescriptions(client, patients_only)
    assert refused.status_code == 403 and "YL-0270" in refused.text
    assert client.get("/fhir/Patient/$prescriptions", params={"identifier": IDENT}).status_code == 401


def test_pol09_match_asks_a_member_that_requires_tokens_with_the_gateways_own(secured) -> None:  # type: ignore[no-untyped-def]
    """``$match`` reaches the township's server through SMART Backend Services as the
    prescription query does; the member client's own token only needs Patient search."""
    client, keys, database, tmp = secured
    member_id = add_jwt_client(database, Path(tmp), keys, role="member", extra=("--member", "xy-nanhan"))
    wanted = {"resourceType": "Patient", "identifier": [{"system": RESIDENT_ID, "value": ID_NUMBER}]}
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": wanted}]}
    headers = bearer(client, keys, member_id, "system/Patient.rs")
    response = client.post("/fhir/Patient/$match", json=body, headers=headers)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    found = [(e["resource"]["id"], e["resource"].get("meta", {}).get("source"), e["search"]["score"]) for e in entries]
    assert found == [("cp", None, 1.0), ("tp", "urn:yaolian:member:township", 1.0)]
