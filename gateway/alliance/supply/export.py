"""The approved plan in the form a distribution company takes: one row per supplier, destination
member and drug, with quantities, as CSV or XLSX (openpyxl)."""

from __future__ import annotations

import csv
import io
from typing import Any

from gateway.alliance.supply.plans import Aggregate
from gateway.alliance.supply.reading import SupplyWorld

COLUMNS = (
    "period",
    "supplier",
    "deliver_to_member",
    "deliver_to_name",
    "deliver_to_location",
    "nhsa_code",
    "drug_name",
    "quantity",
    "unit",
    "plan_line",
)


def distribution_rows(plan: Aggregate, world: SupplyWorld) -> list[list[Any]]:
    """Approved lines only: what the distributors are asked to deliver."""
    rows: list[list[Any]] = []
    for line in sorted(plan.lines, key=lambda x: (x.supplier, x.member, x.drug, x.id)):
        if not line.approved:
            continue
        member = world.registry.get(line.member)
        rows.append(
            [
                plan.period,
                line.supplier,
                line.member,
                member.name if member else line.member,
                (world.pharmacy_of(member) if member else None) or "",
                line.drug,
                world.catalogue.name(line.drug),
                line.quantity,
                line.unit,
                f"SupplyRequest/{line.id}",
            ]
        )
    return rows


def as_csv(plan: Aggregate, world: SupplyWorld) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in distribution_rows(plan, world):
        writer.writerow([f"{v:g}" if isinstance(v, float) else v for v in row])
    return out.getvalue()


def as_xlsx(plan: Aggregate, world: SupplyWorld) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = f"采购计划 {plan.period}"
    sheet.append(list(COLUMNS))
    for row in distribution_rows(plan, world):
        sheet.append(row)
    totals = book.create_sheet("按药品汇总 by drug")
    totals.append(["county", "nhsa_code", "drug_name", "quantity", "unit", "lines"])
    for (county, drug), total in sorted(plan.by_drug().items()):
        totals.append([county, drug, world.catalogue.name(drug), total.quantity, total.unit, len(total.lines)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
