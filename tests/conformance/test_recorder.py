"""The recording FHIR server: a good client passes, a bad one fails with the reason."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from typer.testing import CliRunner

from conformance import fixtures
from conformance.cli import app
from conformance.model import Outcome
from conformance.recorder import Recorder

from .conftest import ServerThread

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def build(type_: str, i: int, ref: dict[str, str]) -> dict:
    return fixtures.build(type_, i, "rec", lambda t, j: ref[t])


def test_good_client_passes(tmp_path: Path) -> None:
    recorder = Recorder(report=tmp_path / "report")
    with ServerThread(recorder.app) as server, httpx.Client(base_url=server.base_url, headers=FHIR) as http:
        assert http.get("/metadata").json()["resourceType"] == "CapabilityStatement"
        org = build("Organization", 0, {})
        r = http.post("/Organization", json=org)
        assert r.status_code == 201 and r.headers["ETag"] == 'W/"1"'
        org_id = r.headers["Location"].split("/Organization/")[1].split("/")[0]
        # conditional create finds the same organization
        ident = org["identifier"][0]
        again = http.post(
            "/Organization", json=org, headers={"If-None-Exist": f"identifier={ident['system']}|{ident['value']}"}
        )
        assert again.status_code == 200 and again.json()["id"] == org_id
        patient = {**build("Patient", 0, {"Organization": f"Organization/{org_id}"}), "id": "p1"}
        assert http.put("/Patient/p1", json=patient).status_code == 201
        assert http.put("/Patient/p1", json=patient, headers={"If-Match": 'W/"1"'}).status_code == 200
        assert http.get("/Patient/p1").json()["meta"]["versionId"] == "2"
        # a transaction with urn:uuid references
        org_url, pat_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
        org2 = build("Organization", 1, {"Organization": f"Organization/{org_id}"})
        pat2 = build("Patient", 1, {"Organization": org_url})
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"fullUrl": org_url, "resource": org2, "request": {"method": "POST", "url": "Organization"}},
                {"fullUrl": pat_url, "resource": pat2, "request": {"method": "POST", "url": "Patient"}},
            ],
        }
        r = http.post("", json=bundle)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["type"] == "transaction-response"
        assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created", "201 Created"]
        new_org = answer["entry"][0]["response"]["location"].split("/_history")[0]
        new_pat = answer["entry"][1]["response"]["location"].split("/_history")[0]
        assert http.get(new_pat).json()["managingOrganization"]["reference"] == new_org
    results = recorder.results
    assert results and all(r.outcome == Outcome.PASS for r in results), [(r.check.id, r.message) for r in results]
    data = json.loads((tmp_path / "report" / "conformance.json").read_text(encoding="utf-8"))
    assert data["passed"] and data["counts"]["pass"] == len(results)
    assert (tmp_path / "report" / "report.html").exists()


def test_bad_client_fails_with_the_reason(tmp_path: Path) -> None:
    recorder = Recorder(report=tmp_path / "report")
    patient = build("Patient", 0, {"Organization": "Organization/o1"})
    with ServerThread(recorder.app) as server, httpx.Client(base_url=server.base_url) as http:
        wrong_type = http.post("/Patient", content=json.dumps(patient), headers={"Content-Type": "text/plain"})
        invalid = http.post("/Patient", json={k: v for k, v in patient.items() if k != "gender"}, headers=FHIR)
        broken_ref = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                    "resource": build("Patient", 1, {"Organization": f"urn:uuid:{uuid.uuid4()}"}),
                    "request": {"method": "POST", "url": "Patient"},
                }
            ],
        }
        transaction = http.post("", json=broken_ref, headers=FHIR)
        not_json = http.post("/Patient", content=b"{not json", headers=FHIR)
        bad_if_match = http.put("/Patient/x", json={**patient, "id": "x"}, headers={**FHIR, "If-Match": "1"})
        xml = http.post(
            "/Patient",
            content=b'<Patient xmlns="http://hl7.org/fhir"><gender value="female"/></Patient>',
            headers={"Content-Type": "application/fhir+xml"},
        )
    assert wrong_type.status_code == 415 and invalid.status_code == 422 and transaction.status_code == 400
    assert not_json.status_code == 400 and bad_if_match.status_code == 400 and xml.status_code == 422
    for r in (wrong_type, invalid, transaction):
        assert r.json()["resourceType"] == "OperationOutcome"
    messages = [r.message for r in recorder.results]
    assert all(r.outcome == Outcome.FAIL for r in recorder.results), messages
    assert "Content-Type 'text/plain' is not a FHIR format" in messages[0]
    assert "Patient.gender: at least 1 required, found 0" in messages[1]
    assert "is no entry's fullUrl" in messages[2]
    assert "not JSON" in messages[3]
    assert "If-Match '1' is not an ETag" in messages[4]
    assert "Patient.identifier: at least 1 required" in messages[5]  # XML parsed, then profile-checked
    data = json.loads((tmp_path / "report" / "conformance.json").read_text(encoding="utf-8"))
    assert not data["passed"] and len(data["requiredFailures"]) == 6
    assert "<failure" in (tmp_path / "report" / "junit.xml").read_text(encoding="utf-8")


def test_record_command_is_mounted() -> None:
    result = CliRunner().invoke(app, ["record", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--report" in result.output
