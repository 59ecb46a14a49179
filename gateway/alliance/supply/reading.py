"""Reads of the supply features, all through the service (access control and audit see them).

:func:`fetch_all` pages a search to its end; :class:`SupplyWorld` is what most supply work
needs at once: the member registry (THE registry of :mod:`gateway.federation.registry`), the
drug catalogue and the pharmacy locations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.alliance.supply.terms import Catalogue, Places, reference_of
from gateway.federation.registry import Member, MemberRegistry, load_registry
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService

PAGE = 500


def fetch_all(
    service: FhirService, resource_type: str, params: list[tuple[str, str]], ctx: RequestContext
) -> list[dict[str, Any]]:
    """Every match of a search, page by page (id order, so a write between pages shifts nothing)."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        query = [*params, ("_count", str(PAGE)), ("_offset", str(offset)), ("_sort", "_id")]
        found = service.find(resource_type, query, ctx)
        out.extend(orjson.loads(r.body) for r in found if r.body)
        if len(found) < PAGE:
            return out
        offset += len(found)


@dataclass
class SupplyWorld:
    """Members, drugs and pharmacies as the caller may see them."""

    registry: MemberRegistry
    catalogue: Catalogue
    places: Places
    by_organization: dict[str, Member] = field(default_factory=dict)
    """``Organization/id`` -> member (the registry's own look-up scans; a province reads 10k reports)."""

    def __post_init__(self) -> None:
        if not self.by_organization:
            self.by_organization.update((m.reference, m) for m in self.registry)

    @classmethod
    def load(cls, service: FhirService, ctx: RequestContext) -> SupplyWorld:
        catalogue = Catalogue()
        for medication in fetch_all(service, "Medication", [], ctx):
            catalogue.add(medication)
        places = Places()
        for location in fetch_all(service, "Location", [], ctx):
            places.add(location)
        return cls(load_registry(service, ctx), catalogue, places)

    def member_of(self, value: Any) -> Member | None:
        """The member a Reference names: ``Organization/id``, a member identifier, or a pharmacy
        ``Location`` (by its managing organization)."""
        if not isinstance(value, Mapping):
            return None
        ref = reference_of(value)
        if ref and ref.startswith("Location/"):
            ref = self.places.org_by_location.get(ref)
        if ref and ref.startswith("Organization/"):
            return self.by_organization.get(ref)
        ident = value.get("identifier")
        if isinstance(ident, Mapping) and isinstance(ident.get("value"), str):
            return self.registry.get(str(ident["value"]))
        return None

    def pharmacy_of(self, member: Member) -> str | None:
        return self.places.location_by_org.get(member.reference)

    def central_pharmacy(self) -> Member | None:
        """The county member (its pharmacy is the alliance's central store, POL-25)."""
        counties = self.registry.of_tier("county")
        return counties[0] if counties else None
