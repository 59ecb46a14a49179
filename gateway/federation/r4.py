"""FHIR R4 → R5 for the resources a federated prescription query uses.

Most village and township HIS vendors ship an R4 server. What changed between R4 and R5 for
MedicationRequest, MedicationDispense, Medication, Organization and Patient is small and
mechanical; it is written out here element by element (each rule names the R5 element it
fills) rather than round-tripped through two model libraries, so a reviewer can check each
against the R5 "Changes from R4" pages. Elements R5 dropped without a successor are left out
and reported, never silently kept (an R4 element in an R5 Bundle would fail validation).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from gateway.fhir.definitions import elements

Resource = dict[str, Any]


def _reference_or_concept(data: Resource, base: str) -> dict[str, Any] | None:
    """``{base}CodeableConcept`` / ``{base}Reference`` (R4 choice) → a CodeableReference."""
    concept = data.pop(f"{base}CodeableConcept", None)
    reference = data.pop(f"{base}Reference", None)
    if isinstance(concept, dict):
        return {"concept": concept}
    if isinstance(reference, dict):
        return {"reference": reference}
    return None


def _dosage(dosage: Any) -> Any:
    """R4 Dosage → R5: ``asNeeded[x]`` splits into ``asNeeded`` and ``asNeededFor``;
    ``maxDosePerPeriod`` becomes a list."""
    if not isinstance(dosage, dict):
        return dosage
    dosage = dict(dosage)
    if "asNeededBoolean" in dosage:
        dosage["asNeeded"] = dosage.pop("asNeededBoolean")
    if "asNeededCodeableConcept" in dosage:
        dosage["asNeeded"] = True
        dosage["asNeededFor"] = [dosage.pop("asNeededCodeableConcept")]
    if isinstance(dosage.get("maxDosePerPeriod"), dict):
        dosage["maxDosePerPeriod"] = [dosage["maxDosePerPeriod"]]
    return dosage


def _dosages(data: Resource) -> None:
    if isinstance(data.get("dosageInstruction"), list):
        data["dosageInstruction"] = [_dosage(d) for d in data["dosageInstruction"]]


def _drop(data: Resource, dropped: list[str], *names: str) -> None:
    for name in names:
        if name in data:
            del data[name]
            dropped.append(f"{data.get('resourceType')}.{name}")


def medication_request(data: Resource, dropped: list[str]) -> Resource:
    medication = _reference_or_concept(data, "medication")
    if medication is not None:
        data["medication"] = medication
    if "reportedBoolean" in data:
        data["reported"] = data.pop("reportedBoolean")
    if isinstance(data.get("reportedReference"), dict):
        data["informationSource"] = [data.pop("reportedReference")]
    reasons = [{"concept": c} for c in data.pop("reasonCode", None) or ()]
    reasons += [{"reference": r} for r in data.pop("reasonReference", None) or ()]
    if reasons:
        data["reason"] = reasons
    if isinstance(data.get("performer"), dict):
        data["performer"] = [data["performer"]]
    request = data.get("dispenseRequest")
    if isinstance(request, dict) and "performer" in request:
        request = dict(request)
        request["dispenser"] = request.pop("performer")
        data["dispenseRequest"] = request
    _dosages(data)
    _drop(data, dropped, "detectedIssue", "instantiatesCanonical", "instantiatesUri")
    return data


def medication_dispense(data: Resource, dropped: list[str]) -> Resource:
    medication = _reference_or_concept(data, "medication")
    if medication is not None:
        data["medication"] = medication
    reason = _reference_or_concept(data, "statusReason")
    if reason is not None:
        data["notPerformedReason"] = reason
    if isinstance(data.get("context"), dict):
        context = data.pop("context")
        if str(context.get("reference", "")).startswith("Encounter/") or "reference" not in context:
            data["encounter"] = context
        else:
            dropped.append("MedicationDispense.context")
    if isinstance(data.get("category"), dict):
        data["category"] = [data["category"]]
    substitution = data.get("substitution")
    if isinstance(substitution, dict) and isinstance(substitution.get("responsibleParty"), list):
        substitution = dict(substitution)
        parties = substitution.pop("responsibleParty")
        if parties:
            substitution["responsibleParty"] = parties[0]
        data["substitution"] = substitution
    _dosages(data)
    _drop(data, dropped, "detectedIssue")
    return data


def medication(data: Resource, dropped: list[str]) -> Resource:
    if "manufacturer" in data:
        data["marketingAuthorizationHolder"] = data.pop("manufacturer")
    if "form" in data:
        data["doseForm"] = data.pop("form")
    if "amount" in data:
        _drop(data, dropped, "amount")  # a Ratio in R4, a Quantity (totalVolume) in R5
    ingredients = []
    for ingredient in data.get("ingredient") or ():
        if not isinstance(ingredient, dict):
            continue
        ingredient = dict(ingredient)
        item = _reference_or_concept(ingredient, "item")
        if item is not None:
            ingredient["item"] = item
        if "strength" in ingredient:
            ingredient["strengthRatio"] = ingredient.pop("strength")
        ingredients.append(ingredient)
    if ingredients:
        data["ingredient"] = ingredients
    return data


def organization(data: Resource, dropped: list[str]) -> Resource:
    contact: dict[str, Any] = {}
    if data.get("telecom"):
        contact["telecom"] = data.pop("telecom")
    addresses = data.pop("address", None) or []
    if addresses:
        contact["address"] = addresses[0]
        if len(addresses) > 1:
            dropped.append("Organization.address[1:]")
    contacts = [c for c in data.get("contact") or () if isinstance(c, dict)]
    for c in contacts:  # R4 contact: name (HumanName), telecom, address, purpose — the same names in R5
        if isinstance(c.get("name"), dict):
            c["name"] = [c["name"]]
    if contact:
        contacts.insert(0, contact)
    if contacts:
        data["contact"] = contacts
    return data


def patient(data: Resource, dropped: list[str]) -> Resource:
    """Identifier, name, telecom, gender, birthDate, address: the same in R4 and R5."""
    return data


TRANSLATIONS: dict[str, Callable[[Resource, list[str]], Resource]] = {
    "MedicationRequest": medication_request,
    "MedicationDispense": medication_dispense,
    "Medication": medication,
    "Organization": organization,
    "Patient": patient,
}


def to_r5(resource: Resource) -> tuple[Resource, list[str]]:
    """The R5 form of an R4 resource and the R4 elements left out; types without a rule here
    (OperationOutcome, Practitioner) are returned as they are."""
    translate = TRANSLATIONS.get(str(resource.get("resourceType")))
    if translate is None:
        return resource, []
    dropped: list[str] = []
    translated = translate(copy.deepcopy(resource), dropped)
    known = elements(str(resource["resourceType"]))
    for name in [n for n in translated if n not in known and n != "resourceType" and not n.startswith("_")]:
        del translated[name]  # an R4 element without a rule above and without an R5 namesake
        dropped.append(f"{resource['resourceType']}.{name}")
    return translated, dropped
