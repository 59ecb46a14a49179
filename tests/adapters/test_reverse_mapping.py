"""Write-back read off the mappings: HL7 -> FHIR -> HL7 -> FHIR keeps the prescription, for the
base mapping and for the WINNING_HIS dialect, whose message carries the dialect's positions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.errors import WriteBackError
from adapters.hl7v2 import HL7v2Adapter
from adapters.hl7v2.tree import V2PathSyntax
from adapters.hl7v2.writer import V2Layout, prescription, write_rde_o11
from adapters.mapping.engine import load_mapping
from adapters.mapping.reverse import reverse, reverse_report

CASES = Path(__file__).resolve().parent.parent / "golden" / "hl7v2" / "RDE_O11"
ADAPTER = HL7v2Adapter()
STANDARD = ["complete-extended-longterm", "escapes", "v251-discontinue", "v251-hold", "v23-standard-two-orders-prn"]
WINNING = ["rde-o11-new-amlodipine", "rde-o11-new-metformin-longterm", "rde-o11-cancel", "gb18030-amlodipine"]


def _resources(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        out.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return out


def _segments(message: bytes) -> dict[str, list[str]]:
    """Segment name -> its line split into fields (index = HL7 field number, MSH shifted)."""
    out: dict[str, list[str]] = {}
    for line in message.decode("utf-8").strip("\r").split("\r"):
        fields = line.split("|")
        if fields[0] == "MSH":
            fields.insert(1, "|")
        out[fields[0]] = fields
    return out


@pytest.mark.parametrize("case", STANDARD + WINNING)
def test_round_trip_keeps_every_resource(case: str) -> None:
    raw = (CASES / f"{case}.hl7").read_bytes()
    first = ADAPTER.to_fhir(raw).bundle
    message, reversal = ADAPTER.write_back(first)
    again = ADAPTER.to_fhir(message)
    assert not [i for i in again.issues if i.severity in ("error", "fatal")]
    assert again.bundle["meta"]["source"] == first["meta"]["source"]  # same mapping reads it back
    before, after = _resources(first), _resources(again.bundle)
    for kind in ("MedicationRequest", "Patient", "Medication", "Encounter", "Practitioner"):
        assert after.get(kind) == before.get(kind), kind
    assert not reversal.notes


def test_standard_member_gets_standard_positions() -> None:
    raw = (CASES / "complete-extended-longterm.hl7").read_bytes()
    message = ADAPTER.from_fhir(ADAPTER.to_fhir(raw).bundle)
    seg = _segments(message)
    assert seg["MSH"][3:7] == ["YAOLIAN", "XHZXWSY", "HIS", "XHCWS"]
    assert seg["RXE"][10] == "56" and seg["RXE"][11] == "TAB^片" and seg["RXE"][12] == "0"
    assert seg["RXE"][25] == "0.5" and seg["RXE"][26] == "g^克"
    assert seg["PV1"][19] == "MZ2025110700101"
    assert seg["ORC"][1] == "NW" and seg["ORC"][2] == "RX9101^XHZXWSY"
    assert seg["ORC"][12].split("^")[0::8] == ["D140423000123", "NHSA"]
    assert seg["TQ1"][3] == "BID^每日两次^HL70335" and seg["RXR"][1] == "PO^口服^HL70162"
    assert seg["ZRX"][1:7] == ["general^普通处方^YLRXC", "1401000000000000000456", "", "diabetes^糖尿病", "4", "XHCWS"]


def test_winning_his_member_gets_the_dialect_positions() -> None:
    raw = (CASES / "rde-o11-new-amlodipine.hl7").read_bytes()
    message = ADAPTER.from_fhir(ADAPTER.to_fhir(raw).bundle)
    seg = _segments(message)
    assert seg["MSH"][3:7] == ["YAOLIAN", "XYXRMYY", "WINNING_HIS", "XYXRMYY"]
    # dispense amount/units/refills one place early, strength in RXE-23/24, visit in PV1-20
    assert seg["RXE"][9:12] == ["4", "BX^盒", "0"]
    assert seg["RXE"][23:25] == ["5", "mg^毫克"] and len(seg["RXE"]) == 25
    assert seg["PV1"][20] == "MZ2025110300412" and seg["PV1"][19] == ""
    # unchanged positions stay where the base mapping has them
    assert seg["RXE"][2].split("~")[2] == "Y0100233^络活喜 5mg*7片^L"
    assert seg["PID"][3] == "0001583920^^^^PI~140423196703151230^^^^NNCHN"
    assert seg["TQ1"][7:9] == ["20251103", "20251130"]


def test_a_lone_request_for_another_member_uses_that_members_mapping() -> None:
    bundle = ADAPTER.to_fhir((CASES / "rde-o11-new-amlodipine.hl7").read_bytes()).bundle
    rx = prescription(bundle)
    assert (rx.owner, rx.dispensing) == ("XYXRMYY", "XYXRMYY")
    assert ADAPTER.mapping_for_member("XYXRMYY").name == "hl7v2/dialects/winning_his/rde_o11"
    assert ADAPTER.mapping_for_member("XHCWS").name == "hl7v2/rde_o11"
    base, _ = write_rde_o11(rx, ADAPTER.mapping_for_member("XHCWS"))
    assert _segments(base)["RXE"][10:13] == ["4", "BX^盒", "0"]


def test_every_order_of_a_bundle_gets_its_own_orc_group() -> None:
    bundle = ADAPTER.to_fhir((CASES / "v23-standard-two-orders-prn.hl7").read_bytes()).bundle
    message, _ = ADAPTER.write_back(bundle)
    lines = message.decode("utf-8").strip("\r").split("\r")
    assert [line[:3] for line in lines] == ["MSH", "PID", "ORC", "RXE", "TQ1", "RXR", "ORC", "RXE", "TQ1", "RXR"]
    assert [line.split("|")[2] for line in lines if line.startswith("ORC")] == ["RX9001^XHZXWSY", "RX9002^XHZXWSY"]


def test_orders_of_two_patients_are_not_written_into_one_message() -> None:
    bundle = ADAPTER.to_fhir((CASES / "v23-standard-two-orders-prn.hl7").read_bytes()).bundle
    requests = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]
    requests[1]["subject"] = {"reference": "Patient/someone-else"}
    with pytest.raises(WriteBackError, match="share patient"):
        prescription(bundle)


def test_skipped_rules_are_reported() -> None:
    _, reversal = ADAPTER.write_back(ADAPTER.to_fhir((CASES / "rde-o11-new-amlodipine.hl7").read_bytes()).bundle)
    report = [str(s) for s in reversal.skipped]
    assert "shared/pharmacy.yaml:82: template with 2 placeholders: the text cannot be split back into them" in report
    assert any(r.startswith("hl7v2/rde_o11.yaml:113: fallback source(s) ORC-2.1 not written") for r in report)
    # the dialect's own override is reported at its own file and line
    assert any(r.startswith("winning_his/rde_o11.yaml:10: fallback source(s) RXE-10.1") for r in report)
    assert len(report) == len(set(report))
    assert reverse_report(ADAPTER.mappings["RDE^O11"]) != reverse_report(ADAPTER.dialects["RDE^O11"][0])


HEAD = "mapping: t\nformat: hl7v2\nmessages: ['RDE^O11']\nresources:\n"


def test_reverse_hints(tmp_path: Path) -> None:
    file = tmp_path / "m.yaml"
    file.write_text(
        HEAD
        + "  - name: p\n    type: Patient\n    rules:\n"
        + "      - {target: 'name[].family', source: [PID-5.1, PID-9.1], reverse: {source: PID-9.1}}\n"
        + "      - {target: gender, source: PID-8, reverse: false}\n"
        + "      - {target: birthDate, source: PID-7, transform: date}\n"
        + "reverse_only:\n  PID-1: {value: '1', when: {PID: true}}\n",
        encoding="utf-8",
    )
    mapping = load_mapping(file, V2PathSyntax())
    patient = {"resourceType": "Patient", "name": [{"family": "王"}], "gender": "male", "birthDate": "1967-03-15"}
    reversal = reverse(mapping, patient, lambda _: None, V2Layout())
    assert reversal.assignments == {
        (None, "PID", 1, 9, 1, 1, 1): "王",
        (None, "PID", 1, 7, 1, 1, 1): "19670315",
        (None, "PID", 1, 1, 1, 1, 1): "1",
    }
    assert [s.reason for s in reversal.skipped] == ["marked 'reverse: false'"]
