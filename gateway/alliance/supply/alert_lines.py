"""Alert lines (库存警戒线) as data: one line per drug per tier, with per-member overrides (POL-15).

The lines are a CSV (``tier_or_member,nhsa_code,line``); the defaults the gateway ships cover
emergency/rescue and chronic-disease drugs (``mappings/supply/alert-lines.csv``). An import is
stored as one ``Basic`` resource (:data:`LINES_ID`, written through the service, so it has a
history and an audit trail) and replaces the rows of the same key; the shipped defaults apply
under whatever was imported. A member's line for a drug is its own override, else its tier's.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

import orjson

from gateway.alliance.supply.system import system_context
from gateway.alliance.supply.terms import CS, SD
from gateway.errors import BadRequest, Issue, NotFound, issue
from gateway.federation.registry import TIERS, Member, MemberRegistry
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService
from gateway.store.base import StoreTransaction

LINES_ID = "supply-alert-lines"
LINE_URL = SD + "yl-alert-line"
COLUMNS = ("tier_or_member", "nhsa_code", "line")
_NHSA = re.compile(r"^[XZ][A-Z0-9]{22}$")


@dataclass
class AlertLines:
    """Lines by (tier or member code, drug)."""

    rows: dict[tuple[str, str], float] = field(default_factory=dict)

    def line_for(self, member: Member, drug: str) -> float | None:
        own = self.rows.get((member.code, drug))
        if own is not None:
            return own
        return self.rows.get((member.tier or "", drug))

    def applies_to(self, member: Member) -> set[str]:
        """Drugs with a line for this member (its own or its tier's)."""
        return {d for (scope, d) in self.rows if scope in (member.code, member.tier)}

    def merged(self, other: AlertLines) -> AlertLines:
        return AlertLines({**self.rows, **other.rows})

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for (scope, drug), line in sorted(self.rows.items()):
            writer.writerow([scope, drug, _number(line)])
        return out.getvalue()


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def parse_csv(text: str, registry: MemberRegistry | None = None, source: str = "alert-lines.csv") -> AlertLines:
    """The lines of a CSV; every bad cell is reported with its line and column (YL-1200/1201),
    all of them at once, and nothing is taken from a file with any."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header[:3]) != COLUMNS:
        raise BadRequest("YL-1200", where=f"{source} line 1", found=",".join(header or []))
    problems: list[Issue] = []
    rows: dict[tuple[str, str], float] = {}
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = [c.strip() for c in row] + [""] * 3
        scope, drug, line = cells[:3]

        def bad(column: int, value: str, reason: str, *, _n: int = number) -> None:
            where = f"{source} line {_n} column {column} ({COLUMNS[column - 1]})"
            problems.append(
                issue(
                    "YL-1201", where=where, column=COLUMNS[column - 1], value=value, reason=reason, expression=[where]
                )
            )

        if not scope:
            bad(1, scope, "a tier (county, township, village) or a member code is needed")
        elif scope not in TIERS and registry is not None and registry.get(scope) is None:
            bad(1, scope, "neither a tier nor the code of a known member")
        if not _NHSA.match(drug):
            bad(2, drug, "a national insurance drug code is 23 characters, X or Z then A-Z/0-9")
        try:
            value = Decimal(line)
            if not value.is_finite() or value < 0:
                raise InvalidOperation
        except InvalidOperation:
            bad(3, line, "a number of units, zero or more")
            continue
        rows[(scope, drug)] = float(value)
    if problems:
        raise BadRequest(problems)
    return AlertLines(rows)


def default_lines() -> AlertLines:
    """The shipped defaults (emergency/rescue and chronic-disease drugs)."""
    text = resources.files("mappings").joinpath("supply", "alert-lines.csv").read_text(encoding="utf-8")
    return parse_csv(text, None, "mappings/supply/alert-lines.csv")


def _resource(lines: AlertLines) -> dict[str, Any]:
    return {
        "resourceType": "Basic",
        "id": LINES_ID,
        "code": {"coding": [{"system": CS + "supply-data", "code": "alert-lines", "display": "库存警戒线"}]},
        "extension": [
            {
                "url": LINE_URL,
                "extension": [
                    {"url": "scope", "valueString": scope},
                    {"url": "drug", "valueString": drug},
                    {"url": "line", "valueDecimal": line},
                ],
            }
            for (scope, drug), line in sorted(lines.rows.items())
        ],
    }


def _from_resource(data: Mapping[str, Any]) -> AlertLines:
    rows: dict[tuple[str, str], float] = {}
    for ext in data.get("extension") or ():
        if ext.get("url") != LINE_URL:
            continue
        parts = {e.get("url"): e for e in ext.get("extension") or ()}
        scope = (parts.get("scope") or {}).get("valueString")
        drug = (parts.get("drug") or {}).get("valueString")
        line = (parts.get("line") or {}).get("valueDecimal")
        if isinstance(scope, str) and isinstance(drug, str) and isinstance(line, int | float):
            rows[(scope, drug)] = float(line)
    return AlertLines(rows)


def stored_lines(service: FhirService, ctx: RequestContext) -> AlertLines:
    """What was imported (empty when nothing was); read as the gateway (configuration every
    role's supply work needs, the county pharmacy's balancing included)."""
    try:
        stored = service.read("Basic", LINES_ID, system_context(ctx))
    except NotFound:
        return AlertLines()
    return _from_resource(orjson.loads(stored.body or b"{}"))


def current_lines(service: FhirService, ctx: RequestContext) -> AlertLines:
    """The lines in force: shipped defaults, then what was imported over them."""
    return default_lines().merged(stored_lines(service, ctx))


def import_lines(service: FhirService, ctx: RequestContext, lines: AlertLines, *, replace: bool = False) -> AlertLines:
    """Store ``lines`` over the imported ones (or instead of them with ``replace``)."""
    merged = lines if replace else stored_lines(service, ctx).merged(lines)
    body = ResourceText.parse(orjson.dumps(_resource(merged)))

    def write(tx: StoreTransaction) -> None:
        service.writer.update(tx, ctx, "Basic", LINES_ID, body)

    service.write(ctx, write)
    return merged


def lines_from_rows(rows: Iterable[tuple[str, str, float]]) -> AlertLines:
    return AlertLines({(scope, drug): float(line) for scope, drug, line in rows})
