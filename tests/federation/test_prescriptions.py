"""``Patient/$prescriptions`` across the store and live members on loopback (POL-08)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

from gateway.federation.endpoints import endpoint_resource
from tests.federation.conftest import (
    RESIDENT_ID,
    medication,
    organization,
    patient,
    put,
    r4_request,
    r5_request,
)

ID_NUMBER = "140423195603071234"
IDENT = f"{RESIDENT_ID}|{ID_NUMBER}"


def register(client: TestClient, code: str, tier: str, address: str | None = None, kind: str = "fhir-r5") -> None:
    org = organization(code, f"{code} 卫生院", tier)
    if address is not None:
        put(client, endpoint_resource(f"{code}-ep", kind, address, name=code, organization=f"Organization/{code}"))
        org["endpoint"] = [{"reference": f"Endpoint/{code}-ep"}]
    put(client, org)


def search(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/fhir/Patient/$prescriptions", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def outcome(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for e in bundle.get("entry", []) if e["search"]["mode"] == "outcome" for i in e["resource"]["issue"]]


def test_pol08_one_query_finds_local_r5_and_r4_records_each_with_its_source(
    gateway, yaolian_member, tiny_member
) -> None:  # type: ignore[no-untyped-def]
    township = yaolian_member("township")
    with httpx.Client() as member:
        put(member, patient("tp1", ID_NUMBER), township.base)
        put(member, medication("amlo", "氨氯地平片"), township.base)
        put(member, r5_request("t-rx1", "T-001", "tp1", "2026-11-02T09:00:00+08:00", "amlo"), township.base)
    village = tiny_member(
        resources=[
            patient("vp9", ID_NUMBER),
            medication("met", "二甲双胍片"),
            r4_request("v-rx1", "V-001", "vp9", "2026-11-20T10:00:00+08:00", "met"),
        ]
    )
    register(gateway, "county", "county")
    register(gateway, "township", "township", township.base)
    register(gateway, "village", "village", village.base, kind="fhir-r4")
    put(gateway, patient("cp", ID_NUMBER))
    put(gateway, medication("nif", "硝苯地平缓释片"))
    local = r5_request("c-rx1", "C-001", "cp", "2026-10-01T08:00:00+08:00", "nif")
    local["meta"] = {"tag": [{"system": "http://yaolian.org/fhir/sid/member", "code": "county"}]}
    put(gateway, local)

    bundle = search(gateway, identifier=IDENT)
    found = matches(bundle)
    assert [r["identifier"][0]["value"] for r in found] == ["V-001", "T-001", "C-001"]  # newest first
    assert [r["meta"]["source"] for r in found] == [
        "urn:yaolian:member:village",
        "urn:yaolian:member:township",
        "urn:yaolian:member:county",
    ]
    r4 = found[0]
    assert r4["medication"] == {"reference": {"reference": "Medication/met"}}
    assert r4["reason"] == [{"concept": {"text": "高血压"}}] and "reasonCode" not in r4
    included = {
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in bundle["entry"]
        if e["search"]["mode"] == "include"
    }
    assert {("Medication", "met"), ("Medication", "amlo"), ("Medication", "nif")} <= included
    assert {("Organization", "county"), ("Organization", "township"), ("Organization", "village")} <= included
    provenances = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"]
    targets = {t["reference"] for p in provenances for t in p["target"]}
    assert {e["fullUrl"] for e in bundle["entry"] if e["search"]["mode"] == "match"} <= targets
    assert outcome(bundle) == [] and bundle["total"] == 3
