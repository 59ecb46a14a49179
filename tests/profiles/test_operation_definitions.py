"""Every operation of the table (gateway/api/operations/__init__.py) with a yaolian.org definition
has its OperationDefinition in profiles/ (written by scripts/build_profiles.py): the same URL,
code, levels and resource types, valid R5; and what the definitions declare required is refused
when missing by the real endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway import validation
from gateway.api.operations import OPERATIONS, Operation

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
OURS = sorted(
    (op for op in OPERATIONS.values() if op.definition.startswith("http://yaolian.org/")), key=lambda o: o.name
)


def definition(op: Operation) -> dict[str, Any]:
    path = PROFILES / f"OperationDefinition-{op.definition.rsplit('/', 1)[1]}.json"
    assert path.is_file(), f"no {path.name} for ${op.name}: add it to scripts/build_profiles.py"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_the_table_has_the_operations_the_brief_names() -> None:
    """Guards the parametrisation below against an empty or shrunken table."""
    names = {op.name for op in OURS}
    assert {"ingest", "convert", "hl7v2", "review", "formulary-check", "continue", "prescriptions"} <= names
    assert {"aggregate", "approve", "export-plan", "balance", "register-shortage", "stock-alerts"} <= names


@pytest.mark.parametrize("op", OURS, ids=lambda o: o.name)
def test_each_definition_matches_the_operation_table(op: Operation) -> None:
    data = definition(op)
    assert data["resourceType"] == "OperationDefinition"
    assert data["url"] == op.definition
    assert data["code"] == op.name
    assert data["kind"] == "operation"
    assert data["status"] == "active"
    assert isinstance(data["affectsState"], bool)
    assert data["description"] and data["title"]
    levels = {level: data[level] for level in ("system", "type", "instance")}
    assert levels == {level: level in op.levels for level in levels}
    assert sorted(data.get("resource", [])) == sorted(op.types)
    for parameter in data["parameter"]:
        assert parameter["use"] in ("in", "out")
        assert parameter["documentation"]
        assert "type" in parameter or "part" in parameter, parameter["name"]


@pytest.mark.parametrize("op", OURS, ids=lambda o: o.name)
def test_each_definition_is_valid_r5(op: Operation) -> None:
    """The gateway's own validator against the base R5 structure and its invariants."""
    issues = validation.validate(definition(op))
    assert [i for i in issues if i.severity in ("error", "fatal")] == []


def test_no_definition_without_an_operation() -> None:
    defined = {p.name for p in PROFILES.glob("OperationDefinition-*.json")}
    assert defined == {f"OperationDefinition-{op.definition.rsplit('/', 1)[1]}.json" for op in OURS}


def test_the_validator_would_see_a_broken_definition() -> None:
    """The validity test above can fail: a required element missing, an invariant broken."""
    data = definition(OPERATIONS["continue"])
    assert validation.validate({k: v for k, v in data.items() if k != "kind"})
    data["parameter"][0]["searchType"] = "token"  # opd-2: only for string parameters
    assert any(i.error_code == "YL-3060" for i in validation.validate(data))


def required_in(op_name: str) -> set[str]:
    return {p["name"] for p in definition(OPERATIONS[op_name])["parameter"] if p["use"] == "in" and p["min"] >= 1}


# (operation, parameter declared min=1, a request to the real endpoint without it, status, code)
MISSING = [
    ("ingest", "adapter", ("POST", "/fhir/$ingest", b"MSH|^~\\&|"), 400, "YL-0404"),
    ("ingest", "message", ("POST", "/fhir/$ingest?adapter=hl7v2", b""), 400, "YL-0102"),
    ("convert", "adapter", ("POST", "/fhir/$convert", b"MSH|^~\\&|"), 400, "YL-0404"),
    # $convert does not check for an empty body itself: the adapter finds no message in it
    ("convert", "message", ("POST", "/fhir/$convert?adapter=hl7v2", b""), 422, "YL-2102"),
    ("aggregate", "period", ("POST", "/fhir/SupplyRequest/$aggregate", b""), 400, "YL-1202"),
    ("approve", "period", ("POST", "/fhir/SupplyRequest/$approve", b""), 400, "YL-1202"),
    ("export-plan", "period", ("GET", "/fhir/SupplyRequest/$export-plan?output=csv", b""), 400, "YL-1202"),
    (
        "register-shortage",
        "prescription",
        ("POST", "/fhir/SupplyRequest/$register-shortage", b'{"resourceType": "Parameters"}'),
        400,
        "YL-1214",
    ),
    (
        "continue",
        "prescription",
        ("POST", "/fhir/MedicationRequest/$continue", b'{"resourceType": "Parameters", "parameter": []}'),
        400,
        "YL-1030",
    ),
]


@pytest.mark.parametrize(
    ("op_name", "name", "call", "status", "code"), MISSING, ids=[f"{m[0]}-{m[1]}" for m in MISSING]
)
def test_a_required_in_parameter_is_refused_when_missing(
    module_client: TestClient, op_name: str, name: str, call: tuple[str, str, bytes], status: int, code: str
) -> None:
    assert name in required_in(op_name), f"${op_name} declares {name} optional"
    method, url, body = call
    response = module_client.request(method, url, content=body, headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == status, response.text
    codes = [c["code"] for i in response.json()["issue"] for c in i.get("details", {}).get("coding", [])]
    assert code in codes


def test_every_required_in_parameter_of_our_operations_is_checked_above() -> None:
    """A new required parameter needs its row in MISSING (or a reason here to have none)."""
    checked = {(m[0], m[1]) for m in MISSING}
    # $approve's change parts are required only inside a change (a part, not a top parameter);
    # $hl7v2 and the rest declare no required top-level input.
    declared = {(op.name, name) for op in OURS for name in required_in(op.name)}
    assert declared == checked


def test_an_optional_in_parameter_is_accepted_with_its_declared_values(module_client: TestClient) -> None:
    """$hl7v2 scope is a code (order|prescription): another value is refused, a declared one
    passes the parameter check (and the missing prescription is then a 404)."""
    scope = next(p for p in definition(OPERATIONS["hl7v2"])["parameter"] if p["name"] == "scope")
    assert scope["min"] == 0 and scope["type"] == "code"
    assert module_client.get("/fhir/MedicationRequest/none/$hl7v2?scope=bogus").status_code == 400
    assert module_client.get("/fhir/MedicationRequest/none/$hl7v2?scope=prescription").status_code == 404
