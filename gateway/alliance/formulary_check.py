"""The linkage check as the CLI and ``$formulary-check`` run it: the registry, catalogue, lists
and a year of prescriptions, all read through the service."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from gateway.alliance.catalogue import NHSA_SYSTEM, Catalogue
from gateway.alliance.linkage import LinkageFinding, LinkageSettings, check
from gateway.alliance.prescriptions import medication_codes, medication_reference
from gateway.alliance.review.facts import member_named_by
from gateway.alliance.stored import each_resource, load_catalogue, load_formularies
from gateway.federation.registry import MemberRegistry, load_registry
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings


def usage_counts(
    service: FhirService, ctx: RequestContext, catalogue: Catalogue, since: dt.date, registry: MemberRegistry
) -> Counter[tuple[str, str]]:
    """Prescriptions per (member, national drug code) written since ``since`` (POL-13)."""
    counts: Counter[tuple[str, str]] = Counter()
    for rx in each_resource(service, ctx, "MedicationRequest", [("authoredon", f"ge{since.isoformat()}")]):
        member = member_named_by(rx, registry)
        reference = medication_reference(rx)
        drug = catalogue.by_medication(reference) if reference else None
        code = drug.nhsa_code if drug else next((c for s, c in medication_codes(rx) if s == NHSA_SYSTEM), None)
        if member and code:
            counts[(member, code)] += 1
    return counts


def run_check(
    service: FhirService, ctx: RequestContext, settings: Settings, today: dt.date | None = None
) -> list[LinkageFinding]:
    today = today or dt.date.today()
    registry = load_registry(service, ctx)
    catalogue = load_catalogue(service, ctx)
    formularies = load_formularies(service, ctx)
    usage = usage_counts(service, ctx, catalogue, today - dt.timedelta(days=365), registry)
    return check(
        registry,
        catalogue,
        formularies,
        LinkageSettings(
            today=today,
            variety_average=settings.formulary_variety_average,
            alliance_essential_min=settings.formulary_alliance_essential_min,
            low_use_max=settings.formulary_low_use_max,
            adjust_days=settings.formulary_adjust_days,
        ),
        usage,
    )
