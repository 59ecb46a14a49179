"""What the e-prescription messages are made of: the prescription at the version of the event
and what it references (patient, prescriber, prescribing member, drug, visit, and the
pharmacist who reviewed it with their role, :mod:`.pharmacist`), read through
the service as the gateway itself (the feed is the gateway's duty, whoever owns the
subscription: an insurer may not read the patient index, yet the platform needs the ID number)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import FhirError
from gateway.events.insurance.pharmacist import reviewing_pharmacist
from gateway.federation.registry import MemberRegistry
from gateway.hooks import RequestContext
from gateway.security.policy import owner_tag
from gateway.service.fhir_service import FhirService


def _read(service: FhirService, reference: Any, ctx: RequestContext) -> dict[str, Any] | None:
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(ref, str) or ref.count("/") != 1:
        return None
    stored = service.read_reference(ref, ctx)
    return orjson.loads(stored.body) if stored is not None and stored.body else None


def prescription_context(
    service: FhirService, rx: dict[str, Any], ctx: RequestContext, registry: MemberRegistry
) -> dict[str, Any]:
    medication = rx.get("medication") or {}
    med = _read(service, medication.get("reference"), ctx)
    if med is None and isinstance(medication.get("concept"), dict):
        med = {"resourceType": "Medication", "code": medication["concept"]}
    dr = _read(service, rx.get("requester"), ctx)
    role = None
    if dr is not None and dr.get("resourceType") == "PractitionerRole":
        role, dr = dr, _read(service, dr.get("practitioner"), ctx)
    org = None
    member = registry.get(owner_tag(rx) or "")
    if member is not None:
        try:
            org = orjson.loads(service.read("Organization", member.organization_id, ctx).body or b"{}")
        except FhirError:
            org = None
    if org is None and dr is not None and dr.get("id"):
        # no owner tag (data loaded by the operator): the prescriber's member, by their role
        roles = [role] if role else []
        if not roles:
            params = [("practitioner", f"Practitioner/{dr['id']}")]
            roles = [orjson.loads(r.body) for r in service.find("PractitionerRole", params, ctx) if r.body]
        for found in roles:
            org = _read(service, found.get("organization"), ctx)
            if org is not None:
                break
    phar, phar_role = reviewing_pharmacist(service, rx, ctx, lambda reference: _read(service, reference, ctx))
    return {
        "rx": rx,
        "patient": _read(service, rx.get("subject"), ctx) or {},
        "dr": dr or {},
        "org": org or {},
        "med": med or {},
        "enc": _read(service, rx.get("encounter"), ctx) or {},
        "phar": phar,
        "phar_role": phar_role,
    }
