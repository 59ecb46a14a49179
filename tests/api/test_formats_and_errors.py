"""Content negotiation (JSON/XML, ``_format``, Accept, Content-Type) and error responses:
every failure is an OperationOutcome with issue.code, diagnostics, a Chinese details.text and
a declared YL- code, with the HTTP status the FHIR http page gives."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from gateway.app import create_app
from gateway.errors import CODES, ERROR_CODE_SYSTEM
from gateway.fhir.xml_format import json_to_xml, xml_to_json
from gateway.hooks import Hooks, Pointcut
from gateway.settings import Settings

FHIR_JSON = {"Content-Type": "application/fhir+json"}
FHIR_XML = {"Content-Type": "application/fhir+xml"}
CJK = re.compile(r"[\u4e00-\u9fff]")
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"family": "王", "given": ["芳"]}],
    "birthDate": "1980-02-03",
}


@pytest.fixture
def with_patient(client: TestClient) -> TestClient:
    response = client.put("/fhir/Patient/p1", content=json.dumps(PATIENT), headers=FHIR_JSON)
    assert response.status_code == 201
    return client


def assert_outcome(body: dict[str, Any], status: int, code: str, issue_code: str) -> None:
    assert body["resourceType"] == "OperationOutcome", (status, body)
    first = body["issue"][0]
    assert first["severity"] == "error"
    assert first["code"] == issue_code
    assert first["diagnostics"]
    assert CJK.search(first["details"]["text"]), first["details"]["text"]
    assert first["details"]["coding"] == [{"system": ERROR_CODE_SYSTEM, "code": code}]
    assert code in CODES


# -- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("", None, "application/fhir+json"),
        ("?_format=xml", None, "application/fhir+xml"),
        ("?_format=application/fhir%2Bxml", None, "application/fhir+xml"),
        ("?_format=json", "application/fhir+xml", "application/fhir+json"),
        ("", "application/fhir+xml", "application/fhir+xml"),
        ("", "application/xml;q=0.9", "application/fhir+xml"),
        ("", "application/json", "application/fhir+json"),
        ("", "*/*", "application/fhir+json"),
        ("", "text/html,application/xhtml+xml", "application/fhir+json"),
    ],
)
def test_response_format_negotiation(with_patient: TestClient, query: str, accept: str | None, expected: str) -> None:
    headers = {"Accept": accept} if accept else {}
    response = with_patient.get(f"/fhir/Patient/p1{query}", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"{expected};charset=utf-8"
    body = xml_to_json(response.content) if expected.endswith("xml") else response.content
    read = json.loads(body)
    assert {k: read[k] for k in ("resourceType", "id", "name", "birthDate")} == {
        k: PATIENT[k] for k in ("resourceType", "id", "name", "birthDate")
    }


def test_xml_document_shape(with_patient: TestClient) -> None:
    root = etree.fromstring(with_patient.get("/fhir/Patient/p1?_format=xml").content)
    assert root.tag == "{http://hl7.org/fhir}Patient"
    assert root.find("{http://hl7.org/fhir}id").get("value") == "p1"
    assert root.find("{http://hl7.org/fhir}birthDate").get("value") == "1980-02-03"


def test_search_bundle_and_outcome_in_xml(with_patient: TestClient) -> None:
    bundle = json.loads(xml_to_json(with_patient.get("/fhir/Patient?_format=xml&birthdate=1980").content))
    assert bundle["type"] == "searchset"
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["p1"]
    error = with_patient.get("/fhir/Patient/none?_format=xml")
    assert error.status_code == 404
    assert error.headers["Content-Type"] == "application/fhir+xml;charset=utf-8"
    assert_outcome(json.loads(xml_to_json(error.content)), 404, "YL-0201", "not-found")


def test_xml_in_and_xml_out(client: TestClient) -> None:
    xml = json_to_xml(json.dumps({**PATIENT, "id": "x1"}).encode())
    response = client.put("/fhir/Patient/x1", content=xml, headers={**FHIR_XML, "Accept": "application/fhir+xml"})
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/fhir+xml;charset=utf-8"
    echoed = json.loads(xml_to_json(response.content))
    assert echoed["name"] == PATIENT["name"]
    assert echoed["meta"]["versionId"] == "1"


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/fhir+json; charset=utf-8", "text/json", "application/json+fhir"]
)
def test_json_content_types_accepted_or_refused(client: TestClient, content_type: str) -> None:
    response = client.post("/fhir/Patient", content=json.dumps(PATIENT), headers={"Content-Type": content_type})
    if content_type == "application/json+fhir":  # the DSTU2 spelling is not a supported media type
        assert response.status_code == 415
        assert_outcome(response.json(), 415, "YL-0110", "not-supported")
    else:
        assert response.status_code == 201


# -- errors ---------------------------------------------------------------------------------

BAD_JSON = b'{"resourceType": "Patient",\n  "name": [}'

ERROR_CASES: list[tuple[str, str, dict[str, str], bytes | None, int, str, str]] = [
    ("GET", "/fhir/Unicorn/1", {}, None, 404, "YL-0200", "not-found"),
    ("POST", "/fhir/Unicorn", FHIR_JSON, b'{"resourceType":"Unicorn"}', 404, "YL-0200", "not-found"),
    ("PUT", "/fhir/Unicorn?name=x", FHIR_JSON, b'{"resourceType":"Unicorn"}', 404, "YL-0200", "not-found"),
    ("GET", "/fhir/Patient/none", {}, None, 404, "YL-0201", "not-found"),
    ("GET", "/fhir/patient", {}, None, 404, "YL-0205", "not-found"),
    ("GET", "/fhir/Patient/p1/_history/1/more", {}, None, 404, "YL-0205", "not-found"),
    ("GET", "/fhir/$nothing", {}, None, 404, "YL-0204", "not-supported"),
    ("PATCH", "/fhir/Patient", {}, None, 405, "YL-0205", "not-supported"),
    ("POST", "/fhir/metadata", FHIR_JSON, b"{}", 405, "YL-0205", "not-supported"),
    ("DELETE", "/fhir/_history", {}, None, 405, "YL-0205", "not-supported"),
    ("POST", "/fhir/Patient/p1/_history", FHIR_JSON, b"{}", 405, "YL-0205", "not-supported"),
    ("GET", "/fhir/Patient?_format=csv", {}, None, 406, "YL-0111", "not-supported"),
    ("GET", "/fhir/Patient", {"Accept": "text/csv"}, None, 406, "YL-0111", "not-supported"),
    ("POST", "/fhir/Patient", {"Content-Type": "text/plain"}, b"hello", 415, "YL-0110", "not-supported"),
    ("PUT", "/fhir/Patient/p1", {"Content-Type": "text/csv"}, b"a,b", 415, "YL-0110", "not-supported"),
    ("POST", "/fhir", {"Content-Type": "text/plain"}, b"hello", 415, "YL-0110", "not-supported"),
    ("POST", "/fhir/Patient", FHIR_JSON, BAD_JSON, 400, "YL-0100", "structure"),
    ("POST", "/fhir/Patient", FHIR_JSON, b"[1, 2]", 400, "YL-0100", "structure"),
    ("POST", "/fhir/Patient", FHIR_JSON, b'{"resourceType":"Patient"} trailing', 400, "YL-0100", "structure"),
    ("POST", "/fhir/Patient", FHIR_JSON, b"", 400, "YL-0102", "structure"),
    ("POST", "/fhir/Patient", FHIR_JSON, b'{"name": []}', 400, "YL-0102", "structure"),
    ("POST", "/fhir/Patient", FHIR_JSON, b'{"resourceType":"Practitioner"}', 400, "YL-0103", "invalid"),
    (
        "POST",
        "/fhir/Patient",
        FHIR_XML,
        b"<Patient xmlns='http://hl7.org/fhir'><colour/></Patient>",
        400,
        "YL-0101",
        "structure",
    ),
    ("POST", "/fhir/Patient", FHIR_XML, b"<Patient", 400, "YL-0101", "structure"),
    (
        "POST",
        "/fhir/Patient",
        FHIR_XML,
        b'<!DOCTYPE x [<!ENTITY e "boom">]><Patient xmlns="http://hl7.org/fhir"><id value="&e;"/></Patient>',
        400,
        "YL-0101",
        "structure",
    ),
    ("POST", "/fhir/Patient", FHIR_JSON, b'{"resourceType":"Patient","gender":true}', 400, "YL-0108", "structure"),
    ("POST", "/fhir/Patient", FHIR_JSON, b'{"resourceType":"Patient","birthDate":null}', 400, "YL-0108", "structure"),
    ("POST", "/fhir/Patient", FHIR_JSON, b'{"resourceType":"Patient","name":["Li"]}', 400, "YL-0108", "structure"),
    (
        "POST",
        "/fhir/Patient",
        FHIR_JSON,
        b'{"resourceType":"Patient","text":{"status":"generated","div":"<div>no namespace</div>"}}',
        400,
        "YL-0109",
        "structure",
    ),
    (
        "POST",
        "/fhir/Patient",
        FHIR_JSON,
        b'{"resourceType":"Patient","contained":[{"resourceType":"Unicorn","id":"u"}]}',
        400,
        "YL-0112",
        "structure",
    ),
    ("POST", "/fhir/Patient", FHIR_JSON, b'{"resourceType":"Patient","name":"\xff"}', 400, "YL-0100", "structure"),
    (
        "POST",
        "/fhir/Patient",
        FHIR_JSON,
        b'{"resourceType":"Patient","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
        400,
        "YL-0100",
        "structure",
    ),
    ("POST", "/fhir", FHIR_JSON, b"\xff\xfe{}", 400, "YL-0100", "structure"),
    ("POST", "/fhir/Patient", FHIR_JSON, b'{"resourceType":"Patient","colour":"red"}', 422, "", "structure"),
    (
        "PUT",
        "/fhir/Patient/p1",
        {**FHIR_JSON, "If-Match": 'W/"5"'},
        json.dumps(PATIENT).encode(),
        412,
        "YL-0300",
        "conflict",
    ),
    ("GET", "/fhir/Patient?birthdate=yesterday", {}, None, 400, "YL-0401", "invalid"),
    ("GET", "/fhir/Patient?name:fuzzy=x", {}, None, 400, "YL-0402", "not-supported"),
    ("GET", "/fhir/Patient?_sort=colour", {}, None, 400, "YL-0403", "invalid"),
    ("GET", "/fhir/Patient?_count=many", {}, None, 400, "YL-0404", "invalid"),
    ("GET", "/fhir/Patient?organization.colour=red", {}, None, 400, "YL-0405", "invalid"),
    ("GET", "/fhir/Patient?colour=red", {"Prefer": "handling=strict"}, None, 400, "YL-0400", "invalid"),
    ("POST", "/fhir", FHIR_JSON, b'{"resourceType":"Bundle","type":"collection"}', 400, "YL-0500", "invalid"),
    ("POST", "/fhir", FHIR_JSON, b'{"resourceType":"Bundle","type":"batch","entry":[{}]}', 400, "YL-0501", "invalid"),
    (
        "POST",
        "/fhir",
        FHIR_JSON,
        b'{"resourceType":"Bundle","type":"batch","entry":[{"request":"GET Patient"}]}',
        400,
        "YL-0108",
        "structure",
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "status", "code", "issue_code"),
    ERROR_CASES,
    ids=[f"{c[4]}-{c[5] or 'structure'}-{i}" for i, c in enumerate(ERROR_CASES)],
)
def test_every_error_is_an_operation_outcome(
    with_patient: TestClient,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    code: str,
    issue_code: str,
) -> None:
    response = with_patient.request(method, url, headers=headers, content=body)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/fhir+json;charset=utf-8"
    outcome = response.json()
    if code:
        assert_outcome(outcome, status, code, issue_code)
    else:  # base-structure finding of the core or of gateway.validation
        assert outcome["issue"][0]["details"]["coding"][0]["code"] in ("YL-0700", "YL-3001")
        assert outcome["issue"][0]["code"] == issue_code
        assert outcome["issue"][0]["expression"] == ["Patient.colour"]
        assert CJK.search(outcome["issue"][0]["details"]["text"])
    if status == 405:
        assert response.headers["Allow"]


def test_bad_json_diagnostics_give_line_and_column(client: TestClient) -> None:
    response = client.post("/fhir/Patient", content=BAD_JSON, headers=FHIR_JSON)
    assert response.status_code == 400
    assert (
        response.json()["issue"][0]["diagnostics"] == "The body is not valid JSON: Expecting value at line 2 column 12."
    )


def test_bad_xml_points_at_the_element(client: TestClient) -> None:
    body = b"<Patient xmlns='http://hl7.org/fhir'><active value='true'/><colour/></Patient>"
    response = client.post("/fhir/Patient", content=body, headers=FHIR_XML)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["/f:Patient/f:colour[1]"]


def test_405_lists_every_allowed_method(client: TestClient) -> None:
    response = client.request("PATCH", "/fhir/Patient")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST", "PUT", "DELETE"}
    instance = client.post("/fhir/Patient/p1", content=b"{}", headers=FHIR_JSON)
    assert instance.status_code == 405
    assert set(instance.headers["Allow"].split(", ")) == {"GET", "HEAD", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def failing_client(database_url: str) -> Iterator[TestClient]:
    hooks = Hooks()

    def explode(_ctx: Any) -> None:
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")

    hooks.register(Pointcut.REQUEST_RECEIVED, explode)
    app = create_app(Settings(database=database_url), hooks=hooks)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_unexpected_errors_are_500_outcomes_that_leak_nothing(failing_client: TestClient) -> None:
    response = failing_client.get("/fhir/Patient/p1")
    assert response.status_code == 500
    assert_outcome(response.json(), 500, "YL-0001", "exception")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert re.search(r"\(reference [0-9a-f]{12}\)", response.json()["issue"][0]["diagnostics"])
