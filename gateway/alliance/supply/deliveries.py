"""Deliveries with traceability (集中配送、追溯, POL-12, POL-23, POL-24, POL-26).

An alliance delivery is a SupplyDelivery ``basedOn`` an approved plan line (or an approved
transfer, or a shortage's temporary procurement request), one ``suppliedItem`` per batch with
its batch number, expiry and 20-digit traceability codes (the same extensions InventoryReport
uses). Its acceptance at receipt (quantity, quality, storage condition, who and when) is the
:data:`ACCEPTANCE_URL` extension. The checks run at ``BEFORE_WRITE``, so a refused delivery is
refused whole, however it came (REST, transaction Bundle, CLI); every problem is reported at
once, each naming its field. When an accepted delivery commits, the same transaction writes the
stock movement as a ``difference`` InventoryReport (``receipt-<delivery id>``: + at the
receiver, and - at the giver for a transfer) and completes the request it fulfilled.

Which SupplyDelivery is an alliance delivery: one claiming :data:`PROFILE`, one based on a
SupplyRequest of an alliance kind, or one delivered to a member (destination or receiver).
Others (the R5 examples of blood bags and pumps) pass untouched.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.alliance.supply.periods import Period
from gateway.alliance.supply.plans import is_approved, when_of
from gateway.alliance.supply.reading import SupplyWorld, fetch_all
from gateway.alliance.supply.system import system_context
from gateway.alliance.supply.terms import (
    ACCEPTANCE_URL,
    EXPIRY_URL,
    LOT_URL,
    MEMBER_SYSTEM,
    SD,
    TRACE_URL,
    extension_value,
    kind_of,
    reference_of,
)
from gateway.errors import Issue, Unprocessable, issue
from gateway.fhir.json_text import ResourceText
from gateway.hooks import Pointcut, RequestContext
from gateway.service.fhir_service import FhirService
from gateway.store.base import StoredResource, StoreTransaction

PROFILE = SD + "yl-supply-delivery"
DELIVERED_URL = SD + "yl-delivered-quantity"
TRACE_CODE = re.compile(r"^\d{20}$")


def _read(service: FhirService, ctx: RequestContext, reference: str) -> dict[str, Any] | None:
    stored = service.read_reference(reference, ctx)
    return orjson.loads(stored.body) if stored is not None and stored.body else None


def is_alliance_delivery(data: Mapping[str, Any], world: SupplyWorld, requests: list[dict[str, Any] | None]) -> bool:
    claimed = (data.get("meta") or {}).get("profile") or []
    if any(str(p).split("|")[0] == PROFILE for p in claimed):
        return True
    if any(r is not None and kind_of(r) for r in requests):
        return True
    receivers = [data.get("destination"), *(data.get("receiver") or [])]
    return any(world.member_of(r) is not None for r in receivers)


def accepted(data: Mapping[str, Any]) -> bool:
    return (
        data.get("status") == "completed"
        and extension_value(data, ACCEPTANCE_URL, "extension") is not None
        and (_acceptance(data).get("accepted") is True)
    )


def _acceptance(data: Mapping[str, Any]) -> dict[str, Any]:
    parts = extension_value(data, ACCEPTANCE_URL, "extension") or []
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key.startswith("value"):
                out[str(part.get("url"))] = value
    return out


def check_delivery(
    data: Mapping[str, Any], world: SupplyWorld, requests: dict[str, dict[str, Any] | None]
) -> list[Issue]:
    """Every reason to refuse the delivery (empty: it may be stored). ``requests`` are the
    SupplyRequests its ``basedOn`` names, as read (None: not there to read)."""
    problems: list[Issue] = []
    based = [reference_of(b) for b in data.get("basedOn") or ()]
    line: dict[str, Any] | None = None
    if not any(based):
        problems.append(
            issue("YL-1214", field="SupplyDelivery.basedOn", what="the approved plan line or transfer it fulfils",
                  what_zh="所依据的已批准计划明细或调剂单", expression=["SupplyDelivery.basedOn"])
        )  # fmt: skip
    for n, ref in enumerate(based):
        if not ref:
            continue
        where = f"SupplyDelivery.basedOn[{n}]"
        request = requests.get(ref)
        kind = kind_of(request) if request else None
        ok = request is not None and (
            is_approved(request) or (kind == "shortage" and request.get("status") == "active")
        )
        if not ok:
            status = str(request.get("status")) if request else "not found"
            problems.append(issue("YL-1210", field=where, reference=ref, status=status, expression=[where]))
        elif line is None:
            line = request
    line_drug = world.catalogue.drug_of(line.get("item")) if line else None
    items = data.get("suppliedItem") or []
    if not items:
        problems.append(
            issue("YL-1214", field="SupplyDelivery.suppliedItem", what="one item per batch delivered",
                  what_zh="每个批次一条配送明细", expression=["SupplyDelivery.suppliedItem"])
        )  # fmt: skip
    for i, item in enumerate(items):
        at = f"SupplyDelivery.suppliedItem[{i}]"
        value = (item.get("quantity") or {}).get("value")
        if not isinstance(value, int | float) or value <= 0:
            problems.append(
                issue("YL-1211", field=f"{at}.quantity.value", value=value, expression=[f"{at}.quantity.value"])
            )
        named = item.get("itemReference") or item.get("itemCodeableConcept")
        drug = world.catalogue.drug_of(named)
        if drug is None:
            shown = reference_of(named) or orjson.dumps(named).decode()
            element = f"{at}.itemReference" if "itemReference" in item else f"{at}.itemCodeableConcept"
            problems.append(issue("YL-1212", field=element, value=shown, expression=[element]))
        elif line_drug is not None and drug != line_drug:
            problems.append(
                issue("YL-1215", field=f"{at}.item", value=drug, expected=line_drug, expression=[f"{at}.item"])
            )
        if not extension_value(item, LOT_URL, "valueString"):
            problems.append(
                issue("YL-1214", field=f"{at}.extension[lotNumber]", what="the batch number", what_zh="批号",
                      expression=[f"{at}.extension"])
            )  # fmt: skip
        if not extension_value(item, EXPIRY_URL, "valueDate"):
            problems.append(
                issue("YL-1214", field=f"{at}.extension[expirationDate]", what="the expiry date", what_zh="有效期",
                      expression=[f"{at}.extension"])
            )  # fmt: skip
        codes = [(j, e) for j, e in enumerate(item.get("extension") or ()) if e.get("url") == TRACE_URL]
        if not codes:
            problems.append(
                issue("YL-1214", field=f"{at}.extension[traceabilityCode]", what="the drug traceability codes",
                      what_zh="药品追溯码", expression=[f"{at}.extension"])
            )  # fmt: skip
        for j, ext in codes:
            code = (ext.get("valueIdentifier") or {}).get("value")
            if not isinstance(code, str) or not TRACE_CODE.match(code):
                where = f"{at}.extension[{j}].valueIdentifier.value"
                problems.append(issue("YL-1213", field=where, value=code, expression=[where]))
    return problems


def _receipt(
    data: Mapping[str, Any], delivery_id: str, world: SupplyWorld, request: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The stock movement of an accepted delivery, as a difference InventoryReport."""
    acceptance = _acceptance(data)
    receiver = world.member_of(data.get("destination")) or next(
        (m for m in (world.member_of(r) for r in data.get("receiver") or ()) if m), None
    )
    if receiver is None and request is not None:
        receiver = world.member_of(request.get("deliverTo")) or world.member_of(request.get("requester"))
    if receiver is None:
        return None
    giver = None
    if request is not None and kind_of(request) == "transfer":
        giver = world.member_of(request.get("deliverFrom")) or world.member_of(data.get("supplier"))
    items = data.get("suppliedItem") or []
    share = acceptance.get("quantity")
    listings: list[dict[str, Any]] = []
    when = str(acceptance.get("date") or data.get("occurrenceDateTime") or "") or datetime.now(UTC).isoformat(
        timespec="seconds"
    )
    for sign, member in ((1, receiver), (-1, giver)):
        if member is None:
            continue
        rows = []
        for item in items:
            quantity = float((item.get("quantity") or {}).get("value") or 0)
            if isinstance(share, int | float) and len(items) == 1:
                quantity = float(share)  # a partial acceptance of a single batch
            rows.append(
                {
                    "extension": [
                        e for e in item.get("extension") or () if e.get("url") in (LOT_URL, EXPIRY_URL, TRACE_URL)
                    ],
                    "quantity": {**(item.get("quantity") or {}), "value": sign * quantity},
                    "item": {"reference": item["itemReference"]}
                    if "itemReference" in item
                    else {"concept": item.get("itemCodeableConcept")},
                }
            )
        listing: dict[str, Any] = {"item": rows, "countingDateTime": when}
        listing["location"] = {"reference": world.pharmacy_of(member) or member.reference}
        listings.append(listing)
    # R5 lets a Practitioner (not an Organization) report: the person who accepted, contained
    receiver_name = str(acceptance.get("by") or "验收人 receiving pharmacist")
    report: dict[str, Any] = {
        "resourceType": "InventoryReport",
        "id": f"receipt-{delivery_id}",
        "contained": [{"resourceType": "Practitioner", "id": "accepted-by", "name": [{"text": receiver_name}]}],
        "reporter": {"reference": "#accepted-by"},
        "status": "active",
        "countType": "difference",
        "operationType": {"text": "transfer" if giver else "receipt"},
        "reportedDateTime": when,
        "note": [{"text": f"SupplyDelivery/{delivery_id} accepted / 验收入库"}],
        "inventoryListing": listings,
    }
    return report


@dataclass
class DeliveryRules:
    """The hooks that check alliance deliveries and move stock when one is accepted."""

    service: FhirService

    def install(self) -> None:
        self.service.hooks.register(Pointcut.BEFORE_WRITE, self.before_write)
        self.service.hooks.register(Pointcut.AFTER_WRITE_IN_TX, self.after_write)

    def _context(self, data: Mapping[str, Any], ctx: RequestContext) -> tuple[SupplyWorld, dict[str, Any]]:
        world = SupplyWorld.load(self.service, ctx)
        requests = {
            ref: _read(self.service, ctx, ref)
            for ref in (reference_of(b) for b in data.get("basedOn") or ())
            if ref and ref.startswith("SupplyRequest/")
        }
        return world, requests

    def before_write(
        self, ctx: RequestContext, resource_type: str, data: dict[str, Any] | None, existing: StoredResource | None
    ) -> None:
        if resource_type != "SupplyDelivery" or data is None:
            return
        world, requests = self._context(data, ctx)
        if not is_alliance_delivery(data, world, list(requests.values())):
            return
        if existing is not None and existing.body and accepted(orjson.loads(existing.body)):
            return  # stock already moved; later edits (notes) are not deliveries again
        problems = check_delivery(data, world, requests)
        if not problems:
            problems = self._giver_keeps_its_line(ctx, data, world, requests)
        if problems:
            raise Unprocessable(problems)

    def _giver_keeps_its_line(
        self, ctx: RequestContext, data: Mapping[str, Any], world: SupplyWorld, requests: dict[str, Any]
    ) -> list[Issue]:
        """A transfer never takes its giver below the giver's own alert line (POL-15)."""
        from gateway.alliance.supply.alert_lines import current_lines
        from gateway.alliance.supply.stock import load_ledger

        ref, request = next(iter(requests.items()), (None, None))
        if request is None or kind_of(request) != "transfer":
            return []
        giver = world.member_of(request.get("deliverFrom")) or world.member_of(data.get("supplier"))
        drug = world.catalogue.drug_of(request.get("item"))
        if giver is None or drug is None:
            return []
        moved = sum(float((i.get("quantity") or {}).get("value") or 0) for i in data.get("suppliedItem") or ())
        stock = load_ledger(self.service, ctx, world).total(giver.code, drug)
        line = current_lines(self.service, ctx).line_for(giver, drug) or 0.0
        if stock - moved >= line:
            return []
        reason = f"{giver.code} holds {stock:g}, its line is {line:g}, moving {moved:g} would leave {stock - moved:g}"
        reason_zh = f"{giver.code} 库存 {stock:g}，警戒线 {line:g}，调出 {moved:g} 后仅余 {stock - moved:g}"
        return [
            issue("YL-1220", field="SupplyDelivery.suppliedItem", reference=ref, reason=reason, reason_zh=reason_zh,
                  expression=["SupplyDelivery.suppliedItem"])
        ]  # fmt: skip

    def after_write(self, ctx: RequestContext, tx: StoreTransaction, stored: StoredResource) -> None:
        if stored.res_type != "SupplyDelivery" or not stored.body:
            return
        data = orjson.loads(stored.body)
        if not accepted(data):
            return
        world, requests = self._context(data, ctx)
        if not is_alliance_delivery(data, world, list(requests.values())):
            return
        request_ref, request = next(iter(requests.items()), (None, None))
        receipt = _receipt(data, stored.res_id, world, request)
        if receipt is None:
            return
        writer = self.service.writer
        earlier = tx.current("InventoryReport", receipt["id"], for_update=False)
        writer.update(tx, ctx, "InventoryReport", receipt["id"], ResourceText.parse(orjson.dumps(receipt)))
        if earlier is not None and not earlier.deleted:
            return  # this delivery was accepted before: its quantity already counts for the request
        if request is not None and request_ref is not None and request.get("status") == "active":
            wanted = float((request.get("quantity") or {}).get("value") or 0)
            got = sum(float((i.get("quantity") or {}).get("value") or 0) for i in data.get("suppliedItem") or ())
            share = _acceptance(data).get("quantity")
            got = float(share) if isinstance(share, int | float) else got
            # partial deliveries add up on the request (yl-delivered-quantity) until it is covered
            before = extension_value(request, DELIVERED_URL, "valueDecimal")
            total = got + (float(before) if isinstance(before, int | float) else 0.0)
            body = {k: v for k, v in request.items() if k != "meta"}
            body["extension"] = [e for e in body.get("extension") or () if e.get("url") != DELIVERED_URL]
            body["extension"].append({"url": DELIVERED_URL, "valueDecimal": total})
            if total >= wanted:
                body["status"] = "completed"
            rid = request_ref.removeprefix("SupplyRequest/")
            writer.update(tx, ctx, "SupplyRequest", rid, ResourceText.parse(orjson.dumps(body)))
            if body["status"] == "completed" and kind_of(request) == "shortage" and request.get("deliverFor"):
                notice = patient_notice(request, rid, world)
                # the gateway writes the notice (the county pharmacy delivering may not write to patients)
                body_text = ResourceText.parse(orjson.dumps(notice))
                writer.update(tx, system_context(ctx), "Task", notice["id"], body_text)


def patient_notice(request: Mapping[str, Any], request_id: str, world: SupplyWorld) -> dict[str, Any]:
    """A Task for the member to tell the patient the registered drug has arrived (POL-16): the
    registration is closed. (The gateway stores no Communication; the Task is the member's to-do.)"""
    member = world.member_of(request.get("requester"))
    drug = world.catalogue.drug_of(request.get("item"))
    name = world.catalogue.name(drug) if drug else "登记的药品"
    place = member.name if member else "本机构"
    notice: dict[str, Any] = {
        "resourceType": "Task",
        "id": f"shortage-filled-{request_id}",
        "status": "requested",
        "intent": "order",
        "code": {"text": "缺药到货通知患者 tell the patient the drug has arrived"},
        "description": f"您登记的{name}已到{place}，请前来取药。The drug registered as missing has arrived.",
        "focus": {"reference": f"SupplyRequest/{request_id}"},
        "for": request["deliverFor"],
    }
    if member is not None:
        notice["owner"] = {"reference": member.reference}
        notice["meta"] = {"tag": [{"system": MEMBER_SYSTEM, "code": member.code}]}  # the member's to-do
    return notice


# -- supplier records (POL-23) ------------------------------------------------------------------
def on_time_rates(service: FhirService, ctx: RequestContext, period: Period) -> list[dict[str, Any]]:
    """Per supplier: deliveries of plan lines due in ``period``, how many arrived by the due day."""
    deliveries = fetch_all(service, "SupplyDelivery", [], ctx)
    lines: dict[str, dict[str, Any] | None] = {}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d in deliveries:
        ref = next((r for r in (reference_of(b) for b in d.get("basedOn") or ()) if r), None)
        if not ref or not ref.startswith("SupplyRequest/") or d.get("status") != "completed":
            continue
        if ref not in lines:
            lines[ref] = _read(service, ctx, ref)
        line = lines[ref]
        if line is None or kind_of(line) != "demand-plan" or not period.contains(when_of(line)):
            continue
        due = due_day(line)
        arrived = str(d.get("occurrenceDateTime") or (d.get("occurrencePeriod") or {}).get("end") or "")[:10]
        supplier = reference_of(d.get("supplier")) or next(
            (r for r in (reference_of(s) for s in line.get("supplier") or ()) if r), ""
        )
        tally = counts[supplier or ""]
        tally[0] += 1
        tally[1] += int(bool(arrived) and (not due or arrived <= due))
    return [
        {"supplier": s, "period": period.text, "deliveries": n, "onTime": k, "rate": round(k / n, 4) if n else None}
        for s, (n, k) in sorted(counts.items())
    ]


def due_day(line: Mapping[str, Any]) -> str:
    occurrence = line.get("occurrencePeriod")
    if isinstance(occurrence, Mapping) and occurrence.get("end"):
        return str(occurrence["end"])[:10]
    return str(line.get("occurrenceDateTime") or "")[:10]
