"""Shortage registration (缺药登记, POL-16).

A member registers that a patient needs a drug it lacks, on the strength of a reviewed
extended prescription (延伸处方) or an individual-treatment prescription: the registration is a
SupplyRequest of kind ``shortage`` (requester: the member, ``deliverFor`` the patient, ``reason``
the prescription) and is at once the temporary procurement request to the county. A delivery
accepted against it (:mod:`gateway.alliance.supply.deliveries`) completes it: the registration
is closed and the patient can be told. Drugs registered more than the threshold times in a
year are proposed for next year's linkage list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from gateway.alliance.supply.periods import Period
from gateway.alliance.supply.reading import SupplyWorld, fetch_all
from gateway.alliance.supply.terms import KIND_SYSTEM, SD, coding_code, extension_value, kind_of, reference_of
from gateway.errors import BadRequest
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.principal import Role
from gateway.service.fhir_service import FhirService

REVIEW_URL = SD + "yl-central-review-result"
EXTENDED_URL = SD + "yl-extended-prescription"
INDIVIDUAL = "individual-treatment"


def qualifies(prescription: Mapping[str, Any]) -> bool:
    """Reviewed (central review passed) and extended or individual-treatment (POL-16)."""
    review = extension_value(prescription, REVIEW_URL, "extension") or []
    passed = any(p.get("url") == "result" and p.get("valueCode") == "pass" for p in review)
    extended = extension_value(prescription, EXTENDED_URL, "extension") is not None
    individual = any(
        c.get("code") == INDIVIDUAL for cat in prescription.get("category") or () for c in cat.get("coding") or ()
    )
    return passed and (extended or individual)


def register(
    service: FhirService,
    ctx: RequestContext,
    prescription: str,
    member: str | None,
    when: str,
    quantity: float | None = None,
) -> str:
    """Register a shortage for ``prescription`` at ``member`` (default: the prescription's
    dispensing member); the SupplyRequest id."""
    world = SupplyWorld.load(service, ctx)
    ref = prescription if "/" in prescription else f"MedicationRequest/{prescription}"
    stored = service.read_reference(ref, ctx)
    rx = orjson.loads(stored.body) if stored is not None and stored.body else None
    if rx is None or not qualifies(rx):
        raise BadRequest("YL-1230", field="prescription", reference=ref, expression=["prescription"])
    dispensing = next(
        (
            p.get("valueReference")
            for p in extension_value(rx, EXTENDED_URL, "extension") or ()
            if p.get("url") == "dispensingMember"
        ),
        None,
    )
    principal = ctx.principal
    if principal is not None and principal.role is Role.MEMBER:
        member = principal.member  # a member client registers at its own member, nowhere else
    at = world.registry.get(member) if member else world.member_of(dispensing)
    if at is None:
        raise BadRequest(
            "YL-1205", field="member", reference=str(member), what="member", what_zh="成员单位", expression=["member"]
        )
    amount = (
        quantity if quantity is not None else ((rx.get("dispenseRequest") or {}).get("quantity") or {}).get("value")
    )
    request: dict[str, Any] = {
        "resourceType": "SupplyRequest",
        "meta": {"profile": ["http://yaolian.org/fhir/StructureDefinition/yl-supply-request"]},
        "status": "active",
        "category": {"coding": [{"system": KIND_SYSTEM, "code": "shortage", "display": "缺药登记"}]},
        "priority": "urgent",
        "item": rx.get("medication") or {},
        "quantity": {"value": amount or 1},
        "requester": {"reference": at.reference},
        "authoredOn": when,
        "deliverFor": rx.get("subject"),
        "reason": [{"reference": {"reference": ref}}],
    }
    pharmacy = world.pharmacy_of(at)
    if pharmacy:
        request["deliverTo"] = {"reference": pharmacy}
    county = world.registry.county_of(at.code)
    if county is not None:
        request["supplier"] = [{"reference": county.reference}]
    body = ResourceText.parse(orjson.dumps(request))
    return service.write(ctx, lambda tx: service.writer.create(tx, ctx, "SupplyRequest", body).stored.res_id)


@dataclass(frozen=True)
class Registration:
    id: str
    member: str
    drug: str
    registered: str
    status: str
    filled: str | None  # the day its delivery was accepted


def registrations(service: FhirService, ctx: RequestContext, period: Period) -> list[Registration]:
    world = SupplyWorld.load(service, ctx)
    found = fetch_all(service, "SupplyRequest", [("category", f"{KIND_SYSTEM}|shortage")], ctx)
    filled: dict[str, str] = {}
    for d in fetch_all(service, "SupplyDelivery", [("status", "completed")], ctx):
        for b in d.get("basedOn") or ():
            ref = reference_of(b)
            if ref:
                day = str(d.get("occurrenceDateTime") or "")[:10]
                filled[ref] = min(filled.get(ref, day), day)
    out = []
    for r in found:
        if kind_of(r) != "shortage" or not period.contains(str(r.get("authoredOn") or "")):
            continue
        member = world.member_of(r.get("requester"))
        drug = world.catalogue.drug_of(r.get("item")) or coding_code((r.get("item") or {}).get("concept"), "") or ""
        out.append(
            Registration(
                str(r["id"]),
                member.code if member else "",
                drug,
                str(r.get("authoredOn") or "")[:10],
                str(r.get("status")),
                filled.get(f"SupplyRequest/{r['id']}"),
            )
        )
    return out


def linkage_candidates(regs: list[Registration], threshold: int) -> list[dict[str, Any]]:
    """Drugs registered more than ``threshold`` times: proposed for next year's linkage list."""
    counts = Counter(r.drug for r in regs if r.drug)
    return [{"drug": d, "registrations": n} for d, n in sorted(counts.items()) if n > threshold]


def days_to_fill(reg: Registration) -> int | None:
    if not reg.filled:
        return None
    return (date.fromisoformat(reg.filled) - date.fromisoformat(reg.registered)).days
