"""The central review through the gateway, on SQLite and PostgreSQL: ``$review``, CDS Hooks,
review on write, recorded decisions, overrides and the post-review sample (POL-06, POL-07,
POL-09, POL-20). The alliance, catalogue and lists are imported through the service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from gateway.alliance.review.central import override
from gateway.alliance.review.sample import draw, sample
from gateway.commands import OPERATOR
from gateway.hooks import RequestContext

Client = Callable[..., TestClient]


def _review(client: TestClient, body: dict[str, Any], member: str = "T1") -> tuple[list[str], dict[str, str]]:
    response = client.post(f"/fhir/MedicationRequest/$review?member={member}", json=body)
    assert response.status_code == 200, response.text
    params = response.json()["parameter"]
    results = [p["valueCode"] for p in params if p["name"] == "result"]
    rules = {
        p["resource"]["code"]["coding"][0]["code"]: p["resource"]["severity"] for p in params if p["name"] == "issue"
    }
    return results, rules


def test_pol06_duplicate_therapy_across_two_members_read_through_the_service(gateway: Client, alliance: Any) -> None:
    client = gateway()
    at_t2 = alliance.prescription(
        "AMLO",
        rx_id="rx-t2",
        patient="Patient/p1",
        diagnosis="I10.x00x002",
        dose=(5, "mg"),
        per_day=1,
        days=28,
        long_term="hypertension",
        member="T2",
        authored="2026-11-01T08:00:00+08:00",
    )
    assert client.put("/fhir/MedicationRequest/rx-t2", json=at_t2).status_code == 201
    new = alliance.prescription(
        "AMLO",
        rx_id="rx-t1",
        patient="Patient/p1",
        diagnosis="I10.x00x002",
        dose=(5, "mg"),
        per_day=1,
        days=7,
        authored="2026-11-10T08:00:00+08:00",
    )
    results, rules = _review(client, new)
    assert results == ["reject"] and rules == {"duplicate-therapy": "high"}
    # another patient: no duplicate
    other = {**new, "subject": {"reference": "Patient/p2"}}
    assert _review(client, other) == (["pass"], {})


def test_pol06_review_of_a_bundle_with_medication_and_patient(gateway: Client, alliance: Any) -> None:
    client = gateway()
    rx = alliance.prescription("LEVO", patient="Patient/child", diagnosis="J18.900", dose=(0.5, "g"), per_day=1)
    rx["medication"] = {"reference": {"reference": "Medication/levo"}}
    medication = {
        "resourceType": "Medication",
        "id": "levo",
        "code": {"coding": [{"system": "http://yaolian.org/fhir/sid/nhsa-drug-code", "code": alliance.code("LEVO")}]},
    }
    patient = {"resourceType": "Patient", "id": "child", "birthDate": "2016-03-01"}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": rx}, {"resource": medication}, {"resource": patient}],
    }
    results, rules = _review(client, bundle, member="T1")
    assert results == ["warn"] and rules == {"not-in-formulary": "moderate", "age-caution": "moderate"}
    response = client.post("/fhir/MedicationRequest/$review?member=T1", json=bundle)
    outcome = next(p["resource"] for p in response.json()["parameter"] if p["name"] == "outcome")
    assert {i["severity"] for i in outcome["issue"]} == {"warning"}
    assert all(i["expression"] == ["Bundle.entry[0].resource"] for i in outcome["issue"])
    version = next(p["valueString"] for p in response.json()["parameter"] if p["name"] == "ruleSetVersion")
    assert version.startswith("county-prescription-review|")


def test_pol07_every_review_decision_is_recorded_and_a_pharmacist_may_override(gateway: Client, alliance: Any) -> None:
    client = gateway()
    rx = alliance.prescription("METF", rx_id="rx-long", patient="Patient/p1", days=90, long_term="diabetes")
    assert client.put("/fhir/MedicationRequest/rx-long", json=rx).status_code == 201
    assert _review(client, rx) == (["reject"], {"long-term-over-12-weeks": "high"})
    stored = client.post("/fhir/MedicationRequest/rx-long/$review?member=T1&record=false")  # instance level
    assert [p["valueCode"] for p in stored.json()["parameter"] if p["name"] == "result"] == ["reject"]
    tasks = client.get("/fhir/Task?focus=MedicationRequest/rx-long").json()["entry"]
    (task,) = [e["resource"] for e in tasks]
    assert task["businessStatus"]["coding"][0]["code"] == "reject"
    inputs = {i["type"]["text"]: i.get("valueString") or i.get("valueReference") for i in task["input"]}
    assert inputs["member"] == "T1" and inputs["prescriber"] == {"reference": "Practitioner/dr-li"}
    assert inputs["rule"] == "long-term-over-12-weeks|high" and inputs["ruleSetVersion"]
    (finding,) = [o["valueReference"]["reference"] for o in task["output"]]
    service = client.app.state.review  # type: ignore[attr-defined]
    ctx = RequestContext(base_url="http://testserver/fhir", principal=OPERATOR)
    written = override(service, ctx, task["id"], "Practitioner/ph-wang", "stable for years; patient travels")
    assert finding in written and "MedicationRequest/rx-long" in written
    issue = client.get(f"/fhir/{finding}").json()
    assert issue["status"] == "mitigated"
    assert issue["mitigation"][0]["note"][0]["text"] == "stable for years; patient travels"
    assert issue["mitigation"][0]["author"] == {"reference": "Practitioner/ph-wang"}
    stored = client.get("/fhir/MedicationRequest/rx-long").json()
    review_ext = next(e for e in stored["extension"] if e["url"].endswith("yl-central-review-result"))
    assert {"url": "reviewer", "valueReference": {"reference": "Practitioner/ph-wang"}} in review_ext["extension"]


def test_pol06_cds_hooks_order_sign(gateway: Client, alliance: Any) -> None:
    client = gateway()
    services = client.get("/cds-services").json()["services"]
    assert services[0]["hook"] == "order-sign"
    emergency = alliance.prescription(
        "IBUP", patient="Patient/p1", category="emergency", days=5, diagnosis="M54.500", dose=(0.2, "g"), per_day=3
    )
    request = {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/dr-li",
            "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": emergency}]},
        },
    }
    answer = client.post(f"/cds-services/{services[0]['id']}?member=T1", json=request)
    assert answer.status_code == 200, answer.text
    cards = answer.json()["cards"]
    assert [(c["indicator"], c["source"]["topic"]["code"]) for c in cards] == [("warning", "days-supply-over-limit")]
    assert answer.json()["systemActions"][0]["resource"]["resourceType"] == "DetectedIssue"
    request["context"]["draftOrders"]["entry"][0]["resource"] = {
        **emergency,
        "dispenseRequest": {**emergency["dispenseRequest"], "expectedSupplyDuration": {"value": 3, "code": "d"}},
    }
    assert client.post(f"/cds-services/{services[0]['id']}?member=T1", json=request).json()["cards"] == []
    bad = client.post(f"/cds-services/{services[0]['id']}", json={"hook": "order-sign", "context": {}})
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    assert client.post("/cds-services/nothing-here", json=request).status_code == 404


def test_pol06_review_on_write_block_refuses_with_findings_and_stores_clean_ones(
    gateway: Client, alliance: Any
) -> None:
    gateway()
    client = gateway("block")
    long = alliance.prescription(
        "METF", rx_id="rx-b1", patient="Patient/p1", days=85, long_term="diabetes", member="T1"
    )
    refused = client.put("/fhir/MedicationRequest/rx-b1", json=long)
    assert refused.status_code == 422
    issues = refused.json()["issue"]
    assert any("long-term-over-12-weeks" in i["diagnostics"] and i["severity"] == "error" for i in issues)
    assert client.get("/fhir/MedicationRequest/rx-b1").status_code == 404
    ok = alliance.prescription("METF", rx_id="rx-b2", patient="Patient/p1", days=84, long_term="diabetes", member="T1")
    stored = client.put("/fhir/MedicationRequest/rx-b2", json=ok)
    assert stored.status_code == 201, stored.text
    review_ext = next(e for e in stored.json()["extension"] if e["url"].endswith("yl-central-review-result"))
    assert {"url": "result", "valueCode": "pass"} in review_ext["extension"]
    tasks = client.get("/fhir/Task?focus=MedicationRequest/rx-b2").json()
    assert tasks["entry"][0]["resource"]["businessStatus"]["coding"][0]["code"] == "pass"


def test_pol06_review_on_write_warn_stores_the_result_in_the_review_extension(gateway: Client, alliance: Any) -> None:
    gateway()
    client = gateway("warn")
    long = alliance.prescription("METF", rx_id="rx-w1", patient="Patient/p1", days=120, member="T1")
    stored = client.put("/fhir/MedicationRequest/rx-w1", json=long)
    assert stored.status_code == 201, stored.text
    review_ext = next(e for e in stored.json()["extension"] if e["url"].endswith("yl-central-review-result"))
    parts = {p["url"]: p for p in review_ext["extension"]}
    assert parts["result"]["valueCode"] == "warn" and "days-supply-over-limit" in parts["note"]["valueString"]
    issues = client.get("/fhir/DetectedIssue?implicated=MedicationRequest/rx-w1").json()
    assert [e["resource"]["code"]["coding"][0]["code"] for e in issues["entry"]] == ["days-supply-over-limit"]


def test_pol07_post_review_sample_is_reproducible_and_reports_rates(
    gateway: Client, alliance: Any, tmp_path: Path
) -> None:
    client = gateway()
    for n in range(12):
        days = 30 if n % 3 == 0 else 5  # every third one over 7 days
        rx = alliance.prescription(
            "METF",
            rx_id=f"rx-s{n:02d}",
            patient=f"Patient/s{n}",
            days=days,
            member="T1" if n % 2 else "V1",
            authored=f"2025-11-{n + 1:02d}T09:00:00+08:00",
        )
        assert client.put(f"/fhir/MedicationRequest/rx-s{n:02d}", json=rx).status_code == 201
    december = alliance.prescription("METF", rx_id="rx-dec", authored="2025-12-01T09:00:00+08:00")
    client.put("/fhir/MedicationRequest/rx-dec", json=december)
    central = client.app.state.review  # type: ignore[attr-defined]
    ctx = RequestContext(base_url="http://testserver/fhir", principal=OPERATOR)
    whole = sample(central, ctx, "2025-11", 1.0)
    assert whole.population == 12 and len(whole.reviews) == 12
    assert {r for r in whole.rates("rule")} == {("days-supply-over-limit", 12, 4, 4 / 12)}
    assert {(n, a, b) for n, a, b, _ in whole.rates("member")} == {("T1", 6, 2), ("V1", 6, 2)}
    assert whole.rates("prescriber")[0][:3] == ("Practitioner/dr-li", 12, 4)
    first = sample(central, ctx, "2025-11", 0.25, seed=7)
    again = sample(central, ctx, "2025-11", 0.25, seed=7)
    assert [r.prescription for r in first.reviews] == [r.prescription for r in again.reviews]
    assert len(first.reviews) == 3
    assert "days-supply-over-limit" in whole.csv() and "<table" in whole.html()


def test_draw_is_seeded_and_sized_by_rate() -> None:
    ids = [f"rx-{n}" for n in range(100)]
    assert draw(ids, 0.05, 1) == draw(list(reversed(ids)), 0.05, 1)
    assert len(draw(ids, 0.05, 1)) == 5 and draw(ids, 0.05, 1) != draw(ids, 0.05, 2)
    assert draw([], 0.5, 0) == [] and len(draw(ids[:3], 0.01, 0)) == 1


def test_record_survives_a_json_round_trip(alliance: Any) -> None:
    """The Task of a decision is plain JSON (no Python objects leak into what is stored)."""
    from gateway.alliance.review.central import review_task
    from gateway.alliance.review.engine import Review

    task = review_task(Review("set", "1", "MedicationRequest/x", "T1", "Patient/p", None, None), "2026-01-01T00:00:00Z")
    assert orjson.loads(orjson.dumps(task))["focus"] == {"reference": "MedicationRequest/x"}


def test_pol03_formulary_check_operation(gateway: Client, alliance: Any) -> None:
    client = gateway()
    answer = client.get("/fhir/$formulary-check")
    assert answer.status_code == 200, answer.text
    findings = [
        {p["name"]: next(iter(v for k, v in p.items() if k.startswith("value"))) for p in f["part"]}
        for f in answer.json()["parameter"]
    ]
    assert {"rule": "village-chronic-not-in-township", "member": "V1", "drug": alliance.code("GLIC")}.items() <= next(
        f for f in findings if f["rule"] == "village-chronic-not-in-township"
    ).items()
    page = client.get("/fhir/$formulary-check?format=html")
    assert page.status_code == 200 and "sinking-candidate" in page.text


def test_pol06_duplicate_therapy_when_each_member_registered_the_patient_itself(gateway: Client, alliance: Any) -> None:
    """The same person as two Patients (one per member) sharing the resident ID card number."""
    client = gateway()
    card = {"system": "urn:oid:2.16.156.10011.1.3", "value": "11010519491231002X"}
    for pid in ("at-t2", "at-t1"):
        client.put(f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid, "identifier": [card]})
    first = alliance.prescription(
        "CAPT",
        rx_id="rx-cap-t2",
        patient="Patient/at-t2",
        diagnosis="I10.x00x002",
        dose=(25, "mg"),
        per_day=2,
        days=7,
        member="T2",
        authored="2026-11-08T08:00:00+08:00",
    )
    assert client.put("/fhir/MedicationRequest/rx-cap-t2", json=first).status_code == 201
    # a Bundle with urn:uuid references, the drug by code only, the diagnosis as a Condition
    second = alliance.prescription(
        "CAPT",
        rx_id="rx-cap-t1",
        patient="urn:uuid:pat",
        dose=(25, "mg"),
        per_day=2,
        days=5,
        authored="2026-11-10T08:00:00+08:00",
    )
    second["medication"] = {"concept": {"coding": [{"code": alliance.code("CAPT")}]}}
    second["reason"] = [{"reference": {"reference": "urn:uuid:dx"}}]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:rx", "resource": second},
            {
                "fullUrl": "urn:uuid:pat",
                "resource": {"resourceType": "Patient", "identifier": [card], "birthDate": "1949-12-31"},
            },
            {
                "fullUrl": "urn:uuid:dx",
                "resource": {
                    "resourceType": "Condition",
                    "code": {"coding": [{"system": "urn:oid:2.16.156.10011.2.3.3.11.1", "code": "I10.x00x002"}]},
                },
            },
        ],
    }
    assert _review(client, bundle, member="T1") == (["reject"], {"duplicate-therapy": "high"})


def test_pol20_prescribing_member_from_the_prescription_number_assigner(gateway: Client, alliance: Any) -> None:
    client = gateway()
    rx = alliance.prescription("LEVO", diagnosis="J18.900", dose=(0.5, "g"), per_day=1)
    response = client.post("/fhir/MedicationRequest/$review", json=rx)
    assert [p["valueCode"] for p in response.json()["parameter"] if p["name"] == "result"] == ["pass"]
    rx["identifier"][0]["assigner"] = {"reference": "Organization/org-t1"}
    assert _review_without_member(client, rx) == {"not-in-formulary": "moderate"}
    rx["identifier"][0]["assigner"] = {"identifier": {"system": "http://yaolian.org/fhir/sid/member", "value": "C1"}}
    assert _review_without_member(client, rx) == {}


def _review_without_member(client: TestClient, body: dict[str, Any]) -> dict[str, str]:
    params = client.post("/fhir/MedicationRequest/$review", json=body).json()["parameter"]
    return {
        p["resource"]["code"]["coding"][0]["code"]: p["resource"]["severity"] for p in params if p["name"] == "issue"
    }
