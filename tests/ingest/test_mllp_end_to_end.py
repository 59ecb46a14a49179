"""HL7 v2 over real MLLP/TCP into a running gateway (SQLite and PostgreSQL): ACKs, REST search,
idempotent resends, malformed input answered AE/AR naming the place, dead letters replayed with
``yaolian replay`` after a mapping fix."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters import registry
from adapters.hl7v2 import HL7v2Adapter
from gateway.cli import app as cli

sys.path.insert(0, str(Path(__file__).parent))
from ingest_support import GOLDEN, SAMPLES, Gateway, ack_fields

RESIDENT = "urn:oid:2.16.156.10011.1.3"
RX_NO = "urn:oid:2.16.156.10011.1.20"
CASES = sorted(GOLDEN.glob("*/*.hl7"))
SHARED = sorted(SAMPLES.glob("*.hl7")) if SAMPLES.exists() else []


def _control_id(message: bytes) -> str:
    return message.split(b"\r", 1)[0].split(b"|")[9].decode()


def _ingest_all(gateway: Gateway) -> dict[str, bytes]:
    """Every golden case and shared sample over one connection, in order; idempotent."""
    client = gateway.mllp()
    try:
        return {case.name: client.send(case.read_bytes()) for case in [*CASES, *SHARED]}
    finally:
        client.close()


def _search(gateway: Gateway, resource_type: str, **params: str) -> list[dict[str, Any]]:
    response = gateway.http.get(f"/fhir/{resource_type}", params=params)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", []) if e.get("search", {}).get("mode") != "outcome"]


def test_samples_and_dialects_are_acknowledged_aa(gateway: Gateway) -> None:
    acks = _ingest_all(gateway)
    for case in [*CASES, *SHARED]:
        encoding = "gb18030" if b"GB 18030" in case.read_bytes()[:200] else "utf-8"
        msa = ack_fields(acks[case.name], encoding)["MSA"][0]
        assert msa[1] == "AA", (case.name, acks[case.name])
        assert msa[2] == _control_id(case.read_bytes())


def test_resources_are_found_by_rest_search(gateway: Gateway) -> None:
    _ingest_all(gateway)
    # 赵秀兰: the metformin long-term order (WINNING_HIS) and the complete extended one (GENERIC_HIS)
    requests = _search(gateway, "MedicationRequest", **{"patient.identifier": f"{RESIDENT}|140423195811022124"})
    numbers = {i["value"] for r in requests for i in r["identifier"] if i["system"] == RX_NO}
    assert {"RX202511030121", "RX20251107000101"} <= numbers
    (complete,) = _search(gateway, "MedicationRequest", identifier=f"{RX_NO}|RX20251107000101")
    assert complete["status"] == "active"
    assert complete["dispenseRequest"]["expectedSupplyDuration"]["value"] == 28
    urls = {e["url"] for e in complete["extension"]}
    assert "http://yaolian.org/fhir/StructureDefinition/yl-extended-prescription" in urls
    medication = gateway.http.get(f"/fhir/{complete['medication']['reference']['reference']}").json()
    assert {c["code"] for c in medication["code"]["coding"]} >= {"XA10BAE054A001010102770"}
    # GB18030 and escapes arrive as the right Chinese text
    (wang,) = _search(gateway, "Patient", identifier=f"{RESIDENT}|140423196703151230")
    assert wang["name"][0]["text"] == "王建国"
    (qian,) = _search(gateway, "Patient", identifier=f"{RESIDENT}|140423198001010029")
    assert any(n.get("family") == "钱|钱" for n in qian["name"])
    # CA after NW for the same placer order: one MedicationRequest, now cancelled
    (amlodipine,) = _search(
        gateway, "MedicationRequest", identifier="http://yaolian.org/fhir/sid/XYXRMYY/placer-order|RX202511030087"
    )
    assert amlodipine["status"] == "cancelled"
    # two orders in one v2.3 message, PRN as asNeeded
    prn = _search(gateway, "MedicationRequest", identifier=f"{RX_NO}|RX9002")
    assert prn and prn[0]["dosageInstruction"][0]["asNeeded"] is True
    dispenses = _search(
        gateway, "MedicationDispense", subject=f"Patient/{requests[0]['subject']['reference'].split('/')[-1]}"
    )
    assert dispenses and dispenses[0]["status"] == "completed"


def test_resend_gets_the_same_ack_and_creates_nothing(gateway: Gateway) -> None:
    message = (GOLDEN / "RDE_O11" / "complete-extended-longterm.hl7").read_bytes()
    first = gateway.send(message)
    (request,) = _search(gateway, "MedicationRequest", identifier=f"{RX_NO}|RX20251107000101")
    history = gateway.http.get(f"/fhir/MedicationRequest/{request['id']}/_history").json()
    totals = {
        t: gateway.http.get(f"/fhir/{t}", params={"_summary": "count"}).json()["total"]
        for t in ("Patient", "Medication", "MedicationRequest", "Practitioner")
    }
    for _ in range(3):
        assert gateway.send(message) == first
    again = gateway.http.get(f"/fhir/MedicationRequest/{request['id']}/_history").json()
    assert again["total"] == history["total"]
    assert {t: gateway.http.get(f"/fhir/{t}", params={"_summary": "count"}).json()["total"] for t in totals} == totals


BASE = (GOLDEN / "RDE_O11" / "escapes.hl7").read_bytes()


def _variant(control_id: str, old: bytes = b"", new: bytes = b"") -> bytes:
    return (
        BASE.replace(b"GH0004", control_id.encode()).replace(old, new)
        if old
        else BASE.replace(b"GH0004", control_id.encode())
    )


MALFORMED = [
    # name, message, MSA-1, ERR-2 (v2.5 ERL) or text that must appear
    ("no-msh", b"PID|1||140423198001010029^^^CHN^NNCHN||A^B\rORC|NW|X1\r", "AR", "MSH^1"),
    ("bad-segment", _variant("MAL-SEG", b"\rRXR|", b"\rR!R|"), "AE", "R!R"),
    ("bad-date", _variant("MAL-DATE", b"20251106100000|||D77", b"20251345990000|||D77"), "AE", "ORC^1^9^1"),
    ("bad-number", _variant("MAL-NUM", b"|||6|BX", b"|||six|BX"), "AE", "RXE^1^10"),
    ("unknown-type", _variant("MAL-TYPE", b"RDE^O11^RDE_O11", b"ADT^A01^ADT_A01"), "AR", "MSH^1^9^1"),
    ("unknown-version", _variant("MAL-VER", b"|P|2.5|", b"|P|2.9|"), "AR", "MSH^1^12^1"),
    ("wrong-encoding", _variant("MAL-ENC").decode().encode("gb18030"), "AR", "MSH^1^18^1"),
    ("no-patient", _variant("MAL-PID").split(b"\rPID")[0] + b"\rORC" + BASE.split(b"\rORC", 1)[1], "AE", "PID^1"),
]


@pytest.mark.parametrize(("name", "message", "code", "where"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_messages_are_answered_and_kept(
    gateway: Gateway, name: str, message: bytes, code: str, where: str
) -> None:
    ack = gateway.send(message)
    segments = ack_fields(ack)
    assert segments["MSA"][0][1] == code, ack
    errors = segments.get("ERR", [])
    assert errors, ack
    assert any((len(e) > 2 and e[2].startswith(where)) or where in "|".join(e) for e in errors), ack
    journal = gateway.http.app.state.ingest.journal  # type: ignore[attr-defined]
    control = _control_id(message) if message.startswith(b"MSH") else None
    rows = [e for e in journal.dead_letters("hl7v2") if e.raw == message or (control and e.control_id == control)]
    assert rows and rows[0].status == "rejected" and rows[0].raw == message
    again = ack_fields(gateway.send(message))  # a rejected message is re-run on resend
    assert (again["MSA"], again["ERR"]) == (segments["MSA"], errors)  # same answer (new MSH-7)


def test_replay_accepts_dead_letters_after_a_mapping_fix(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NEWHIS sends its internal order number in ORC-9 and the order time in ORC-15: rejected
    (ORC-9 is not a date) until a dialect mapping - data, no Python - reads ORC-15."""
    message = (
        _variant("NEW0001", b"GENERIC_HIS", b"NEWHIS")
        .replace(b"RX9010", b"RX9077")
        .replace(b"20251106100000|||D77", b"ORD-778|||D77")
        .replace(b"|||D77^\xe8\xb5\xb5^\xe6\x95\x8f", b"|||D77^\xe8\xb5\xb5^\xe6\x95\x8f|||20251106100000")
    )
    ack = ack_fields(gateway.send(message))
    assert ack["MSA"][0][1] == "AE"

    mappings = tmp_path / "hl7v2"
    shutil.copytree(HL7v2Adapter().mapping_dir, mappings)
    (mappings / "dialects" / "newhis").mkdir()
    (mappings / "dialects" / "newhis" / "rde_o11.yaml").write_text(
        "mapping: hl7v2/dialects/newhis/rde_o11\n"
        "extends: ../../rde_o11.yaml\n"
        "match: {MSH-3.1: NEWHIS}\n"
        "ignore: [ORC-9]\n"
        "override:\n"
        "  request-authored-on: {source: ORC-15}\n",
        encoding="utf-8",
    )
    fixed = HL7v2Adapter(mappings)
    default = registry.default_registry()
    monkeypatch.setitem(default._instances, "hl7v2", fixed)

    result = CliRunner().invoke(cli, ["replay", "--database", gateway.database, "--adapter", "hl7v2"])
    assert "NEW0001" not in result.output, result.output  # not among the still-rejected ones
    entry = gateway.http.app.state.ingest.journal.find("hl7v2", "NEW0001")  # type: ignore[attr-defined]
    assert entry.status == "accepted" and entry.attempts >= 2
    (request,) = _search(gateway, "MedicationRequest", identifier=f"{RX_NO}|RX9077")
    assert request["authoredOn"] == "2025-11-06T10:00:00+08:00"
    # the sender's resend now gets AA, from the journal
    assert ack_fields(gateway.send(message))["MSA"][0][1] == "AA"
