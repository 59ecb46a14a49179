"""Balancing surplus and deficit between members (余缺调剂, POL-15, POL-25, POL-26).

For each drug, members below their alert line are in deficit by ``line - stock``; a member
above its own line (no line: zero) may give what it holds above it, never more. Batches are
taken nearest expiry first (expired ones never), from members before the county central
pharmacy, whose reserve is the last resort. Proposals become SupplyRequests of kind
``transfer`` (status ``draft``) that a person approves; an approved transfer moves stock at both
ends when its delivery is accepted (:mod:`gateway.alliance.supply.deliveries`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from gateway.alliance.supply.alert_lines import AlertLines
from gateway.alliance.supply.bulk import without_cyclic_gc
from gateway.alliance.supply.plans import APPROVAL_URL, may_approve
from gateway.alliance.supply.reading import SupplyWorld, fetch_all
from gateway.alliance.supply.stock import Batch, Ledger
from gateway.alliance.supply.terms import EXPIRY_URL, KIND_SYSTEM, LOT_URL, extension_value, kind_of
from gateway.errors import BadRequest, Forbidden
from gateway.federation.registry import Member, MemberRegistry
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService
from gateway.store.base import StoreTransaction


@dataclass(frozen=True)
class Transfer:
    drug: str
    giver: str
    receiver: str
    lot: str
    expiry: str
    quantity: float

    def as_json(self) -> dict[str, Any]:
        return {
            "drug": self.drug,
            "from": self.giver,
            "to": self.receiver,
            "lot": self.lot,
            "expiry": self.expiry or None,
            "quantity": self.quantity,
        }


def propose(
    ledger: Ledger, lines: AlertLines, registry: MemberRegistry, today: date, central: str | None = None
) -> list[Transfer]:
    """Transfers that lift members towards their lines without taking any giver below its own
    (pure: tests and the benchmark call it on ledgers they build). Transfers stay inside one
    county alliance; ``central`` names the central pharmacy when the registry has no county."""
    with without_cyclic_gc():
        return _propose(ledger, lines, registry, today, central)


def _propose(
    ledger: Ledger, lines: AlertLines, registry: MemberRegistry, today: date, central: str | None
) -> list[Transfer]:
    horizon = today.isoformat()
    county_of: dict[str, str] = {}

    def county(member: Member) -> str:
        code = county_of.get(member.code)
        if code is None:
            found = registry.county_of(member.code)
            code = county_of[member.code] = found.code if found else (central or "")
        return code

    buckets: dict[tuple[str, str], list[tuple[Member, dict[str, Batch]]]] = defaultdict(list)
    for (code, drug), lots in ledger.batches.items():
        member = registry.get(code)
        if member is not None:
            buckets[(county(member), drug)].append((member, lots))
    for scope, drug in lines.rows:  # a member with its own line but no report holds nothing
        member = registry.get(scope)
        if member is not None and (scope, drug) not in ledger.batches:
            buckets[(county(member), drug)].append((member, {}))
    proposals: list[Transfer] = []
    for county_code, drug in sorted(buckets):
        proposals += _balance_drug(drug, buckets[(county_code, drug)], lines, county_code, horizon)
    return proposals


def _balance_drug(
    drug: str, holders: list[tuple[Member, dict[str, Batch]]], lines: AlertLines, central: str, horizon: str
) -> list[Transfer]:
    needs: list[tuple[float, str, float]] = []  # (stock/line, member, need)
    spare: dict[str, float] = {}
    candidates: list[tuple[int, str, str, str, Batch]] = []
    for member, lots in holders:
        stock = sum(b.quantity for b in lots.values())
        line = lines.line_for(member, drug)
        if line is not None and stock < line:
            needs.append((stock / line if line else 0.0, member.code, line - stock))
            continue
        surplus = stock - (line or 0.0)
        if surplus <= 0:
            continue
        spare[member.code] = surplus
        last = 1 if member.code == central else 0  # the central reserve goes last
        for batch in lots.values():
            if batch.quantity > 0 and (not batch.expiry or batch.expiry >= horizon):
                candidates.append((last, batch.expiry or "9999-12-31", member.code, batch.lot, batch))
    if not needs or not candidates:
        return []
    candidates.sort(key=lambda c: c[:4])
    left = {(c[2], c[3]): c[4].quantity for c in candidates}
    proposals: list[Transfer] = []
    first = 0  # candidates before it are used up (what is used up stays so: linear overall)
    for _ratio, receiver, need in sorted(needs):
        for index in range(first, len(candidates)):
            if need <= 0:
                break
            _last, expiry, giver, lot, _batch = candidates[index]
            take = min(need, left[(giver, lot)], spare[giver])
            if take <= 0:
                if index == first:
                    first += 1
                continue
            left[(giver, lot)] -= take
            spare[giver] -= take
            need -= take
            proposals.append(Transfer(drug, giver, receiver, lot, "" if expiry == "9999-12-31" else expiry, take))
    return proposals


def _request(t: Transfer, world: SupplyWorld, when: str) -> dict[str, Any]:
    receiver = world.registry.get(t.receiver)
    giver = world.registry.get(t.giver)
    assert receiver is not None and giver is not None
    extensions: list[dict[str, Any]] = [{"url": LOT_URL, "valueString": t.lot}]
    if t.expiry:
        extensions.append({"url": EXPIRY_URL, "valueDate": t.expiry})
    return {
        "resourceType": "SupplyRequest",
        "meta": {"profile": ["http://yaolian.org/fhir/StructureDefinition/yl-supply-request"]},
        "extension": extensions,
        "status": "draft",
        "category": {"coding": [{"system": KIND_SYSTEM, "code": "transfer", "display": "调剂"}]},
        "item": world.catalogue.reference(t.drug),
        "quantity": {"value": t.quantity},
        "requester": {"reference": receiver.reference},
        "authoredOn": when,
        "deliverFrom": {"reference": world.pharmacy_of(giver) or giver.reference},
        "deliverTo": {"reference": world.pharmacy_of(receiver) or receiver.reference},
        "supplier": [{"reference": giver.reference}],
    }


def write_proposals(
    service: FhirService, ctx: RequestContext, world: SupplyWorld, proposals: list[Transfer], when: str
) -> list[str]:
    """The proposals as draft transfer SupplyRequests (one transaction); their ids."""
    if not proposals:
        return []

    def write(tx: StoreTransaction) -> list[str]:
        return [
            service.writer.create(
                tx, ctx, "SupplyRequest", ResourceText.parse(orjson.dumps(_request(t, world, when)))
            ).stored.res_id
            for t in proposals
        ]

    return service.write(ctx, write)


def approve_transfer(service: FhirService, ctx: RequestContext, transfer_id: str, who: str, when: str) -> None:
    """A person approves a proposed transfer: it becomes an active, approved request."""
    if not may_approve(ctx):
        raise Forbidden("YL-1203", action="approve a transfer", action_zh="批准调剂")
    stored = service.read("SupplyRequest", transfer_id, ctx)
    data = orjson.loads(stored.body or b"{}")
    field = f"SupplyRequest/{transfer_id}"
    if kind_of(data) != "transfer" or data.get("status") not in ("draft", "active"):
        raise BadRequest(
            "YL-1220", field="id", reference=field, reason=f"not a pending transfer (status {data.get('status')})",
            reason_zh="不是待批准的调剂", expression=["id"],
        )  # fmt: skip
    body = {k: v for k, v in data.items() if k != "meta"}
    body["status"] = "active"
    body["extension"] = [e for e in body.get("extension") or () if e.get("url") != APPROVAL_URL] + [
        {
            "url": APPROVAL_URL,
            "extension": [{"url": "by", "valueString": who}, {"url": "date", "valueDateTime": when}],
        }
    ]
    service.write(
        ctx,
        lambda tx: service.writer.update(tx, ctx, "SupplyRequest", transfer_id, ResourceText.parse(orjson.dumps(body))),
    )


def transfer_delivery(
    data: dict[str, Any], transfer_id: str, trace_codes: list[str], who: str, when: str, storage: str
) -> dict[str, Any]:
    """The SupplyDelivery of an approved transfer, accepted at receipt (the delivery rules check
    it and move the stock at both ends)."""
    from gateway.alliance.supply.terms import ACCEPTANCE_URL, TRACE_SYSTEM, TRACE_URL

    item_ref = data.get("item") or {}
    supplied: dict[str, Any] = {
        "extension": [
            {"url": LOT_URL, "valueString": extension_value(data, LOT_URL, "valueString") or ""},
            *(
                [{"url": EXPIRY_URL, "valueDate": expiry}]
                if (expiry := extension_value(data, EXPIRY_URL, "valueDate"))
                else []
            ),
            *({"url": TRACE_URL, "valueIdentifier": {"system": TRACE_SYSTEM, "value": c}} for c in trace_codes),
        ],
        "quantity": data.get("quantity") or {},
    }
    if isinstance(item_ref.get("reference"), dict):
        supplied["itemReference"] = item_ref["reference"]
    else:
        supplied["itemCodeableConcept"] = item_ref.get("concept") or {}
    return {
        "resourceType": "SupplyDelivery",
        "extension": [
            {
                "url": ACCEPTANCE_URL,
                "extension": [
                    {"url": "accepted", "valueBoolean": True},
                    {"url": "quality", "valueCode": "pass"},
                    {"url": "storage", "valueString": storage},
                    {"url": "by", "valueString": who},
                    {"url": "date", "valueDateTime": when},
                ],
            }
        ],
        "basedOn": [{"reference": f"SupplyRequest/{transfer_id}"}],
        "status": "completed",
        "suppliedItem": [supplied],
        "occurrenceDateTime": when,
        "supplier": (data.get("supplier") or [{}])[0],
        "destination": data.get("deliverTo") or {},
    }


def pending_transfers(service: FhirService, ctx: RequestContext) -> list[dict[str, Any]]:
    return [
        r
        for r in fetch_all(service, "SupplyRequest", [("category", f"{KIND_SYSTEM}|transfer")], ctx)
        if r.get("status") in ("draft", "active")
    ]
