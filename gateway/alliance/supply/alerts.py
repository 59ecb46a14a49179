"""Stock alerts (POL-14, POL-15): stock strictly below its alert line, and batches expiring
within the window, as ``DetectedIssue`` resources that close themselves when the cause is gone.

Why DetectedIssue and not Flag: an alert names two things at once, the member whose stock is
short (``subject``: Organization) and the drug (``implicated``: Medication), and R5 searches
both (``subject=``, ``implicated=``) without a custom SearchParameter; its ``status`` has
``mitigated`` for an alert whose cause is gone, and ``mitigation`` records when and why it
closed. A Flag has one subject and no drug to search by.

One open alert per key (kind | member | drug [| batch]); the key is the alert's identifier
(:data:`ALERT_KEY_SYSTEM`), so evaluation is idempotent: a second run with the same stock
writes nothing. Each alert write is an ordinary write, so its outbox row is the event the
subscriptions feature relays.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import orjson

from gateway.alliance.supply.alert_lines import AlertLines
from gateway.alliance.supply.bulk import without_cyclic_gc
from gateway.alliance.supply.reading import SupplyWorld, fetch_all
from gateway.alliance.supply.stock import Batch, Ledger
from gateway.alliance.supply.terms import ALERT_KEY_SYSTEM, BELOW_LINE, EXPIRING, MEMBER_SYSTEM, SD, STOCK_ALERT_SYSTEM
from gateway.federation.registry import MemberRegistry
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService
from gateway.store.base import StoreTransaction

DETAIL_URL = SD + "yl-stock-alert"


@dataclass(frozen=True)
class Finding:
    """One reason for an alert, as evaluation finds it."""

    kind: str  # BELOW_LINE | EXPIRING
    member: str
    drug: str
    stock: float
    line: float | None = None
    lot: str = ""
    expiry: str = ""

    @property
    def key(self) -> str:
        parts = [self.kind, self.member, self.drug] + ([self.lot] if self.kind == EXPIRING else [])
        return "|".join(parts)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "member": self.member, "drug": self.drug, "stock": self.stock}
        if self.kind == BELOW_LINE:
            out["line"] = self.line
        else:
            out.update(lot=self.lot, expiry=self.expiry)
        return out


def evaluate(
    ledger: Ledger,
    lines: AlertLines,
    registry: MemberRegistry,
    today: date,
    window_days: int,
    members: Iterable[str] | None = None,
) -> list[Finding]:
    """Every alert the stock calls for (pure). A (member, drug) is checked when the member has
    reported that drug, or has a line of its own for it: a line is a minimum for what a member
    keeps, not an order to keep every drug of its tier. Below means strictly below; a batch
    expires "soon" when its expiry is on or before ``today + window_days``."""
    with without_cyclic_gc():
        return _evaluate(ledger, lines, registry, today, window_days, members)


def _evaluate(
    ledger: Ledger,
    lines: AlertLines,
    registry: MemberRegistry,
    today: date,
    window_days: int,
    members: Iterable[str] | None,
) -> list[Finding]:
    wanted = set(members) if members is not None else None
    horizon = (today + timedelta(days=window_days)).isoformat()
    findings: list[Finding] = []
    unreported: dict[str, Batch] = {}  # a member's own line for a drug it never reported
    own = [((scope, drug), unreported) for scope, drug in lines.rows if (scope, drug) not in ledger.batches]
    pairs: Iterable[tuple[tuple[str, str], dict[str, Batch]]] = itertools.chain(ledger.batches.items(), own)
    for (member_code, drug), lots in pairs:
        if wanted is not None and member_code not in wanted:
            continue
        member = registry.get(member_code)
        if member is None:
            continue
        stock = float(sum(b.quantity for b in lots.values()))
        line = lines.line_for(member, drug)
        if line is not None and stock < line:
            findings.append(Finding(BELOW_LINE, member_code, drug, stock, line))
        for batch in lots.values():
            if batch.quantity > 0 and batch.expiry and batch.expiry <= horizon:
                findings.append(
                    Finding(EXPIRING, member_code, drug, batch.quantity, lot=batch.lot, expiry=batch.expiry)
                )
    findings.sort(key=lambda f: (f.member, f.drug, f.kind, f.lot))
    return findings


def _escaped(value: str) -> str:
    """A search value with FHIR's special characters escaped (``\\ , $ |``)."""
    for ch in ("\\", ",", "$", "|"):
        value = value.replace(ch, "\\" + ch)
    return value


def _key_of(data: dict[str, Any]) -> str | None:
    for ident in data.get("identifier") or ():
        if ident.get("system") == ALERT_KEY_SYSTEM:
            value = ident.get("value")
            return value if isinstance(value, str) else None
    return None


def _alert(finding: Finding, world: SupplyWorld, when: str) -> dict[str, Any]:
    member = world.registry.get(finding.member)
    name = world.catalogue.name(finding.drug)
    if finding.kind == BELOW_LINE:
        en = f"stock {finding.stock:g} of {name} is below its alert line {finding.line:g}"
        zh = f"{name}库存 {finding.stock:g} 低于警戒线 {finding.line:g}"
        code = {"system": STOCK_ALERT_SYSTEM, "code": BELOW_LINE, "display": "库存低于警戒线"}
    else:
        en = f"batch {finding.lot} of {name} ({finding.stock:g}) expires on {finding.expiry}"
        zh = f"{name}批号 {finding.lot}（{finding.stock:g}）将于 {finding.expiry} 到期"
        code = {"system": STOCK_ALERT_SYSTEM, "code": EXPIRING, "display": "近效期批次"}
    detail: list[dict[str, Any]] = [
        {"url": "drug", "valueString": finding.drug},
        {"url": "stock", "valueDecimal": finding.stock},
    ]
    if finding.line is not None:
        detail.append({"url": "line", "valueDecimal": finding.line})
    if finding.lot:
        detail.append({"url": "lot", "valueString": finding.lot})
    if finding.expiry:
        detail.append({"url": "expiry", "valueDate": finding.expiry})
    alert: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        # owned by the member whose stock it is: its clients see their own alerts (docs/security.md)
        "meta": {"tag": [{"system": MEMBER_SYSTEM, "code": finding.member}]},
        "extension": [{"url": DETAIL_URL, "extension": detail}],
        "identifier": [{"system": ALERT_KEY_SYSTEM, "value": finding.key}],
        "status": "final",
        "category": [{"coding": [code]}],
        "code": {"coding": [code], "text": zh},
        "severity": "high" if finding.kind == BELOW_LINE else "moderate",
        "subject": {"reference": member.reference if member else f"Organization/{finding.member}"},
        "identifiedDateTime": when,
        "detail": f"{en} / {zh}",
    }
    mid = world.catalogue.id_by_code.get(finding.drug)
    if mid:
        alert["implicated"] = [{"reference": f"Medication/{mid}"}]
    return alert


@dataclass
class Reconciled:
    raised: list[str]
    closed: list[str]
    open: list[dict[str, Any]]


def open_alerts(service: FhirService, ctx: RequestContext) -> list[dict[str, Any]]:
    return [
        a
        for a in fetch_all(service, "DetectedIssue", [("status", "final"), ("code", f"{STOCK_ALERT_SYSTEM}|")], ctx)
        if _key_of(a)
    ]


def reconcile(
    service: FhirService,
    ctx: RequestContext,
    world: SupplyWorld,
    findings: list[Finding],
    when: str,
    members: Iterable[str] | None = None,
) -> Reconciled:
    """Raise an alert for each new finding, close each open alert whose finding is gone (only
    for ``members`` when given), in one transaction."""
    scope = set(members) if members is not None else None
    current = open_alerts(service, ctx)
    open_by_key = {_key_of(a): a for a in current}
    wanted = {f.key: f for f in findings}
    to_raise = [f for k, f in wanted.items() if k not in open_by_key]
    to_close = [
        a for k, a in open_by_key.items() if k not in wanted and (scope is None or (k or "").split("|")[1] in scope)
    ]
    if not to_raise and not to_close:
        return Reconciled([], [], current)

    def write(tx: StoreTransaction) -> Reconciled:
        raised, closed = [], []
        for f in to_raise:
            body = ResourceText.parse(orjson.dumps(_alert(f, world, when)))
            # conditional: an evaluation running at the same time (another report's commit) may
            # have raised the same alert since we looked; the store serialises the criteria
            criteria = "identifier=" + quote(f"{ALERT_KEY_SYSTEM}|{_escaped(f.key)}", safe="") + "&status=final"
            result = service.writer.create(tx, ctx, "DetectedIssue", body, if_none_exist=criteria)
            if result.created:
                raised.append(result.stored.res_id)
        for a in to_close:
            tags = (a.get("meta") or {}).get("tag")  # the owning member stays the owner
            a = {k: v for k, v in a.items() if k != "meta"} | ({"meta": {"tag": tags}} if tags else {})
            a["status"] = "mitigated"
            a["mitigation"] = [
                {
                    "action": {"text": "stock recovered / 库存已恢复"},
                    "date": when,
                    "note": [{"text": "closed by the stock evaluation / 库存评估自动关闭"}],
                }
            ]
            service.writer.update(tx, ctx, "DetectedIssue", str(a["id"]), ResourceText.parse(orjson.dumps(a)))
            closed.append(str(a["id"]))
        return Reconciled(raised, closed, [])

    result = service.write(ctx, write)
    result.open = open_alerts(service, ctx)
    return result
