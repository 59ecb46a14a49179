"""Judging one member's answer, entry by entry (unit level; the HTTP cases are in
test_prescriptions.py against real servers)."""

from __future__ import annotations

from typing import Any

from gateway.errors import Issue
from gateway.federation.endpoints import MemberEndpoint
from gateway.federation.registry import Member
from gateway.federation.remote import _collect

MEMBER = Member("v1", "v1", "村卫生室", "village", None, None)


def test_unusable_entries_are_reported_and_the_rest_kept() -> None:
    entries: list[Any] = [
        {"resource": {"resourceType": "MedicationRequest", "id": "a", "medicationCodeableConcept": {"text": "x"}}},
        {"resource": {"resourceType": "MedicationRequest"}},  # no id
        {"resource": {"resourceType": "Patient", "id": "p"}},  # not ours to pass on
        "not an entry",
        {"resource": {"resourceType": "OperationOutcome", "issue": []}},  # a member's note: skipped
        {"resource": {"resourceType": "Medication", "id": "m"}, "search": {"mode": "include"}},
        {"resource": {"resourceType": "Organization", "id": "o", "address": {"city": "not a list"}}},
    ]
    found: list[dict[str, Any]] = []
    issues: list[Issue] = []
    r4 = MemberEndpoint("e", "fhir-r4", "http://v1/fhir")
    assert _collect(MEMBER, r4, "MedicationRequest", entries, found, issues) == 1
    assert [(f["mode"], f["resource"]["resourceType"]) for f in found] == [
        ("match", "MedicationRequest"),
        ("include", "Medication"),
    ]
    assert found[0]["resource"]["medication"] == {"concept": {"text": "x"}}  # translated from R4
    assert [i.error_code for i in issues] == ["YL-1005"] * 4
    assert all("v1" in i.en and i.severity == "warning" for i in issues)
