"""Who reviewed a prescription, for the platform's 7103 (审方药师, POL-18).

The national upload names the pharmacist who reviewed the prescription. In the alliance that is
the central pre-review (POL-06): when a pharmacist overrode its findings, the review extension
names them as ``reviewer``; when the rules passed it alone, nobody signed it, and the alliance
answers for it through the responsible pharmacist it configures
(``insurance_review_pharmacist``). A prescription never reviewed has no pharmacist: the gateway
does not invent one, so the upload stops with the fields it cannot fill.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.fhir.elements import extension
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService

REVIEW_URL = "http://yaolian.org/fhir/StructureDefinition/yl-central-review-result"
PHARMACIST_ROLE = "pharmacist"

Read = Callable[[Any], dict[str, Any] | None]


def review_extension(rx: dict[str, Any]) -> dict[str, Any] | None:
    return extension(rx, REVIEW_URL)


def reviewing_pharmacist(
    service: FhirService, rx: dict[str, Any], ctx: RequestContext, read: Read
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reviewing Practitioner and their PractitionerRole (each ``{}`` when unknown)."""
    review = review_extension(rx)
    if review is None:
        return {}, {}
    named = extension(review, "reviewer")
    reference = named.get("valueReference") if named else None
    if reference is None:
        configured = service.settings.insurance_review_pharmacist
        result = (extension(review, "result") or {}).get("valueCode")
        if not configured or result != "pass":  # findings still open want a pharmacist of their own
            return {}, {}
        reference = {"reference": configured if "/" in configured else f"Practitioner/{configured}"}
    found = read(reference) or {}
    role: dict[str, Any] = {}
    if found.get("resourceType") == "PractitionerRole":
        role, found = found, read(found.get("practitioner")) or {}
    if found.get("resourceType") != "Practitioner":
        return {}, {}
    if not role and found.get("id"):
        role = _pharmacist_role(service, str(found["id"]), ctx)
    return found, role


def _pharmacist_role(service: FhirService, practitioner_id: str, ctx: RequestContext) -> dict[str, Any]:
    """Their pharmacist role where they have several (a pharmacist may also hold another post)."""
    params = [("practitioner", f"Practitioner/{practitioner_id}")]
    roles = [orjson.loads(r.body) for r in service.find("PractitionerRole", params, ctx) if r.body]
    for role in roles:
        codes = {c.get("code") for cc in role.get("code") or () for c in cc.get("coding") or ()}
        if PHARMACIST_ROLE in codes:
            return dict(role)
    return dict(roles[0]) if roles else {}
