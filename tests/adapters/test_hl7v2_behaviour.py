"""HL7 v2 adapter behaviour: fuzzing, ACKs, idempotent ids, charsets, write-back."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.contract import Issue
from adapters.errors import ConversionError, DecodeError, StructureError, UnsupportedMessageError
from adapters.hl7v2 import HL7v2Adapter, build_ack, message_control_id

CASES = Path(__file__).resolve().parent.parent / "golden" / "hl7v2"
AMLODIPINE = (CASES / "RDE_O11" / "rde-o11-new-amlodipine.hl7").read_bytes()
CANCEL = (CASES / "RDE_O11" / "rde-o11-cancel.hl7").read_bytes()
ADAPTER = HL7v2Adapter()


def resources(raw: bytes, kind: str) -> list[dict]:
    bundle = ADAPTER.to_fhir(raw).bundle
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


# -- fuzz: no crash; every failure is a ConversionError carrying issues -------------------------

segment_lines = st.lists(st.text(alphabet="PIDORCRXETQ1|^~\\&0123456789AB王建国\r.-", max_size=60), max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tail=segment_lines, cut=st.integers(min_value=0, max_value=len(AMLODIPINE)))
def test_fuzz_parser_and_mapper(tail: list[str], cut: int) -> None:
    raw = AMLODIPINE[:cut] + "\r".join(tail).encode("utf-8")
    try:
        result = ADAPTER.to_fhir(raw)
    except ConversionError as exc:
        assert exc.issues and all(isinstance(i, Issue) for i in exc.issues)
        ack = build_ack(raw, exc.issues)
        assert b"MSA|A" in ack
    else:
        assert result.bundle["type"] == "transaction"


@settings(max_examples=200, deadline=None)
@given(noise=st.binary(max_size=200))
def test_fuzz_bytes(noise: bytes) -> None:
    try:
        ADAPTER.to_fhir(noise)
    except ConversionError as exc:
        assert exc.issues


# -- idempotency and status ------------------------------------------------------------------


def test_resend_yields_identical_ids_and_conditional_requests() -> None:
    first = ADAPTER.to_fhir(AMLODIPINE).bundle
    second = ADAPTER.to_fhir(AMLODIPINE).bundle
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in second["entry"]]
    for entry in first["entry"]:
        request = entry["request"]
        assert request["method"] == "PUT" or "ifNoneExist" in request


def test_cancel_updates_the_same_request_to_cancelled() -> None:
    new = resources(AMLODIPINE, "MedicationRequest")[0]
    cancel = resources(CANCEL, "MedicationRequest")[0]
    assert (new["id"], new["status"]) == (cancel["id"], "active") or new["status"] == "active"
    assert cancel["id"] == new["id"] and cancel["status"] == "cancelled"


def test_patient_identified_by_resident_id_card() -> None:
    patient = resources(AMLODIPINE, "Patient")[0]
    systems = {i["system"]: i["value"] for i in patient["identifier"]}
    assert systems["urn:oid:2.16.156.10011.1.3"] == "140423196703151230"


def test_gb18030_and_utf8_give_the_same_resources() -> None:
    gb = (CASES / "RDE_O11" / "gb18030-amlodipine.hl7").read_bytes()
    assert "王".encode("gb18030") in gb
    assert resources(gb, "Patient") == resources(AMLODIPINE, "Patient")


def test_wrong_charset_is_a_decode_error_naming_msh18() -> None:
    raw = AMLODIPINE.replace(b"UNICODE UTF-8", b"ASCII")
    with pytest.raises(DecodeError) as info:
        ADAPTER.to_fhir(raw)
    assert info.value.issues[0].expression == ("MSH-18",)


def test_unsupported_version_and_type_are_rejected() -> None:
    with pytest.raises(UnsupportedMessageError):
        ADAPTER.to_fhir(AMLODIPINE.replace(b"|P|2.5|", b"|P|2.8|"))
    with pytest.raises(UnsupportedMessageError) as info:
        ADAPTER.to_fhir(AMLODIPINE.replace(b"RDE^O11^RDE_O11", b"ADT^A01^ADT_A01"))
    assert b"MSA|AR|" in build_ack(AMLODIPINE, info.value.issues)


def test_bad_date_is_an_error_with_location() -> None:
    raw = AMLODIPINE.replace(b"|19670315|", b"|1967-13-45|")
    with pytest.raises(ConversionError) as info:
        ADAPTER.to_fhir(raw)
    assert [i.expression for i in info.value.issues if i.severity == "error"] == [("PID-7",)]


def test_no_msh_is_a_structure_error() -> None:
    with pytest.raises(StructureError):
        ADAPTER.to_fhir(b"PID|1||x\r")


# -- ACK -------------------------------------------------------------------------------------


def test_message_control_id() -> None:
    assert message_control_id(AMLODIPINE) == "XY20251103000187"
    assert ADAPTER.message_id(AMLODIPINE) == "XY20251103000187"


def test_ack_aa() -> None:
    ack = build_ack(AMLODIPINE, ADAPTER.to_fhir(AMLODIPINE).issues).decode()
    lines = ack.strip("\r").split("\r")
    assert lines[0].startswith("MSH|^~\\&|YAOLIAN|ALLIANCE|WINNING_HIS|XYXRMYY|")
    assert "|ACK^O11^ACK|ACKXY20251103000187|P|2.5|" in lines[0]
    assert lines[1] == "MSA|AA|XY20251103000187|accepted"
    assert len(lines) == 2  # information issues are not echoed


def test_ack_ae_names_segment_field_and_reason() -> None:
    raw = AMLODIPINE.replace(b"|19670315|", b"|1967-13-45|")
    with pytest.raises(ConversionError) as info:
        ADAPTER.to_fhir(raw)
    ack = build_ack(raw, info.value.issues).decode("utf-8")
    lines = ack.strip("\r").split("\r")
    assert lines[1].startswith("MSA|AE|XY20251103000187")
    err = lines[2].split("|")
    assert err[0] == "ERR" and err[2] == "PID^1^7^1"
    assert err[3] == "102^Data type error^HL70357" and err[4] == "E"
    assert err[5].startswith("YL-2304^") and "不是有效" in err[8]


def test_ack_gateway_form_and_v23_err1() -> None:
    raw = AMLODIPINE.replace(b"|P|2.5|", b"|P|2.3|")
    issue = Issue(
        "error", "required", en="required RXE-2.1 is empty", zh="必填", expression=("RXE-2.1",), error_code="YL-2303"
    )
    ack = build_ack(raw, False, [issue]).decode()
    assert "MSA|AE|" in ack and "\rERR|RXE^1^2^101&required RXE-2.1 is empty" in ack


def test_ack_keeps_gb18030() -> None:
    gb = (CASES / "RDE_O11" / "gb18030-amlodipine.hl7").read_bytes()
    issue = Issue("warning", "code-invalid", en="x", zh="代码无对应", expression=("RXE-2.1",), error_code="YL-2302")
    ack = build_ack(gb, [issue])
    assert "代码无对应".encode("gb18030") in ack and b"MSA|AA|" in ack


# -- write-back ------------------------------------------------------------------------------


def test_write_back_round_trip() -> None:
    metformin = (CASES / "RDE_O11" / "rde-o11-new-metformin-longterm.hl7").read_bytes()
    bundle = ADAPTER.to_fhir(metformin).bundle
    rde = ADAPTER.from_fhir(bundle)
    assert rde.startswith(b"MSH|^~\\&|YAOLIAN|XYXRMYY|")
    again = next(
        e["resource"]
        for e in ADAPTER.to_fhir(rde).bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
    )
    original = resources(metformin, "MedicationRequest")[0]
    for key in ("id", "status", "intent", "dosageInstruction", "dispenseRequest", "authoredOn"):
        assert again[key] == original[key], key


def test_write_back_of_a_lone_medication_request() -> None:
    request = resources(AMLODIPINE, "MedicationRequest")[0]
    request["status"] = "stopped"
    rde = ADAPTER.from_fhir(request).decode()
    assert "\rORC|DC|RX202511030087^XYXRMYY|" in rde
