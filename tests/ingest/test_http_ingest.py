"""``POST /fhir/$ingest`` and ``POST /fhir/$convert`` with raw HL7 v2 bodies."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest_support import GOLDEN, Gateway

HL7 = {"Content-Type": "application/hl7-v2"}
MESSAGE = (GOLDEN / "RDE_O11" / "v251-hold.hl7").read_bytes()


def _variant(control_id: str, *pairs: tuple[bytes, bytes]) -> bytes:
    out = MESSAGE.replace(b"GH0003", control_id.encode())
    for old, new in pairs:
        out = out.replace(old, new)
    return out


def test_ingest_stores_and_answers_the_transaction_response(gateway: Gateway) -> None:
    body = _variant("HTTP0001", (b"RX9001", b"RX9501"))
    response = gateway.http.post("/fhir/$ingest?adapter=hl7v2", content=body, headers=HL7)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "transaction-response"
    assert all(e["response"]["status"].startswith(("200", "201")) for e in bundle["entry"])
    found = gateway.http.get("/fhir/MedicationRequest", params={"identifier": "urn:oid:2.16.156.10011.1.20|RX9501"})
    assert found.json()["entry"][0]["resource"]["status"] == "on-hold"
    again = gateway.http.post("/fhir/$ingest?adapter=hl7v2", content=body, headers=HL7)
    assert again.status_code == 200 and again.headers["X-Yaolian-Duplicate"] == "true"
    assert again.content == response.content
    # the same message resent over MLLP is a duplicate too, answered with an ACK
    ack = gateway.send(body)
    assert b"MSA|AA|HTTP0001" in ack


def test_ingest_bad_input_is_an_operation_outcome_with_the_source_location(gateway: Gateway) -> None:
    body = _variant("HTTP0002", (b"20251105090000|||D77", b"2025-02-30 25:00|||D77"))
    response = gateway.http.post("/fhir/$ingest?adapter=hl7v2", content=body, headers=HL7)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("ORC-9" in i.get("expression", []) for i in outcome["issue"]), outcome
    journal = gateway.http.app.state.ingest.journal  # type: ignore[attr-defined]
    assert journal.find("hl7v2", "HTTP0002").status == "rejected"


def test_ingest_unknown_adapter_and_empty_body(gateway: Gateway) -> None:
    unknown = gateway.http.post("/fhir/$ingest?adapter=nope", content=MESSAGE, headers=HL7)
    assert unknown.status_code == 404 and unknown.json()["resourceType"] == "OperationOutcome"
    empty = gateway.http.post("/fhir/$ingest?adapter=hl7v2", content=b"", headers=HL7)
    assert empty.status_code == 400 and empty.json()["resourceType"] == "OperationOutcome"


def test_convert_returns_the_bundle_and_stores_nothing(gateway: Gateway) -> None:
    body = _variant("HTTP0003", (b"RX9001", b"RX9599"), (b"140423198001010029", b"140423198001010037"))
    response = gateway.http.post("/fhir/$convert?adapter=hl7v2", content=body, headers=HL7)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "transaction"
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} >= {"Patient", "MedicationRequest"}
    # the untranslated local drug code is reported in Bundle.issues with its source location
    assert any("RXE-2.1" in i.get("expression", []) for i in bundle["issues"]["issue"])
    stored = gateway.http.get("/fhir/Patient", params={"identifier": "urn:oid:2.16.156.10011.1.3|140423198001010037"})
    assert stored.json().get("total", 0) == 0
    assert gateway.http.app.state.ingest.journal.find("hl7v2", "HTTP0003") is None  # type: ignore[attr-defined]


def test_convert_bad_input_is_an_operation_outcome(gateway: Gateway) -> None:
    response = gateway.http.post("/fhir/$convert?adapter=hl7v2", content=b"PID|1||x\r", headers=HL7)
    assert response.status_code == 422
    assert any("MSH" in i.get("expression", []) for i in response.json()["issue"])
