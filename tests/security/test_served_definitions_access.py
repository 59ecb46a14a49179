"""Conformance resources are public master data (gateway/security/policy.py): every authenticated
client reads and searches them whatever its role and scopes, nobody without a token does, a
member cannot write them, and the reads are in the audit trail like any other (POL-08: member
isolation is not loosened for anything else)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from .conftest import add_secret_client, secure_client


@pytest.fixture
def gateway(database_url: str) -> Iterator[TestClient]:
    yield from secure_client(database_url)


def token(http: TestClient, database_url: str, role: str, scope: str, *extra: str) -> dict[str, str]:
    client_id, secret = add_secret_client(database_url, role=role, extra=extra)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = http.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_every_role_reads_and_searches_them_whatever_its_scopes(gateway: TestClient, database_url: str) -> None:
    """POL-08: a member client scoped to Patient reads profiles, and still nothing else."""
    callers = {
        "member": token(gateway, database_url, "member", "system/Patient.rs", "--member", "THC-01"),
        "insurance": token(gateway, database_url, "insurance", "system/MedicationRequest.rs"),
        "regulator": token(gateway, database_url, "regulator", "system/AuditEvent.rs"),
    }
    for who, headers in callers.items():
        read = gateway.get("/fhir/StructureDefinition/yl-patient", headers=headers)
        assert read.status_code == 200, (who, read.text)
        found = gateway.get(
            "/fhir/OperationDefinition", params={"url": "http://yaolian.org/fhir/OperationDefinition/continue"},
            headers=headers,
        )  # fmt: skip
        assert found.status_code == 200 and found.json()["total"] == 1, (who, found.text)
        assert gateway.get("/fhir/CodeSystem?_summary=count", headers=headers).json()["total"] >= 7
    # the public definitions opened nothing else: the member's scope still stops a Medication search
    assert gateway.get("/fhir/Medication", headers=callers["member"]).status_code == 403
    assert gateway.get("/fhir/StructureDefinition/yl-patient").status_code == 401


def test_a_member_cannot_write_them_and_an_admin_gets_the_read_only_answer(
    gateway: TestClient, database_url: str
) -> None:
    member = token(gateway, database_url, "member", "system/*.cruds", "--member", "THC-01")
    admin = token(gateway, database_url, "admin", "system/*.cruds")
    body = gateway.get("/fhir/CodeSystem/alliance-tier", headers=member).json()
    assert gateway.put("/fhir/CodeSystem/alliance-tier", json=body, headers=member).status_code == 403
    refused = gateway.put("/fhir/CodeSystem/alliance-tier", json=body, headers=admin)
    assert refused.status_code == 405
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "YL-0304"


def test_a_read_of_a_served_definition_is_audited(gateway: TestClient, database_url: str) -> None:
    member = token(gateway, database_url, "member", "system/Patient.rs", "--member", "THC-01")
    assert gateway.get("/fhir/StructureDefinition/yl-drug", headers=member).status_code == 200
    regulator = token(gateway, database_url, "regulator", "system/AuditEvent.rs")
    events = gateway.get("/fhir/AuditEvent?_count=100", headers=regulator).json()
    texts = [str(e["resource"]) for e in events.get("entry", [])]
    assert any("StructureDefinition/yl-drug" in t for t in texts), texts[-3:]
