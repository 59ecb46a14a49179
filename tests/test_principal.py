"""SMART v2 system scopes as the principal carries them."""

from __future__ import annotations

import pytest

from gateway.principal import Principal, Role, Scope, parse_scopes


def test_a_v2_scope_allows_exactly_its_type_and_interactions() -> None:
    scope = Scope.parse("system/MedicationRequest.rs")
    assert scope.allows("MedicationRequest", "r") and scope.allows("MedicationRequest", "s")
    assert not scope.allows("MedicationRequest", "c") and not scope.allows("Patient", "r")
    assert str(scope) == "system/MedicationRequest.rs"


def test_wildcards_and_v1_forms() -> None:
    assert Scope.parse("system/*.cruds").allows("AuditEvent", "d")
    assert Scope.parse("system/Patient.read") == Scope.parse("system/Patient.rs")
    assert Scope.parse("system/Patient.write") == Scope.parse("system/Patient.cud")
    assert Scope.parse("system/Patient.*") == Scope.parse("system/Patient.cruds")


@pytest.mark.parametrize("text", ["patient/Patient.rs", "system/Patient.x", "system/patient.rs", "Patient.rs", ""])
def test_what_is_no_system_scope_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Scope.parse(text)


def test_a_principal_is_allowed_what_any_of_its_scopes_allows() -> None:
    who = Principal(
        "c1", "township", Role.MEMBER, "XHZXWSY", parse_scopes("system/Patient.rs system/MedicationRequest.cruds")
    )
    assert who.scope_allows("MedicationRequest", "c") and who.scope_allows("Patient", "s")
    assert not who.scope_allows("Patient", "c") and not who.scope_allows("SupplyRequest", "r")
