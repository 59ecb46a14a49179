"""Demand plans (需求计划, POL-11, POL-12): members' plan lines aggregated into the county's
procurement plan for a period, approved by the county pharmacy, exported for the distributors.

A plan line is a SupplyRequest of kind ``demand-plan`` (requester: the member; supplier: the
distribution company; ``occurrence`` the period it is for, else ``authoredOn``). Aggregation
reads, never writes: totals per drug and per supplier, each with the ids of the lines it sums.
Approval writes in one transaction: every line gets the approval extension
(:data:`APPROVAL_URL`), a changed line keeps its original quantity and the reason
(:data:`PLAN_CHANGE_URL`), a cut line is ``cancelled`` with its reason, and a ``List``
(:func:`plan_id`) records the approved plan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.alliance.supply.periods import Period
from gateway.alliance.supply.reading import SupplyWorld, fetch_all
from gateway.alliance.supply.terms import CS, KIND_SYSTEM, PLAN_CHANGE_URL, SD, kind_of, reference_of
from gateway.errors import BadRequest, Forbidden, issue
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.principal import Role
from gateway.service.fhir_service import FhirService
from gateway.store.base import StoreTransaction

APPROVAL_URL = SD + "yl-plan-approval"
PLAN_LIST_CODE = CS + "supply-data"


def plan_id(county: str, period: str) -> str:
    return f"procurement-plan-{county}-{period}"


@dataclass(frozen=True)
class PlanLine:
    id: str
    member: str
    county: str
    drug: str
    supplier: str
    quantity: float
    unit: str
    reasons: tuple[str, ...]
    status: str
    approved: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "line": f"SupplyRequest/{self.id}",
            "member": self.member,
            "drug": self.drug,
            "supplier": self.supplier,
            "quantity": self.quantity,
            "unit": self.unit,
            "reasons": list(self.reasons),
            "status": self.status,
            "approved": self.approved,
        }


def when_of(request: Mapping[str, Any]) -> str | None:
    """The day a plan line is for: its occurrence, else when it was written."""
    occurrence = request.get("occurrencePeriod")
    if isinstance(occurrence, Mapping) and occurrence.get("start"):
        return str(occurrence["start"])
    for key in ("occurrenceDateTime", "authoredOn"):
        if request.get(key):
            return str(request[key])
    return None


def is_approved(request: Mapping[str, Any]) -> bool:
    return request.get("status") == "active" and any(
        e.get("url") == APPROVAL_URL for e in request.get("extension") or () if isinstance(e, Mapping)
    )


def plan_line(request: Mapping[str, Any], world: SupplyWorld) -> PlanLine | None:
    member = world.member_of(request.get("requester"))
    drug = world.catalogue.drug_of(request.get("item"))
    if member is None or drug is None:
        return None
    county = world.registry.county_of(member.code)
    suppliers = [reference_of(s) for s in request.get("supplier") or ()]
    quantity = request.get("quantity") or {}
    reasons = tuple(
        str(c.get("code"))
        for r in request.get("reason") or ()
        for c in ((r.get("concept") or {}).get("coding") or ())
        if c.get("code")
    )
    return PlanLine(
        id=str(request.get("id")),
        member=member.code,
        county=county.code if county else member.code,
        drug=drug,
        supplier=next((s for s in suppliers if s), "") or "",
        quantity=float(quantity.get("value") or 0),
        unit=str(quantity.get("unit") or ""),
        reasons=reasons,
        status=str(request.get("status") or ""),
        approved=is_approved(request),
    )


def plan_requests(
    service: FhirService, ctx: RequestContext, period: Period, kind: str = "demand-plan"
) -> list[dict[str, Any]]:
    found = fetch_all(service, "SupplyRequest", [("category", f"{KIND_SYSTEM}|{kind}")], ctx)
    return [r for r in found if kind_of(r) == kind and period.contains(when_of(r))]


@dataclass
class Total:
    quantity: float = 0.0
    unit: str = ""
    lines: list[str] = field(default_factory=list)


@dataclass
class Aggregate:
    """The county's procurement plan for a period, each total with the lines it sums."""

    period: str
    lines: list[PlanLine]

    def _totals(self, key: Any) -> dict[Any, Total]:
        totals: dict[Any, Total] = defaultdict(Total)
        for line in self.lines:
            if line.status == "cancelled":
                continue
            t = totals[key(line)]
            t.quantity += line.quantity
            t.unit = t.unit or line.unit
            t.lines.append(f"SupplyRequest/{line.id}")
        return totals

    def by_drug(self) -> dict[tuple[str, str], Total]:
        return self._totals(lambda line: (line.county, line.drug))

    def by_supplier(self) -> dict[tuple[str, str, str], Total]:
        return self._totals(lambda line: (line.county, line.supplier, line.drug))

    def as_json(self, world: SupplyWorld | None = None) -> dict[str, Any]:
        def name(drug: str) -> str:
            return world.catalogue.name(drug) if world else drug

        return {
            "period": self.period,
            "lineCount": len(self.lines),
            "byDrug": [
                {"county": c, "drug": d, "name": name(d), "quantity": t.quantity, "unit": t.unit, "lines": t.lines}
                for (c, d), t in sorted(self.by_drug().items())
            ],
            "bySupplier": [
                {
                    "county": c,
                    "supplier": s,
                    "drug": d,
                    "name": name(d),
                    "quantity": t.quantity,
                    "unit": t.unit,
                    "lines": t.lines,
                }
                for (c, s, d), t in sorted(self.by_supplier().items())
            ],
            "lines": [line.as_json() for line in sorted(self.lines, key=lambda x: x.id)],
        }

    def csv_rows(self) -> list[list[str]]:
        rows = [["county", "supplier", "nhsa_code", "quantity", "unit", "lines"]]
        for (c, s, d), t in sorted(self.by_supplier().items()):
            rows.append([c, s, d, f"{t.quantity:g}", t.unit, " ".join(t.lines)])
        return rows


def aggregate(service: FhirService, ctx: RequestContext, period: Period) -> tuple[Aggregate, SupplyWorld]:
    world = SupplyWorld.load(service, ctx)
    lines = [line for r in plan_requests(service, ctx, period) if (line := plan_line(r, world)) is not None]
    return Aggregate(period.text, lines), world


@dataclass(frozen=True)
class Change:
    """A change the approver makes to one line: a new quantity (0 cuts it), with a reason."""

    line: str  # SupplyRequest id
    quantity: float
    reason: str


def may_approve(ctx: RequestContext) -> bool:
    principal = ctx.principal
    return principal is not None and principal.role in (Role.COUNTY_PHARMACY, Role.ADMIN)


def approve(
    service: FhirService, ctx: RequestContext, period: Period, changes: list[Change], approver: str | None = None
) -> dict[str, Any]:
    """Approve the period's plan with ``changes``; all lines in one transaction, or none."""
    if not may_approve(ctx):
        raise Forbidden("YL-1203", action="approve a procurement plan", action_zh="批准采购计划")
    requests = {str(r["id"]): r for r in plan_requests(service, ctx, period) if r.get("status") in ("active", "draft")}
    problems = []
    for n, change in enumerate(changes):
        where = f"Parameters.parameter[{n}]"
        if change.line.removeprefix("SupplyRequest/") not in requests:
            problems.append(
                issue("YL-1205", field=where, reference=change.line, what="plan line", what_zh="计划明细",
                      expression=[where])
            )  # fmt: skip
        if not change.reason.strip():
            problems.append(issue("YL-1204", field=f"{where}.part[reason]", line=change.line, expression=[where]))
        if change.quantity < 0:
            problems.append(
                issue("YL-1211", field=f"{where}.part[quantity]", value=change.quantity, expression=[where])
            )
    if problems:
        raise BadRequest(problems)
    by_line = {c.line.removeprefix("SupplyRequest/"): c for c in changes}
    world = SupplyWorld.load(service, ctx)
    when = _now()
    who = approver or (ctx.principal.name if ctx.principal else "")
    plans: dict[str, list[str]] = defaultdict(list)
    for rid, request in requests.items():
        line = plan_line(request, world)
        plans[line.county if line else ""].append(rid)

    def write(tx: StoreTransaction) -> dict[str, Any]:
        approved, cut, changed = [], [], []
        for rid, request in sorted(requests.items()):
            body = {k: v for k, v in request.items() if k != "meta"}
            extensions = [e for e in body.get("extension") or () if e.get("url") != APPROVAL_URL]
            change = by_line.get(rid)
            if change is not None:
                original = (body.get("quantity") or {}).get("value")
                extensions.append(
                    {
                        "url": PLAN_CHANGE_URL,
                        "extension": [
                            {"url": "originalQuantity", "valueDecimal": original},
                            {"url": "newQuantity", "valueDecimal": change.quantity},
                            {"url": "reason", "valueString": change.reason},
                            {"url": "by", "valueString": who},
                            {"url": "date", "valueDateTime": when},
                        ],
                    }
                )
                if change.quantity == 0:
                    body["status"] = "cancelled"
                    cut.append(rid)
                else:
                    body["quantity"] = {**(body.get("quantity") or {}), "value": change.quantity}
                    changed.append(rid)
            if body.get("status") != "cancelled":
                body["status"] = "active"
                extensions.append(
                    {
                        "url": APPROVAL_URL,
                        "extension": [
                            {"url": "period", "valueString": period.text},
                            {"url": "by", "valueString": who},
                            {"url": "date", "valueDateTime": when},
                        ],
                    }
                )
                approved.append(rid)
            body["extension"] = extensions
            service.writer.update(tx, ctx, "SupplyRequest", rid, ResourceText.parse(orjson.dumps(body)))
        lists = []
        for county, ids in sorted(plans.items()):
            member = world.registry.get(county)
            lid = plan_id(county or "none", period.text)
            plan = {
                "resourceType": "List",
                "id": lid,
                "status": "current",
                "mode": "working",
                "title": f"{period.text} 采购计划 procurement plan",
                "code": {"coding": [{"system": PLAN_LIST_CODE, "code": "procurement-plan", "display": "采购计划"}]},
                "date": when,
                "entry": [
                    {"item": {"reference": f"SupplyRequest/{rid}"}, **({"deleted": True} if rid in cut else {})}
                    for rid in sorted(ids)
                ],
            }
            if member is not None:
                plan["source"] = {"reference": member.reference}
            service.writer.update(tx, ctx, "List", lid, ResourceText.parse(orjson.dumps(plan)))
            lists.append(f"List/{lid}")
        return {"period": period.text, "approved": approved, "cut": cut, "changed": changed, "plans": lists}

    return service.write(ctx, write)


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")
