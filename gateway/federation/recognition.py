"""Mutual recognition (互认): a prescription of member A continued at member B.

B's prescription is a new MedicationRequest whose ``priorPrescription`` points at A's: by
reference when A's is stored here, by its prescription number (``Reference.identifier``) when
A's lives on A's own server — a reference that survives A's server being down or its ids
changing. An extended prescription (延伸处方) also names the member that dispenses it
(extension ``yl-extended-prescription``: ``dispensingMember`` and ``originPrescription``).

The chain is queryable both ways: from B's record (``priorPrescription``) back to A's (read it
here, or find it by identifier with ``Patient/$prescriptions``), and from A's number forward
to every continuation (``MedicationRequest?prior-prescription:identifier=SYSTEM|VALUE``, or
``prior-prescription=MedicationRequest/id`` for a local one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.clock import now_instant
from gateway.errors import BadRequest

EXTENDED = "http://yaolian.org/fhir/StructureDefinition/yl-extended-prescription"
#: What a continuation takes over from the prescription it continues.
CARRIED = ("category", "courseOfTherapyType", "dosageInstruction", "note", "reason")


@dataclass(frozen=True)
class Origin:
    """The prescription being continued, and where it lives."""

    resource: dict[str, Any]
    member: str  # its member's code ('' unknown)
    local: bool
    medication: dict[str, Any] | None = None  # the Medication it names, when known


def refuse(reason: str) -> BadRequest:
    return BadRequest("YL-1030", reason=reason)


def _number(resource: dict[str, Any], system: str | None) -> dict[str, Any] | None:
    for identifier in resource.get("identifier") or ():
        if (
            isinstance(identifier, dict)
            and identifier.get("value")
            and (system is None or identifier.get("system") == system)
        ):
            return {"system": identifier.get("system"), "value": identifier["value"]}
    return None


def continuation(
    origin: Origin,
    *,
    patient: str,
    number_system: str | None,
    identifier: dict[str, Any] | None = None,
    authored: str | None = None,
    requester: dict[str, Any] | None = None,
    dispenser: tuple[str, str] | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """B's new MedicationRequest continuing ``origin`` for ``patient`` (``Patient/id`` here);
    ``dispenser`` (member code, ``Organization/id``) makes it an extended prescription."""
    prior = origin.resource
    number = _number(prior, number_system) or _number(prior, None)
    if origin.local:
        prior_ref: dict[str, Any] = {"reference": f"MedicationRequest/{prior['id']}"}
    elif number is not None:
        prior_ref = {"identifier": number, "display": f"{origin.member} {number['value']}"}
    else:
        raise refuse("the prescription to continue has no identifier to point at")
    medication = prior.get("medication")
    if not origin.local:  # A's Medication is on A's server: carry what it is, not where
        medication_code = (origin.medication or {}).get("code")
        concept = (medication or {}).get("concept") if isinstance(medication, dict) else None
        medication = {"concept": medication_code or concept or {"text": "see the prior prescription"}}
    new: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": patient},
        "medication": medication,
        "authoredOn": authored or now_instant(),
        "priorPrescription": prior_ref,
    }
    if identifier:
        new["identifier"] = [identifier]
    if requester:
        new["requester"] = requester
    for element in CARRIED:
        if element in prior:
            new[element] = prior[element]
    request = {
        k: v for k, v in (prior.get("dispenseRequest") or {}).items() if k not in ("dispenser", "validityPeriod")
    }
    if request:
        new["dispenseRequest"] = request
    if dispenser is not None:
        parts: list[dict[str, Any]] = [{"url": "dispensingMember", "valueReference": {"reference": dispenser[1]}}]
        if number is not None:
            parts.append({"url": "originPrescription", "valueIdentifier": number})
        new["extension"] = [{"url": EXTENDED, "extension": parts}]
    if owner:
        new["meta"] = {"tag": [{"system": "http://yaolian.org/fhir/sid/member", "code": owner}]}
    return new
