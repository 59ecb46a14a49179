"""Write-back: ``GET /fhir/MedicationRequest/{id}/$hl7v2`` renders an extended prescription as
RDE^O11 for the dispensing member; ingesting that message again gives the same prescription."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from ingest_support import GOLDEN, Gateway, ack_fields

from adapters.hl7v2 import HL7v2Adapter

RX_NO = "urn:oid:2.16.156.10011.1.20"
COMPLETE = (GOLDEN / "RDE_O11" / "complete-extended-longterm.hl7").read_bytes()


def _request(gateway: Gateway, rx_no: str) -> dict[str, Any]:
    found = gateway.http.get("/fhir/MedicationRequest", params={"identifier": f"{RX_NO}|{rx_no}"}).json()
    (entry,) = found["entry"]
    return entry["resource"]  # type: ignore[no-any-return]


def _fields(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("meta", "text")}


def test_extended_prescription_round_trips_through_rde_o11(gateway: Gateway) -> None:
    assert ack_fields(gateway.send(COMPLETE))["MSA"][0][1] == "AA"
    before = _request(gateway, "RX20251107000101")

    response = gateway.http.get(f"/fhir/MedicationRequest/{before['id']}/$hl7v2")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("x-application/hl7-v2+er7")
    message = response.content
    segments = ack_fields(message)
    assert segments["MSH"][0][8] == "RDE^O11^RDE_O11"
    assert segments["MSH"][0][5] == "XHCWS"  # receiving facility: the dispensing member
    assert segments["ZRX"][0][6] == "XHCWS"
    assert segments["ORC"][0][12].endswith("^NHSA")

    # the adapter alone: the written message converts to the same MedicationRequest
    adapter = HL7v2Adapter()
    original = _only(adapter.to_fhir(COMPLETE).bundle, "MedicationRequest")
    written = _only(adapter.to_fhir(message).bundle, "MedicationRequest")
    assert written == original

    # through the gateway: ingest it (new MSH-10), the stored prescription keeps its fields
    assert ack_fields(gateway.send(message))["MSA"][0][1] == "AA"
    after = _request(gateway, "RX20251107000101")
    assert after["id"] == before["id"]
    assert _fields(after) == _fields(before)


def _only(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (found,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]
    return found  # type: ignore[no-any-return]


def test_writeback_of_an_unknown_or_wrong_resource(gateway: Gateway) -> None:
    missing = gateway.http.get("/fhir/MedicationRequest/nope/$hl7v2")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    wrong = gateway.http.get("/fhir/Patient/nope/$hl7v2")
    assert wrong.status_code in (400, 404) and wrong.json()["resourceType"] == "OperationOutcome"


def test_scope_prescription_writes_every_order_of_the_prescription(gateway: Gateway) -> None:
    two_orders = (GOLDEN / "RDE_O11" / "v23-standard-two-orders-prn.hl7").read_bytes()
    assert ack_fields(gateway.send(two_orders))["MSA"][0][1] == "AA"
    second = _request(gateway, "RX9002")

    alone = ack_fields(gateway.http.get(f"/fhir/MedicationRequest/{second['id']}/$hl7v2").content)
    assert [orc[2] for orc in alone["ORC"]] == ["RX9002^XHZXWSY"]

    response = gateway.http.get(f"/fhir/MedicationRequest/{second['id']}/$hl7v2", params={"scope": "prescription"})
    assert response.status_code == 200, response.text
    whole = ack_fields(response.content)
    assert [orc[2] for orc in whole["ORC"]] == ["RX9001^XHZXWSY", "RX9002^XHZXWSY"]  # by placer number
    assert [orc[4] for orc in whole["ORC"]] == ["G9001", "G9001"]
    assert len(whole["RXE"]) == 2 and len(whole["PID"]) == 1

    bad = gateway.http.get(f"/fhir/MedicationRequest/{second['id']}/$hl7v2", params={"scope": "all"})
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_a_dispense_elsewhere_points_at_the_prescribing_members_order(gateway: Gateway) -> None:
    """The 延伸处方 loop: XHZXWSY prescribes, XHCWS receives the RDE^O11 Yaolian writes (ORC-2 =
    placer number ^ owner) and dispenses; its RDS^O13 echoes ORC-2, and the dispense's
    authorizingPrescription names the county hospital's order, not the sender's."""
    extended = COMPLETE.replace(b"|GH0010|", b"|GH0011|").replace(b"RX9101^", b"RX9111^")
    assert ack_fields(gateway.send(extended))["MSA"][0][1] == "AA"
    written = ack_fields(gateway.http.get(f"/fhir/MedicationRequest/{_placed(gateway, 'RX9111')}/$hl7v2").content)
    assert written["ORC"][0][2] == "RX9111^XHZXWSY"
    dispensed = "\r".join(
        [
            "MSH|^~\\&|GENERIC_HIS|XHCWS|YAOLIAN|ALLIANCE|20251108093000||RDS^O13^RDS_O13|XC0001|P|2.5|||AL|NE|CHN|"
            "UNICODE UTF-8",
            "PID|1||140423195811022124^^^CHN^NNCHN||赵^秀兰||19581102|F",
            "ORC|RE|RX9111^XHZXWSY||G9101|||||20251108093000",
            "RXD|1|XA10BAE054A001010102770^盐酸二甲双胍缓释片^NHSA|20251108093000|56|TAB^片^L",
            "RXR|PO^口服^HL70162",
        ]
    ).encode()
    assert ack_fields(gateway.send(dispensed))["MSA"][0][1] == "AA"
    found = gateway.http.get(
        "/fhir/MedicationDispense",
        params={"prescription:identifier": "http://yaolian.org/fhir/sid/XHZXWSY/placer-order|RX9111"},
    ).json()
    (entry,) = found["entry"]
    assert entry["resource"]["identifier"][0]["system"] == "http://yaolian.org/fhir/sid/XHCWS/dispense"


def _placed(gateway: Gateway, placer: str) -> str:
    found = gateway.http.get(
        "/fhir/MedicationRequest", params={"identifier": f"http://yaolian.org/fhir/sid/XHZXWSY/placer-order|{placer}"}
    ).json()
    (entry,) = found["entry"]
    return str(entry["resource"]["id"])
