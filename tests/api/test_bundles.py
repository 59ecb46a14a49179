"""Batch and transaction Bundles: independent batch entries, atomic transactions,
``urn:uuid:`` and conditional references rewritten to the ids the resources got."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi.testclient import TestClient

FHIR_JSON = {"Content-Type": "application/fhir+json"}
MRN = "http://example.org/mrn"
PRACTITIONER_ID = "http://example.org/practitioner-code"


def post_bundle(client: TestClient, bundle: dict[str, Any]) -> Any:
    return client.post("/fhir", content=json.dumps(bundle), headers=FHIR_JSON)


def search(client: TestClient, query: str) -> dict[str, Any]:
    response = client.get(f"/fhir/{query}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def total(client: TestClient, query: str) -> int:
    return int(search(client, query)["total"])


def seed_practitioner(client: TestClient) -> str:
    body = {"resourceType": "Practitioner", "identifier": [{"system": PRACTITIONER_ID, "value": "D-7"}]}
    response = client.post("/fhir/Practitioner", content=json.dumps(body), headers=FHIR_JSON)
    assert response.status_code == 201
    return str(response.json()["id"])


def prescription_transaction(subject: str = "urn:uuid:6b1c5b4a-0000-4000-8000-000000000001") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6b1c5b4a-0000-4000-8000-000000000002",
                "resource": {
                    "resourceType": "MedicationRequest",
                    "status": "active",
                    "intent": "order",
                    "medication": {"reference": {"reference": "urn:uuid:6b1c5b4a-0000-4000-8000-000000000003"}},
                    "subject": {"reference": subject},
                    "requester": {"reference": f"Practitioner?identifier={PRACTITIONER_ID}|D-7"},
                    "dispenseRequest": {"quantity": {"value": 28.0, "unit": "tablet"}},
                },
                "request": {"method": "POST", "url": "MedicationRequest"},
            },
            {
                "fullUrl": "urn:uuid:6b1c5b4a-0000-4000-8000-000000000001",
                "resource": {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "T-1"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:6b1c5b4a-0000-4000-8000-000000000003",
                "resource": {"resourceType": "Medication", "code": {"text": "Amlodipine 5 mg tablet"}},
                "request": {"method": "POST", "url": "Medication"},
            },
            {
                "fullUrl": "http://testserver/fhir/Provenance/prov-1",
                "resource": {
                    "resourceType": "Provenance",
                    "id": "prov-1",
                    "meta": {"tag": [{"system": "http://yaolian.org/tags", "code": "ingest"}]},
                    "target": [{"reference": "urn:uuid:6b1c5b4a-0000-4000-8000-000000000002"}],
                    "recorded": "2024-03-01T09:00:00+08:00",
                    "agent": [{"who": {"reference": f"Practitioner?identifier={PRACTITIONER_ID}|D-7"}}],
                },
                "request": {"method": "PUT", "url": "Provenance/prov-1"},
            },
        ],
    }


def test_transaction_rewrites_urn_uuid_and_conditional_references(client: TestClient) -> None:
    practitioner = seed_practitioner(client)
    response = post_bundle(client, prescription_transaction())
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "transaction-response"
    request_entry, patient_entry, medication_entry, provenance_entry = bundle["entry"]
    assert [e["response"]["status"] for e in bundle["entry"]] == ["201 Created"] * 4
    patient_id = patient_entry["resource"]["id"]
    medication_id = medication_entry["resource"]["id"]
    request_id = request_entry["resource"]["id"]
    assert patient_entry["response"]["location"] == f"Patient/{patient_id}/_history/1"
    assert patient_entry["response"]["etag"] == 'W/"1"'
    assert request_entry["fullUrl"] == f"http://testserver/fhir/MedicationRequest/{request_id}"
    stored = client.get(f"/fhir/MedicationRequest/{request_id}").json()
    assert stored["subject"] == {"reference": f"Patient/{patient_id}"}
    assert stored["medication"] == {"reference": {"reference": f"Medication/{medication_id}"}}
    assert stored["requester"] == {"reference": f"Practitioner/{practitioner}"}
    raw = client.get(f"/fhir/MedicationRequest/{request_id}").content
    assert b'"quantity": {"value": 28.0, "unit": "tablet"}' in raw  # the client's text, not re-encoded
    provenance = client.get("/fhir/Provenance/prov-1").json()  # a PUT entry keeps its id and meta
    assert provenance["target"] == [{"reference": f"MedicationRequest/{request_id}"}]
    assert provenance["agent"][0]["who"] == {"reference": f"Practitioner/{practitioner}"}
    assert provenance["meta"]["tag"] == [{"system": "http://yaolian.org/tags", "code": "ingest"}]
    assert provenance_entry["response"]["location"] == "Provenance/prov-1/_history/1"
    # the index holds the rewritten references
    found = search(client, f"MedicationRequest?subject=Patient/{patient_id}&requester={practitioner}")
    assert [e["resource"]["id"] for e in found["entry"]] == [request_id]


def test_failing_transaction_entry_leaves_nothing_behind(client: TestClient) -> None:
    seed_practitioner(client)
    bundle = prescription_transaction()
    bundle["entry"].append(
        {
            "resource": {"resourceType": "Patient", "id": "other", "active": True},
            "request": {"method": "PUT", "url": "Patient/not-other"},
        }
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    codes = [i["details"]["coding"][0]["code"] for i in outcome["issue"]]
    assert codes == ["YL-0502", "YL-0104"]
    assert "entry 4" in outcome["issue"][0]["diagnostics"]
    assert total(client, f"Patient?identifier={MRN}|T-1") == 0
    assert total(client, "MedicationRequest") == 0
    assert total(client, "Medication") == 0
    assert client.get("/fhir/Patient/not-other").status_code == 404
    assert client.get("/fhir/Provenance/prov-1").status_code == 404
    assert client.get("/fhir/_history").json()["total"] == 1  # only the seeded practitioner


def test_transaction_with_unresolvable_conditional_reference_fails_whole(client: TestClient) -> None:
    response = post_bundle(client, prescription_transaction())  # no practitioner D-7 exists
    assert response.status_code == 400
    codes = [i["details"]["coding"][0]["code"] for i in response.json()["issue"]]
    assert codes == ["YL-0502", "YL-0503"]
    assert total(client, "Patient") == 0
    assert total(client, "Medication") == 0


def test_transaction_with_stale_if_match_is_412_and_rolls_back(client: TestClient) -> None:
    client.put("/fhir/Patient/keep", content=json.dumps({"resourceType": "Patient", "id": "keep"}), headers=FHIR_JSON)
    client.put(
        "/fhir/Patient/keep",
        content=json.dumps({"resourceType": "Patient", "id": "keep", "active": True}),
        headers=FHIR_JSON,
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Organization", "name": "Township centre"},
                "request": {"method": "POST", "url": "Organization"},
            },
            {
                "resource": {"resourceType": "Patient", "id": "keep", "active": False},
                "request": {"method": "PUT", "url": "Patient/keep", "ifMatch": 'W/"1"'},
            },
        ],
    }
    response = post_bundle(client, bundle)
    assert response.status_code == 412
    assert total(client, "Organization") == 0
    assert client.get("/fhir/Patient/keep").json()["active"] is True


def test_transaction_invalid_resource_is_422_and_rolls_back(client: TestClient) -> None:
    bundle = prescription_transaction(subject="Patient/whoever")
    bundle["entry"][0]["resource"]["requester"] = {"display": "Dr Li"}
    bundle["entry"][2]["resource"]["colour"] = "white"
    response = post_bundle(client, bundle)
    assert response.status_code == 422
    issues = response.json()["issue"]
    assert issues[0]["details"]["coding"][0]["code"] == "YL-0502"
    assert issues[1]["expression"] == ["Bundle.entry[2].resource.colour"]
    assert total(client, "Patient") == 0
    assert total(client, "MedicationRequest") == 0


def test_transaction_conditional_create_update_delete_get_and_patch(client: TestClient) -> None:
    existing = client.post(
        "/fhir/Patient",
        content=json.dumps({"resourceType": "Patient", "identifier": [{"system": MRN, "value": "E-1"}]}),
        headers=FHIR_JSON,
    ).json()["id"]
    doomed = client.put(
        "/fhir/Organization/doomed",
        content=json.dumps({"resourceType": "Organization", "id": "doomed", "name": "Old clinic"}),
        headers=FHIR_JSON,
    )
    assert doomed.status_code == 201
    patch = [{"op": "add", "path": "/gender", "value": "female"}]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000000a",
                "resource": {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "E-1"}]},
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={MRN}|E-1"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "BP"},
                    "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-00000000000a"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "E-2"}]},
                "request": {"method": "PUT", "url": f"Patient?identifier={MRN}|E-2"},
            },
            {"request": {"method": "DELETE", "url": "Organization/doomed"}},
            {
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "application/json-patch+json",
                    "data": base64.b64encode(json.dumps(patch).encode()).decode(),
                },
                "request": {"method": "PATCH", "url": f"Patient/{existing}"},
            },
            {"request": {"method": "GET", "url": f"Patient/{existing}"}},
        ],
    }
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "200 OK",
        "201 Created",
        "201 Created",
        "204 No Content",
        "200 OK",
        "200 OK",
    ]
    assert entries[0]["resource"]["id"] == existing
    observation = client.get(f"/fhir/Observation/{entries[1]['resource']['id']}").json()
    assert observation["subject"] == {"reference": f"Patient/{existing}"}
    assert total(client, f"Patient?identifier={MRN}|E-2") == 1
    assert client.get("/fhir/Organization/doomed").status_code == 410
    assert client.get(f"/fhir/Patient/{existing}").json()["gender"] == "female"
    assert entries[5]["resource"]["gender"] == "female"  # GET runs after the writes


def test_transaction_duplicate_full_urls_are_400(client: TestClient) -> None:
    bundle = prescription_transaction()
    bundle["entry"][2]["fullUrl"] = bundle["entry"][1]["fullUrl"]
    response = post_bundle(client, bundle)
    assert response.status_code == 400
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "YL-0504"


def test_batch_runs_entries_independently(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "B-1"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Patient", "id": "x", "colour": "red"},
                "request": {"method": "PUT", "url": "Patient/x"},
            },
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {
                "resource": {"resourceType": "Patient", "id": "b2", "identifier": [{"system": MRN, "value": "B-2"}]},
                "request": {"method": "PUT", "url": "Patient/b2"},
            },
            {"request": {"method": "GET", "url": f"Patient?identifier={MRN}|B-1"}},
        ],
    }
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "422", "404", "201 Created", "200 OK"]
    failed = result["entry"][1]["response"]["outcome"]
    assert failed["resourceType"] == "OperationOutcome"
    assert failed["issue"][0]["expression"] == ["Patient.colour"]
    assert result["entry"][2]["response"]["outcome"]["issue"][0]["code"] == "not-found"
    searchset = result["entry"][4]["resource"]
    assert searchset["type"] == "searchset"
    assert [e["resource"]["id"] for e in searchset["entry"]] == [result["entry"][0]["resource"]["id"]]
    assert total(client, f"Patient?identifier={MRN}|B-1") == 1
    assert total(client, f"Patient?identifier={MRN}|B-2") == 1
    assert client.get("/fhir/Patient/x").status_code == 404


def test_transaction_in_xml(client: TestClient) -> None:
    from gateway.fhir.xml_format import json_to_xml, xml_to_json

    seed_practitioner(client)
    xml = json_to_xml(json.dumps(prescription_transaction()).encode())
    response = client.post(
        "/fhir", content=xml, headers={"Content-Type": "application/fhir+xml", "Accept": "application/fhir+xml"}
    )
    assert response.status_code == 200, response.text
    bundle = json.loads(xml_to_json(response.content))
    assert bundle["type"] == "transaction-response"
    assert [e["response"]["status"] for e in bundle["entry"]] == ["201 Created"] * 4
    assert total(client, "MedicationRequest") == 1


def test_transaction_get_entries_see_the_transaction_and_a_failing_get_rolls_back(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient?identifier={MRN}|G-1"}},
            {
                "resource": {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "G-1"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    searchset, created = response.json()["entry"]
    assert searchset["resource"]["total"] == 1
    assert searchset["resource"]["entry"][0]["resource"]["id"] == created["resource"]["id"]
    bundle["entry"][0]["request"]["url"] = "Patient/does-not-exist"
    bundle["entry"][1]["resource"]["identifier"][0]["value"] = "G-2"
    failed = post_bundle(client, bundle)
    assert failed.status_code == 404
    assert total(client, f"Patient?identifier={MRN}|G-2") == 0


def test_transaction_put_needs_an_id_or_criteria(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient"}}],
    }
    response = post_bundle(client, bundle)
    assert response.status_code == 400
    codes = [i["details"]["coding"][0]["code"] for i in response.json()["issue"]]
    assert codes == ["YL-0502", "YL-0501"]
