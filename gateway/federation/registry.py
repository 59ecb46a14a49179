"""The member registry: which institutions make up the alliance, their tier, their parent and
their insurance code, read from the Organization resources the gateway stores.

One registry for every feature that speaks of members (federation, formulary linkage, supply,
security): a member's **code** is its Organization's identifier in :data:`MEMBER_SYSTEM` (the
code a member client is bound to and an HL7 v2 MSH-4 carries), or, for an Organization
registered without one, its resource id. The registry is a value built from resources, so
rules and reports work on a snapshot and tests build one from plain dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.federation.endpoints import MemberEndpoint, endpoint_from_resource
from gateway.fhir.elements import identifier_value
from gateway.hooks import RequestContext
from gateway.security.policy import MEMBER_SYSTEM
from gateway.service.fhir_service import FhirService

FIXMEDINS_SYSTEM = "http://yaolian.org/fhir/sid/fixmedins-code"
TIER_SYSTEM = "http://yaolian.org/fhir/CodeSystem/alliance-tier"
TIERS = ("county", "township", "village")
#: Each tier's parent tier (linkage runs village -> township -> county).
PARENT_TIER = {"village": "township", "township": "county"}


@dataclass(frozen=True)
class Member:
    """One alliance member as the registry knows it."""

    code: str
    organization_id: str
    name: str
    tier: str | None
    parent: str | None
    """The parent member's code (``Organization.partOf`` resolved), None for the county."""
    insurance_code: str | None
    active: bool = True
    endpoints: tuple[str, ...] = ()
    """``Endpoint/id`` references of ``Organization.endpoint``."""
    reached_by: tuple[MemberEndpoint, ...] = ()
    """The Endpoints (of :mod:`gateway.federation.endpoints`) those references resolve to."""

    @property
    def reference(self) -> str:
        return f"Organization/{self.organization_id}"

    @property
    def live_endpoint(self) -> MemberEndpoint | None:
        """How this member is asked live for its records: its FHIR server or its database view
        (None: pushed or unreachable)."""
        if not self.active:
            return None
        return next((e for e in self.reached_by if e.live), None)


def _tier(org: Mapping[str, Any]) -> str | None:
    for concept in org.get("type") or ():
        for coding in (concept or {}).get("coding") or ():
            if coding.get("system") == TIER_SYSTEM and coding.get("code") in TIERS:
                return str(coding["code"])
    return None


def _reference(value: Any) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) else None


def member_code(org: Mapping[str, Any]) -> str:
    """The code a member is known by (its :data:`MEMBER_SYSTEM` identifier, else its id)."""
    return identifier_value(org, MEMBER_SYSTEM) or str(org.get("id") or "")


@dataclass(frozen=True)
class MemberRegistry:
    """The members by code, with the tree of parents and children."""

    members: Mapping[str, Member] = field(default_factory=dict)

    @classmethod
    def from_organizations(
        cls, organizations: Iterable[Mapping[str, Any]], endpoints: Iterable[Mapping[str, Any]] = ()
    ) -> MemberRegistry:
        """Members of the Organizations given (those without a tier are not alliance members:
        suppliers, insurers, the health commission), each with the ``endpoints`` it names in
        ``Organization.endpoint`` (or that name it as ``managingOrganization``)."""
        orgs = [o for o in organizations if _tier(o) is not None and o.get("id")]
        endpoint_by_ref: dict[str, MemberEndpoint] = {}
        managed: dict[str, list[str]] = {}
        for resource in endpoints:
            endpoint = endpoint_from_resource(resource)
            if endpoint is None:
                continue
            endpoint_by_ref[endpoint.reference] = endpoint
            manager = _reference(resource.get("managingOrganization"))
            if manager:
                managed.setdefault(manager, []).append(endpoint.reference)
        code_by_ref = {f"Organization/{o['id']}": member_code(o) for o in orgs}
        for o in orgs:  # partOf may name the parent by its member identifier too
            code_by_ref.setdefault(f"identifier:{member_code(o)}", member_code(o))
        members: dict[str, Member] = {}
        for o in orgs:
            parent_ref = o.get("partOf")
            parent = code_by_ref.get(_reference(parent_ref) or "")
            if parent is None and isinstance(parent_ref, dict):
                ident = parent_ref.get("identifier") or {}
                if ident.get("system") == MEMBER_SYSTEM:
                    parent = code_by_ref.get(f"identifier:{ident.get('value')}")
            code = member_code(o)
            refs = tuple(r for r in (_reference(e) for e in o.get("endpoint") or ()) if r)
            linked = list(dict.fromkeys([*refs, *managed.get(f"Organization/{o['id']}", ())]))
            members[code] = Member(
                code=code,
                organization_id=str(o["id"]),
                name=str(o.get("name") or code),
                tier=_tier(o),
                parent=parent,
                insurance_code=identifier_value(o, FIXMEDINS_SYSTEM),
                active=o.get("active") is not False,
                endpoints=refs,
                reached_by=tuple(endpoint_by_ref[r] for r in linked if r in endpoint_by_ref),
            )
        return cls(members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members.values())

    def __len__(self) -> int:
        return len(self.members)

    def get(self, code: str) -> Member | None:
        return self.members.get(code)

    def by_organization(self, reference: str) -> Member | None:
        """The member an ``Organization/id`` reference names."""
        org_id = reference.removeprefix("Organization/")
        return next((m for m in self.members.values() if m.organization_id == org_id), None)

    def live(self) -> list[Member]:
        """Members asked live at query time, in code order."""
        return sorted((m for m in self.members.values() if m.live_endpoint is not None), key=lambda m: m.code)

    def children(self, code: str) -> list[Member]:
        return [m for m in self.members.values() if m.parent == code]

    def of_tier(self, tier: str) -> list[Member]:
        return [m for m in self.members.values() if m.tier == tier]

    def county_of(self, code: str) -> Member | None:
        """The county member above ``code`` (itself when it is one); None when the chain breaks."""
        seen: set[str] = set()
        member = self.members.get(code)
        while member is not None and member.tier != "county" and member.code not in seen:
            seen.add(member.code)
            member = self.members.get(member.parent or "")
        return member if member is not None and member.tier == "county" else None


def _read_all(service: FhirService, ctx: RequestContext, resource_type: str, page_size: int) -> list[dict[str, Any]]:
    found_all: list[dict[str, Any]] = []
    offset = 0
    while True:
        found = service.find(
            resource_type, [("_count", str(page_size)), ("_offset", str(offset)), ("_sort", "_id")], ctx
        )
        found_all.extend(orjson.loads(r.body) for r in found if r.body)
        if len(found) < page_size:
            return found_all
        offset += len(found)


def load_registry(
    service: FhirService, ctx: RequestContext, page_size: int = 500, *, endpoints: bool = False
) -> MemberRegistry:
    """The registry as the caller may see it, read through the service (so access control and
    audit see the read like any other). ``endpoints``: also how members are reached (federation,
    ``yaolian members``); the formulary, review and supply need only codes, tiers and parents,
    and their callers may not be allowed to read Endpoints."""
    organizations = _read_all(service, ctx, "Organization", page_size)
    found_endpoints = _read_all(service, ctx, "Endpoint", page_size) if endpoints else []
    return MemberRegistry.from_organizations(organizations, found_endpoints)
