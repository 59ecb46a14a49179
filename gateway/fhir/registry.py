"""Which resource types this gateway serves.

The REST core is generic: adding a type is one :func:`register` call (or the
``YAOLIAN_EXTRA_TYPES`` setting), not a new router. Search parameters, CapabilityStatement
and validation all follow from the type's R5 definitions.
"""

from __future__ import annotations

import os

DEFAULT_TYPES = (
    "MedicationRequest",
    "Medication",
    "MedicationDispense",
    "MedicationStatement",
    "MedicationAdministration",
    "SupplyRequest",
    "SupplyDelivery",
    "InventoryReport",
    "InventoryItem",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "OrganizationAffiliation",
    "Location",
    "Endpoint",
    "Provenance",
    "AuditEvent",
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "Observation",
    "Group",
    "Subscription",
    "SubscriptionTopic",
    "Basic",
    "List",
    "Task",
    "CareTeam",
    "RelatedPerson",
    "Device",
    "Consent",
    "DetectedIssue",
    "MeasureReport",
    "DocumentReference",
    "StructureDefinition",
    "ValueSet",
    "CodeSystem",
    "ConceptMap",
    "SearchParameter",
    "NamingSystem",
    "OperationDefinition",
    "CapabilityStatement",
)

_registered: set[str] = set(DEFAULT_TYPES)
_registered.update(t.strip() for t in os.environ.get("YAOLIAN_EXTRA_TYPES", "").split(",") if t.strip())


def register(resource_type: str) -> None:
    _registered.add(resource_type)


def resource_types() -> frozenset[str]:
    return frozenset(_registered)


def is_supported(resource_type: str) -> bool:
    return resource_type in _registered
