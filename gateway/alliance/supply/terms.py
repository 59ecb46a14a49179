"""Systems, codes and the small readers that pull a member or a drug out of a supply resource.

A drug is known across the alliance by its national insurance code (``med_list_codg``, system
:data:`NHSA_SYSTEM`); a resource may name it by ``Medication/id`` (resolved through the
:class:`Catalogue`) or carry the code itself. A member is named by ``Organization/id`` or by its
member identifier, and a pharmacy ``Location`` by its managing organization.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# the drug and member systems are the catalogue's and the access policy's, named here too for
# the supply modules that import their terms from one place
from gateway.alliance.catalogue import NHSA_SYSTEM as NHSA_SYSTEM
from gateway.alliance.catalogue import SD as SD
from gateway.security.policy import MEMBER_SYSTEM as MEMBER_SYSTEM

CS = "http://yaolian.org/fhir/CodeSystem/"
SID = "http://yaolian.org/fhir/sid/"

TRACE_SYSTEM = SID + "drug-trace-code"
KIND_SYSTEM = CS + "supply-request-kind"
REASON_SYSTEM = CS + "demand-reason"
STOCK_ALERT_SYSTEM = CS + "stock-alert"
ALERT_KEY_SYSTEM = SID + "stock-alert"
SUPPLY_WORKFLOW_SYSTEM = CS + "supply-workflow"

LOT_URL = SD + "yl-lot-number"
EXPIRY_URL = SD + "yl-expiration-date"
TRACE_URL = SD + "yl-traceability-code"
ACCEPTANCE_URL = SD + "yl-receipt-acceptance"
PLAN_CHANGE_URL = SD + "yl-plan-change"
SUPPLY_LINK_URL = SD + "yl-supply-link"

BELOW_LINE = "below-alert-line"
EXPIRING = "expiring-batch"


def coding_code(concept: Any, system: str) -> str | None:
    """The code of ``system`` in a CodeableConcept (or None)."""
    if not isinstance(concept, Mapping):
        return None
    for c in concept.get("coding") or ():
        if isinstance(c, Mapping) and c.get("system") == system and isinstance(c.get("code"), str):
            return str(c["code"])
    return None


def kind_of(request: Mapping[str, Any]) -> str | None:
    """A SupplyRequest's alliance kind (demand-plan, shortage, transfer)."""
    return coding_code(request.get("category"), KIND_SYSTEM)


def reference_of(value: Any) -> str | None:
    ref = value.get("reference") if isinstance(value, Mapping) else None
    return ref if isinstance(ref, str) and ref else None


def extension_value(node: Mapping[str, Any], url: str, key: str) -> Any:
    for ext in node.get("extension") or ():
        if isinstance(ext, Mapping) and ext.get("url") == url:
            return ext.get(key)
    return None


def extension_values(node: Mapping[str, Any], url: str, key: str) -> list[Any]:
    return [e.get(key) for e in node.get("extension") or () if isinstance(e, Mapping) and e.get("url") == url]


@dataclass
class Catalogue:
    """Drugs the gateway knows (stored Medications): id <-> national insurance code, and names."""

    code_by_id: dict[str, str] = field(default_factory=dict)
    id_by_code: dict[str, str] = field(default_factory=dict)
    name_by_code: dict[str, str] = field(default_factory=dict)

    def add(self, medication: Mapping[str, Any]) -> None:
        code = coding_code(medication.get("code"), NHSA_SYSTEM)
        mid = medication.get("id")
        if code and isinstance(mid, str):
            self.code_by_id[mid] = code
            self.id_by_code.setdefault(code, mid)
            concept = medication.get("code") or {}
            self.name_by_code[code] = str(concept.get("text") or code)

    def drug_of(self, item: Any) -> str | None:
        """The insurance code of a CodeableReference / CodeableConcept / Reference naming a drug."""
        if not isinstance(item, Mapping):
            return None
        concept = item.get("concept", item)
        code = coding_code(concept, NHSA_SYSTEM)
        if code:
            return code
        ref = reference_of(
            item.get("reference") if "reference" in item and isinstance(item["reference"], Mapping) else item
        )
        if ref and ref.startswith("Medication/"):
            return self.code_by_id.get(ref.removeprefix("Medication/"))
        return None

    def reference(self, code: str) -> dict[str, Any]:
        """How a resource names the drug: a Medication reference when it is stored, else the code."""
        mid = self.id_by_code.get(code)
        if mid:
            return {"reference": {"reference": f"Medication/{mid}"}}
        return {"concept": {"coding": [{"system": NHSA_SYSTEM, "code": code}]}}

    def name(self, code: str) -> str:
        return self.name_by_code.get(code, code)


@dataclass
class Places:
    """Pharmacy Locations and the member (Organization) that runs each."""

    org_by_location: dict[str, str] = field(default_factory=dict)
    location_by_org: dict[str, str] = field(default_factory=dict)

    def add(self, location: Mapping[str, Any]) -> None:
        org = reference_of(location.get("managingOrganization"))
        lid = location.get("id")
        if org and isinstance(lid, str):
            self.org_by_location[f"Location/{lid}"] = org
            self.location_by_org.setdefault(org, f"Location/{lid}")
