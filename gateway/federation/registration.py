"""Registering a member: its Organization and, if given, its Endpoint, written through the
service in one write (so validation, access control, hooks and audit see it like a REST PUT).

``yaolian members add`` and any FHIR client (``PUT Organization/..``, ``PUT Endpoint/..``)
produce the same resources; the registry is read back from them (:mod:`.registry`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.sqlview.view import MAPPING_NAME
from gateway.errors import BadRequest, NotFound
from gateway.federation.endpoints import FHIR_KINDS, KINDS, SQLVIEW_ADDRESS, SmartCredentials, endpoint_resource
from gateway.federation.registry import FIXMEDINS_SYSTEM, TIER_SYSTEM, TIERS, load_registry
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.security.policy import MEMBER_SYSTEM
from gateway.service.fhir_service import FhirService
from gateway.store.base import StoreTransaction

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,60}$")
#: A view member's connection name (``yaolian-sqlview:NAME``).
_CONNECTION = re.compile(r"^[A-Za-z0-9_.\-]{1,60}$")
_TIER_ZH = {"county": "县级", "township": "乡镇", "village": "村"}


@dataclass(frozen=True)
class Registration:
    """What ``members add`` is asked to register."""

    code: str
    name: str
    tier: str
    parent: str | None = None
    insurance_code: str | None = None
    endpoint: str | None = None
    kind: str | None = None
    smart: SmartCredentials | None = None
    mapping: str | None = None
    """A ``sql-view`` member's mapping (``mappings/sqlview/<mapping>.yaml``)."""


def _refuse(reason: str) -> BadRequest:
    return BadRequest("YL-1012", reason=reason)


def organization_resource(
    reg: Registration, org_id: str, parent_id: str | None, endpoint_id: str | None
) -> dict[str, Any]:
    identifiers = [{"system": MEMBER_SYSTEM, "value": reg.code}]
    if reg.insurance_code:
        identifiers.append({"system": FIXMEDINS_SYSTEM, "value": reg.insurance_code})
    org: dict[str, Any] = {
        "resourceType": "Organization",
        "id": org_id,
        "identifier": identifiers,
        "active": True,
        "type": [{"coding": [{"system": TIER_SYSTEM, "code": reg.tier, "display": _TIER_ZH[reg.tier]}]}],
        "name": reg.name,
    }
    if parent_id:
        org["partOf"] = {"reference": f"Organization/{parent_id}"}
    if endpoint_id:
        org["endpoint"] = [{"reference": f"Endpoint/{endpoint_id}"}]
    return org


def _check_view(reg: Registration) -> None:
    """A view member is registered by the *name* of a connection the gateway's settings hold,
    never by its connection string (Endpoints are readable by every member's client)."""
    address = reg.endpoint or ""
    if not address.startswith(SQLVIEW_ADDRESS) or not _CONNECTION.match(address.removeprefix(SQLVIEW_ADDRESS)):
        raise _refuse(
            f"a sql-view member's endpoint is {SQLVIEW_ADDRESS}NAME, NAME a connection of YAOLIAN_FEDERATION_VIEWS "
            "(the connection string itself is never registered)"
        )
    if reg.mapping is None or not MAPPING_NAME.match(reg.mapping):
        raise _refuse("a sql-view member needs --mapping NAME (a file of mappings/sqlview/, e.g. generic-his)")


def register_member(service: FhirService, ctx: RequestContext, reg: Registration) -> tuple[str, str | None]:
    """Create or update the member's Organization (and Endpoint); ``(Organization id, Endpoint
    id or None)``. An existing member keeps its Organization id and its other endpoints."""
    if reg.tier not in TIERS:
        raise _refuse(f"tier must be one of {', '.join(TIERS)}, not {reg.tier!r}")
    if not reg.code.strip():
        raise _refuse("the member code is empty")
    if (reg.endpoint is None) != (reg.kind is None) and reg.kind != "pushed":
        raise _refuse("--endpoint and --kind go together")
    if reg.kind is not None and reg.kind not in KINDS:
        raise _refuse(f"kind must be one of {', '.join(KINDS)}, not {reg.kind!r}")
    if reg.smart is not None and reg.kind not in FHIR_KINDS:
        raise _refuse("SMART credentials are for live members (fhir-r5, fhir-r4)")
    if reg.kind == "sql-view":
        _check_view(reg)
    elif reg.mapping is not None:
        raise _refuse("--mapping is for database-view members (--kind sql-view)")
    registry = load_registry(service, ctx, endpoints=True)
    existing = registry.get(reg.code)
    parent_id = None
    if reg.parent:
        parent = registry.get(reg.parent)
        if parent is None:
            raise NotFound("YL-1013", member=reg.parent)
        parent_id = parent.organization_id
    org_id = existing.organization_id if existing else (reg.code if _ID.match(reg.code) else None)
    if org_id is None:
        raise _refuse(f"member code {reg.code!r} is not usable as a resource id; use A-Z a-z 0-9 - .")
    endpoint_id = None
    endpoint_body = None
    if reg.kind is not None:
        endpoint_id = f"{org_id}-{reg.kind}"[:64]
        address = reg.endpoint or f"urn:yaolian:pushed:{reg.code}"
        endpoint_body = endpoint_resource(
            endpoint_id,
            reg.kind,
            address,
            name=reg.name,
            organization=f"Organization/{org_id}",
            smart=reg.smart,
            mapping=reg.mapping,
        )
    org = organization_resource(reg, org_id, parent_id, None)
    kept = [r for r in (existing.endpoints if existing else ()) if r != f"Endpoint/{endpoint_id}"]
    refs = [*kept, *([f"Endpoint/{endpoint_id}"] if endpoint_id else [])]
    if refs:
        org["endpoint"] = [{"reference": r} for r in refs]

    def write(tx: StoreTransaction) -> None:
        if endpoint_body is not None and endpoint_id is not None:
            service.writer.update(tx, ctx, "Endpoint", endpoint_id, ResourceText.parse(orjson.dumps(endpoint_body)))
        service.writer.update(tx, ctx, "Organization", org_id, ResourceText.parse(orjson.dumps(org)))

    service.write(ctx, write)
    return org_id, endpoint_id
