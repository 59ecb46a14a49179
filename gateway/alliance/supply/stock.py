"""Current stock per member, drug and batch, from InventoryReport snapshots and differences.

A ``snapshot`` report is a count: for every drug it lists at a member, it replaces what was
known of that drug there (all batches) from its counting time on. A ``difference`` report adds
(or, negative, takes away) quantities per batch. Accepted deliveries and approved transfers
are themselves written as difference reports (:mod:`gateway.alliance.supply.deliveries`,
:mod:`gateway.alliance.supply.balance`), so stock has exactly one source: the reports the store
holds. Reports apply in order of counting time (then of id, for a stable tie-break).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from gateway.alliance.supply.bulk import without_cyclic_gc
from gateway.alliance.supply.reading import SupplyWorld, fetch_all
from gateway.alliance.supply.terms import EXPIRY_URL, LOT_URL, TRACE_URL, extension_value, reference_of
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService


class StockEntry(NamedTuple):
    """One line of one report, reduced to what the ledger needs."""

    report: str  # report id: lines of one report apply together
    at: str  # counting time (ISO 8601; sorts as text)
    snapshot: bool
    member: str
    drug: str
    lot: str
    expiry: str  # YYYY-MM-DD or ""
    quantity: float


@dataclass
class Batch:
    lot: str
    expiry: str
    quantity: float


@dataclass
class Ledger:
    """Stock by (member, drug) -> lot -> :class:`Batch`."""

    batches: dict[tuple[str, str], dict[str, Batch]] = field(default_factory=dict)
    latest: str = ""
    """The day of the latest count or movement (YYYY-MM-DD): what "today" is for the stock."""

    def as_of(self) -> date:
        """The day the stock is as of: its latest count, else the calendar's today. Alerts and
        balancing default to it, so a month replayed later is judged on its own dates (a batch
        is not "expired" because the replay runs a year on)."""
        try:
            return date.fromisoformat(self.latest)
        except ValueError:
            return datetime.now(UTC).date()

    def total(self, member: str, drug: str) -> float:
        return sum(b.quantity for b in self.batches.get((member, drug), {}).values())

    def keys(self) -> Iterator[tuple[str, str]]:
        return iter(self.batches)

    def rows(self) -> Iterator[tuple[str, str, Batch]]:
        for (member, drug), lots in self.batches.items():
            for batch in lots.values():
                yield member, drug, batch

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"member": m, "drug": d, "lot": b.lot, "expiry": b.expiry or None, "quantity": b.quantity}
            for m, d, b in sorted(self.rows(), key=lambda r: (r[0], r[1], r[2].expiry, r[2].lot))
        ]


def build_ledger(entries: Iterable[StockEntry]) -> Ledger:
    """Apply report lines in counting order (pure: the benchmark and tests call it directly)."""
    with without_cyclic_gc():
        return _build(entries)


def _build(entries: Iterable[StockEntry]) -> Ledger:
    # Lines are grouped per (member, drug) and only a group with several lines is sorted: no
    # sort over the whole province, so the work grows with the rows (benchmarks/bench_stock.py).
    groups: dict[tuple[str, str], StockEntry | list[StockEntry]] = {}
    for e in entries:
        key = (e.member, e.drug)
        seen = groups.get(key)
        if seen is None:
            groups[key] = e  # most drugs have one line per member: no list for them
        elif isinstance(seen, list):
            seen.append(e)
        else:
            groups[key] = [seen, e]
    ledger = Ledger()
    batches = ledger.batches
    latest = ""
    for key, found in groups.items():
        if not isinstance(found, list):
            latest = max(latest, found.at[:10])
            batches[key] = {} if found.quantity == 0 else {found.lot: Batch(found.lot, found.expiry, found.quantity)}
            continue
        group = sorted(found, key=lambda e: (e.at, e.report))
        latest = max(latest, group[-1].at[:10])
        lots: dict[str, Batch] = {}
        counted: str | None = None  # the snapshot report that last reset this drug here
        for e in group:
            if e.snapshot:
                if e.report != counted:
                    counted = e.report
                    lots.clear()
                lots[e.lot] = Batch(e.lot, e.expiry, e.quantity)
                continue
            counted = None
            batch = lots.get(e.lot)
            if batch is None:
                lots[e.lot] = Batch(e.lot, e.expiry, e.quantity)
            else:
                batch.quantity += e.quantity
                batch.expiry = batch.expiry or e.expiry
        for lot in [lot for lot, b in lots.items() if b.quantity == 0]:  # a batch counted out is gone
            del lots[lot]
        batches[key] = lots
    ledger.latest = latest
    return ledger


def entries_of(report: Mapping[str, Any], world: SupplyWorld) -> Iterator[StockEntry]:
    """The ledger lines of one InventoryReport (lines naming an unknown member or drug are skipped:
    nothing can be said of their stock)."""
    snapshot = report.get("countType") != "difference"
    report_id = str(report.get("id") or "")
    reported = str(report.get("reportedDateTime") or "")
    for listing in report.get("inventoryListing") or ():
        member = world.member_of(listing.get("location")) or world.member_of(report.get("reporter"))
        if member is None:
            continue
        at = str(listing.get("countingDateTime") or reported)
        for item in listing.get("item") or ():
            drug = world.catalogue.drug_of(item.get("item"))
            quantity = (item.get("quantity") or {}).get("value")
            if drug is None or not isinstance(quantity, int | float):
                continue
            lot = extension_value(item, LOT_URL, "valueString") or ""
            expiry = extension_value(item, EXPIRY_URL, "valueDate") or ""
            yield StockEntry(report_id, at, snapshot, member.code, drug, str(lot), str(expiry), float(quantity))


def trace_codes_of(item: Mapping[str, Any]) -> list[str]:
    out = []
    for ext in item.get("extension") or ():
        if isinstance(ext, Mapping) and ext.get("url") == TRACE_URL:
            value = (ext.get("valueIdentifier") or {}).get("value")
            if isinstance(value, str):
                out.append(value)
    return out


def load_ledger(service: FhirService, ctx: RequestContext, world: SupplyWorld, until: str | None = None) -> Ledger:
    """Stock of every member the caller may see, from the stored reports: current, or as it was
    at the start of the day ``until`` (YYYY-MM-DD; reports counted before it)."""
    reports = fetch_all(service, "InventoryReport", [("status", "active")], ctx)
    with without_cyclic_gc():
        entries = [e for r in reports for e in entries_of(r, world) if until is None or e.at[:10] < until]
    return build_ledger(entries)


def location_of(report: Mapping[str, Any]) -> list[str]:
    return [r for r in (reference_of(listing.get("location")) for listing in report.get("inventoryListing") or ()) if r]
