"""The catalogue and the formularies as the gateway stores them, read and written through the
service (access control, validation and audit see every resource like any other write)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.alliance.catalogue import Catalogue, Drug, from_medication, medication_id, to_medication
from gateway.alliance.catalogue_io import Sheet
from gateway.alliance.formulary import (
    ALLIANCE,
    FORMULARY_CODE,
    LIST_KIND_SYSTEM,
    Formularies,
    FormularyVersion,
    from_list,
    to_list,
)
from gateway.errors import Issue, NotFound, issue
from gateway.federation.registry import MemberRegistry
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService
from gateway.store.base import StoreTransaction

CHUNK = 500


def each_resource(
    service: FhirService, ctx: RequestContext, resource_type: str, params: list[tuple[str, str]], page: int = 1000
) -> Iterator[dict[str, Any]]:
    """Every match of a search, page by page, read through the service."""
    offset = 0
    while True:
        found = service.find(
            resource_type, [*params, ("_count", str(page)), ("_offset", str(offset)), ("_sort", "_id")], ctx
        )
        for stored in found:
            if stored.body:
                yield orjson.loads(stored.body)
        if len(found) < page:
            return
        offset += len(found)


def load_catalogue(service: FhirService, ctx: RequestContext) -> Catalogue:
    drugs = (from_medication(m) for m in each_resource(service, ctx, "Medication", []))
    return Catalogue.of(d for d in drugs if d is not None)


def load_formularies(service: FhirService, ctx: RequestContext) -> Formularies:
    lists = each_resource(service, ctx, "List", [("code", f"{LIST_KIND_SYSTEM}|{FORMULARY_CODE}")], page=200)
    return Formularies.of(v for v in (from_list(r) for r in lists) if v is not None)


@dataclass
class ImportReport:
    """What an import did: rows read, drugs written, the version made, and every issue."""

    rows: int = 0
    drugs_written: int = 0
    listed: int = 0
    version: str | None = None
    retired: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> int:
        """Rows refused (a row with three bad cells is one row)."""
        return len({i.where.split(",")[0] for i in self.issues if i.severity in ("error", "fatal")})

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "drugs_written": self.drugs_written,
            "listed": self.listed,
            "version": self.version,
            "retired": self.retired,
            "errors": self.errors,
            "issues": [
                {"severity": i.severity, "where": i.where, "code": i.error_code, "en": i.en, "zh": i.zh}
                for i in self.issues
            ],
        }


def _put(service: FhirService, ctx: RequestContext, tx: StoreTransaction, resource: dict[str, Any]) -> None:
    service.writer.update(tx, ctx, resource["resourceType"], resource["id"], ResourceText.of_plain_data(resource))


def save_drugs(service: FhirService, ctx: RequestContext, drugs: list[Drug]) -> int:
    """Create or update the Medication of each drug (id from its code), in chunks."""
    for start in range(0, len(drugs), CHUNK):
        chunk = [to_medication(d) for d in drugs[start : start + CHUNK]]

        def work(tx: StoreTransaction, chunk: list[dict[str, Any]] = chunk) -> None:
            for medication in chunk:
                _put(service, ctx, tx, medication)

        service.write(ctx, work)
    return len(drugs)


def import_catalogue(service: FhirService, ctx: RequestContext, sheet: Sheet) -> ImportReport:
    """``yaolian formulary import --catalogue FILE``: the drug attributes (POL-01)."""
    report = ImportReport(rows=sheet.rows, issues=list(sheet.issues))
    report.drugs_written = save_drugs(service, ctx, [d for _, d in sheet.drugs])
    return report


def import_formulary(
    service: FhirService,
    ctx: RequestContext,
    sheet: Sheet,
    *,
    member: str,
    registry: MemberRegistry,
    effective: dt.date | None = None,
    decision: str = "",
) -> ImportReport:
    """A new version of ``member``'s list from the committee's sheet; the previous current
    version is retired in the same transaction (POL-02). Rows with a drug the catalogue lacks
    add it when they carry its generic name, else are refused with their line."""
    organization = registry.get(member)
    if member != ALLIANCE and organization is None:
        raise NotFound("YL-1103", member=member)
    report = ImportReport(rows=sheet.rows, issues=list(sheet.issues))
    catalogue = load_catalogue(service, ctx)
    new_drugs: list[Drug] = []
    listed: set[str] = set()
    for line, drug in sheet.drugs:
        if catalogue.get(drug.nhsa_code) is None:
            if not drug.generic_name:
                report.issues.append(
                    issue(
                        "YL-1102",
                        expression=[f"line {line}, column nhsa_code"],
                        line=line,
                        column="nhsa_code",
                        drug=drug.nhsa_code,
                    )
                )
                continue
            new_drugs.append(drug)
        listed.add(drug.nhsa_code)
    report.drugs_written = save_drugs(service, ctx, new_drugs)
    catalogue = Catalogue.of([*catalogue, *new_drugs])
    day = (effective or dt.date.today()).isoformat()
    version = FormularyVersion(member, day, frozenset(listed), decision)
    previous = [
        v for v in load_formularies(service, ctx).history(member) if v.status == "current" and v.id != version.id
    ]
    org_id = organization.organization_id if organization else None

    def work(tx: StoreTransaction) -> None:
        for old in previous:
            retired = FormularyVersion(old.member, old.effective, old.drugs, old.decision, "retired", old.id)
            _put(service, ctx, tx, to_list(retired, catalogue, org_id))
        _put(service, ctx, tx, to_list(version, catalogue, org_id))

    service.write(ctx, work)
    report.listed = len(listed)
    report.version = version.id
    report.retired = [v.id for v in previous]
    return report


def drug_reference(code: str, catalogue: Catalogue) -> str:
    drug = catalogue.get(code)
    return f"Medication/{drug.id if drug else medication_id(code)}"
