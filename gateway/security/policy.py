"""Who may read and write what: roles, SMART scopes and member isolation (``docs/security.md``).

The policy is a set of hooks on the service's typed pointcuts, so it sees every read and write
whichever way it came (REST, Bundle entries, ``$hl7v2``, MLLP). What a client may do is its
scopes intersected with its role (:data:`ROLE_ACCESS`); on top of that, a member client:

- writes only its own data. Every record of a member-owned type carries its owner in
  ``meta.tag`` (system :data:`MEMBER_SYSTEM`), stamped by the write path
  (:func:`owner_of`), and what a record says of its member (an Encounter's service provider, a
  dispense's performer, ...: :data:`MEMBER_CLAIMS`) must be the writer's own member;
- reads everything of its own, and other members' prescriptions, dispenses and medications only
  in the context of a patient (:data:`MUTUALLY_RECOGNISED`): a search naming the patient
  (``patient``/``subject``, or a chain on the patient's ``identifier``), what such a search
  includes, or a read of a record of a patient the member also serves. Without a patient a
  search finds only its own: the restriction is added before the query runs, so totals,
  ``_summary=count`` and paging links count only what it may see;
- never learns that a record it may not see exists: a read answers the 404 of a missing one.

Shared master data (:data:`SHARED_TYPES`: the patient index, practitioners, the member
registry) is readable by every member client. Conformance resources (profiles, terminology,
OperationDefinitions: :data:`gateway.service.served.DEFINITION_TYPES`) are public: every
authenticated client may read and search them whatever its role and scopes, as anyone may read
``/fhir/metadata`` that names them; writing them stays with the roles that may write the type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import Forbidden, NotFound
from gateway.hooks import Hidden, HistoryPage, Pointcut, RequestContext, SearchResults
from gateway.principal import Principal, Role
from gateway.search.query import Criterion, SearchQuery, parse_criterion, parse_search
from gateway.service.fhir_service import FhirService
from gateway.service.served import DEFINITION_TYPES
from gateway.store.base import Store, StoredResource

MEMBER_SYSTEM = "http://yaolian.org/fhir/sid/member"
_SID = "http://yaolian.org/fhir/sid/"

#: Readable by every member client; not owned by one member.
SHARED_TYPES = frozenset(
    {"Patient", "Practitioner", "PractitionerRole", "Organization", "Location", "Endpoint", "HealthcareService"}
)
#: What another member's data a member may see in the context of a patient (互认共享).
MUTUALLY_RECOGNISED = frozenset({"MedicationRequest", "MedicationDispense", "Medication"})
#: Owned by the client that wrote them, not by a member (issue 16: gateway.events.subscriptions
#: keeps each client to its own; every role may subscribe to what it may read).
CLIENT_OWNED = frozenset({"Subscription"})
#: Records that name a patient, and the element that names it.
PATIENT_ELEMENTS = ("subject", "patient")
#: Supply-chain records (the county pharmacy works on every member's).
SUPPLY_TYPES = frozenset({"SupplyRequest", "SupplyDelivery", "InventoryReport", "InventoryItem"})

_ALL = "cruds"
#: Per role: resource type -> SMART interactions the role permits ("*": any other type).
ROLE_ACCESS: dict[Role, dict[str, str]] = {
    Role.ADMIN: {"*": _ALL},
    Role.MEMBER: {
        "Subscription": _ALL,
        **{t: _ALL for t in ("Patient", "Practitioner", "PractitionerRole", "Location")},
        "Organization": "rs",
        "Endpoint": "rs",
        "HealthcareService": "rs",
        **{
            t: _ALL
            for t in (
                "MedicationRequest",
                "MedicationDispense",
                "MedicationStatement",
                "MedicationAdministration",
                "Medication",
                "Encounter",
                "Condition",
                "Observation",
                "AllergyIntolerance",
                "Coverage",
                "SupplyRequest",
                "InventoryReport",
                "InventoryItem",
                "Provenance",
            )
        },
        "SupplyDelivery": "rs",
        # the central review's findings and decisions on the member's own prescriptions
        # (gateway.alliance.review: owner-tagged with the prescribing member)
        "DetectedIssue": "rs",
        "Task": "rs",
    },
    Role.COUNTY_PHARMACY: {
        "Subscription": _ALL,
        **{t: _ALL for t in SUPPLY_TYPES},
        "Medication": _ALL,
        "MedicationKnowledge": _ALL,
        "Organization": "rs",
        "Location": "rs",
        # issue 15 (docs/supply.md): the approved procurement plan (List), stock alerts, reports
        "List": _ALL,
        "DetectedIssue": "rs",
        "MeasureReport": "rs",
    },
    Role.INSURANCE: {
        "Subscription": _ALL,
        "MedicationRequest": "rs",
        "MedicationDispense": "rs",
        "Medication": "rs",
        "Organization": "rs",
        "Practitioner": "rs",
    },
    Role.REGULATOR: {
        "Subscription": _ALL,
        "AuditEvent": "rs",  # auditors search the audit trail (gateway.security.audit)
        "MeasureReport": "rs",
        # not DetectedIssue: the central review's findings name patients (stock alerts reach the
        # regulator through the yearly MeasureReport)
        "InventoryReport": "rs",
        "SupplyRequest": "rs",
        "Organization": "rs",
        "Medication": "rs",
    },
}

#: Elements of a record that name the member it belongs to, as dotted paths to a
#: ``{"identifier": {"system": MEMBER_SYSTEM, "value": code}}`` (lists are walked).
MEMBER_CLAIMS: dict[str, tuple[str, ...]] = {
    "Encounter": ("serviceProvider",),
    "MedicationDispense": ("performer.actor",),
    "SupplyRequest": ("requester",),
    "Medication": ("identifier.assigner",),
}
#: Identifier systems that embed the member code (``…/sid/XHZXWSY/placer-order``).
_MEMBER_SCOPED_SUFFIXES = ("/placer-order", "/placer-group", "/visit-number", "/patient-id", "/drug")


#: REST interactions (``RequestContext.interaction``) as SMART interaction letters.
_REST_INTERACTIONS = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "search-type": "s",
    "history-type": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
}


_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def role_allows(principal: Principal, resource_type: str, interaction: str) -> bool:
    """The role's own limits, intersected with the client's scopes."""
    if resource_type in DEFINITION_TYPES and interaction in ("r", "s"):
        return True  # public definitions (see the module docstring)
    table = ROLE_ACCESS[principal.role]
    permitted = table.get(resource_type, table.get("*", ""))
    return interaction in permitted and principal.scope_allows(resource_type, interaction)


def owned(resource_type: str) -> bool:
    return (
        resource_type not in SHARED_TYPES
        and resource_type not in CLIENT_OWNED
        and resource_type not in DEFINITION_TYPES
    )


def owner_tag(data: dict[str, Any] | None) -> str | None:
    """The owning member stamped in ``meta.tag``."""
    for tag in ((data or {}).get("meta") or {}).get("tag") or ():
        if isinstance(tag, dict) and tag.get("system") == MEMBER_SYSTEM:
            code = tag.get("code")
            return code if isinstance(code, str) else None
    return None


def _walk(node: Any, path: list[str]) -> Iterator[Any]:
    if not path:
        yield node
        return
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path)
    elif isinstance(node, dict) and path[0] in node:
        yield from _walk(node[path[0]], path[1:])


def member_claims(resource_type: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(element, member code)`` for everything the record says about its member."""
    found: list[tuple[str, str]] = []
    for path in MEMBER_CLAIMS.get(resource_type, ()):
        for ref in _walk(data, path.split(".")):
            identifier = ref.get("identifier") if isinstance(ref, dict) else None
            if isinstance(identifier, dict) and identifier.get("system") == MEMBER_SYSTEM:
                value = identifier.get("value")
                if isinstance(value, str):
                    found.append((f"{resource_type}.{path}", value))
    for n, identifier in enumerate(data.get("identifier") or ()):
        system = identifier.get("system") if isinstance(identifier, dict) else None
        if isinstance(system, str) and system.startswith(_SID) and system.endswith(_MEMBER_SCOPED_SUFFIXES):
            code = system[len(_SID) :].split("/", 1)[0]
            found.append((f"{resource_type}.identifier[{n}].system", code))
    return found


def owner_of(ctx: RequestContext, resource_type: str, data: dict[str, Any]) -> str | None:
    """The member a record being written belongs to (stamped into ``meta.tag`` by the write
    path): the writing member's own; for other roles (the county pharmacy writing supply
    records) the member the record itself names."""
    if not owned(resource_type):
        return None
    principal = ctx.principal
    if principal is not None and principal.role is Role.MEMBER:
        return principal.member
    claims = member_claims(resource_type, data)
    return claims[0][1] if claims else owner_tag(data)


def owner_coding(ctx: RequestContext, resource_type: str, data: dict[str, Any]) -> dict[str, str] | None:
    """:func:`owner_of` as the ``meta.tag`` coding the write path stamps."""
    code = owner_of(ctx, resource_type, data)
    return {"system": MEMBER_SYSTEM, "code": code} if code else None


def patient_of(data: dict[str, Any] | None) -> str | None:
    """``Patient/id`` a record is about (its ``subject`` or ``patient`` reference)."""
    for element in PATIENT_ELEMENTS:
        ref = (data or {}).get(element)
        reference = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference
    return None


def _names_patient(criterion: Criterion) -> bool:
    if criterion.param.code not in PATIENT_ELEMENTS:
        return False
    if criterion.chain is None:
        return bool(criterion.values) and criterion.modifier != "missing"
    return criterion.chain.criterion.param.code in ("identifier", "_id")


def patient_context(query: SearchQuery) -> bool:
    """Whether a search names a patient: what mutual recognition is for."""
    if query.resource_type == "Patient":
        return any(c.param.code in ("_id", "identifier") and c.values for c in query.criteria)
    return any(_names_patient(c) for c in query.criteria)


@dataclass
class Policy:
    """The hooks, given the store they may ask whether a member serves a patient."""

    store: Store

    def install(self, service: FhirService) -> None:
        """Hang the policy on the service's hooks and stamp owners on what it writes."""
        service.writer.owner_tag = owner_coding
        hooks = service.hooks
        hooks.register(Pointcut.REQUEST_RECEIVED, self.request_received)
        hooks.register(Pointcut.BEFORE_WRITE, self.before_write)
        hooks.register(Pointcut.BEFORE_SEARCH, self.before_search)
        hooks.register(Pointcut.BEFORE_SEARCH_RESPONSE, self.before_search_response)
        hooks.register(Pointcut.BEFORE_READ_RESPONSE, self.before_read)
        hooks.register(Pointcut.BEFORE_HISTORY_RESPONSE, self.before_history)

    # -- who ----------------------------------------------------------------------------
    @staticmethod
    def _principal(ctx: RequestContext) -> Principal:
        if ctx.principal is None:  # fail closed: every entry point sets one when auth is on
            raise Forbidden("YL-0270", role="none", interaction=ctx.interaction or "access", type="this server")
        return ctx.principal

    def _require(self, ctx: RequestContext, resource_type: str, interaction: str) -> Principal:
        principal = self._principal(ctx)
        if not role_allows(principal, resource_type, interaction):
            verb = _VERBS.get(interaction, interaction)
            raise Forbidden("YL-0270", role=principal.role.value, interaction=verb, type=resource_type)
        return principal

    def request_received(self, ctx: RequestContext) -> None:
        """A REST interaction on one type is refused before any work is done for it (the same
        check runs again where the data is: Bundle entries meet it there)."""
        interaction = _REST_INTERACTIONS.get(ctx.interaction)
        if interaction is not None and ctx.resource_type:
            self._require(ctx, ctx.resource_type, interaction)

    # -- writes -------------------------------------------------------------------------
    def before_write(
        self, ctx: RequestContext, resource_type: str, data: dict[str, Any] | None, existing: StoredResource | None
    ) -> None:
        interaction = "d" if data is None else ("c" if existing is None or existing.deleted else "u")
        principal = self._require(ctx, resource_type, interaction)
        if principal.role is not Role.MEMBER or not owned(resource_type):
            return
        if existing is not None:
            previous = self._owner_of_stored(existing)
            if previous is not None and previous != principal.member:
                if not self._visible(principal, existing, None):
                    raise NotFound("YL-0201", type=resource_type, id=existing.res_id)
                raise Forbidden("YL-0271", path="meta.tag", claimed=previous, member=principal.member)
        for path, code in member_claims(resource_type, data or {}):
            if code != principal.member:
                raise Forbidden("YL-0271", path=path, claimed=code, member=principal.member, expression=[path])

    def _owner_of_stored(self, stored: StoredResource) -> str | None:
        if stored.body is not None:
            return owner_tag(orjson.loads(stored.body))
        earlier = self.store.vread(stored.res_type, stored.res_id, stored.version - 1) if stored.version > 1 else None
        return owner_tag(orjson.loads(earlier.body)) if earlier is not None and earlier.body else None

    # -- searches -----------------------------------------------------------------------
    def before_search(self, ctx: RequestContext, query: SearchQuery) -> None:
        principal = self._require(ctx, query.resource_type, "s")
        if principal.role is not Role.MEMBER or not owned(query.resource_type):
            return
        if query.resource_type in MUTUALLY_RECOGNISED and patient_context(query):
            return
        own = parse_criterion(query.resource_type, "_tag", f"{MEMBER_SYSTEM}|{principal.member}")
        assert own is not None, "_tag is a search parameter of every resource"
        query.criteria.append(own)

    def before_search_response(self, ctx: RequestContext, results: SearchResults) -> None:
        principal = self._principal(ctx)
        in_context = patient_context(results.query)
        shown = [r for r in results.matches if self._searchable(principal, r, in_context)]
        if len(shown) != len(results.matches) and results.total is not None:
            results.total -= len(results.matches) - len(shown)
        results.matches[:] = shown
        results.included[:] = [r for r in results.included if self._searchable(principal, r, in_context)]

    def _searchable(self, principal: Principal, stored: StoredResource, in_context: bool) -> bool:
        if not (role_allows(principal, stored.res_type, "s") or role_allows(principal, stored.res_type, "r")):
            return False
        if principal.role is not Role.MEMBER or not owned(stored.res_type):
            return True
        if in_context and stored.res_type in MUTUALLY_RECOGNISED:
            return True
        return self._owner_of_stored(stored) == principal.member

    # -- reads and history --------------------------------------------------------------
    def before_read(self, ctx: RequestContext, stored: StoredResource) -> None:
        principal = self._require(ctx, stored.res_type, "r")
        if not self._visible(principal, stored, None):
            raise Hidden

    def _visible(self, principal: Principal, stored: StoredResource, data: dict[str, Any] | None) -> bool:
        """A record read by id: its own, or a mutually recognised one of a patient it serves."""
        if principal.role is not Role.MEMBER or not owned(stored.res_type):
            return True
        if self._owner_of_stored(stored) == principal.member:
            return True
        if stored.res_type not in MUTUALLY_RECOGNISED:
            return False
        body = data if data is not None else (orjson.loads(stored.body) if stored.body else None)
        patient = patient_of(body)
        return patient is not None and self.serves(principal.member or "", patient)

    def serves(self, member: str, patient: str) -> bool:
        """Whether ``member`` has a prescription, dispense or visit of its own for ``patient``."""
        for resource_type, element in (("MedicationRequest", "subject"), ("Encounter", "subject")):
            query = parse_search(
                resource_type,
                [(element, patient), ("_tag", f"{MEMBER_SYSTEM}|{member}")],
                strict=True,
                default_count=1,
                max_count=1,
            )
            if self.store.search(query, count=1, offset=0, total=False).ids:
                return True
        return False

    def before_history(self, ctx: RequestContext, page: HistoryPage) -> None:
        principal = self._principal(ctx)
        if page.resource_type is None:
            if principal.role is not Role.ADMIN:
                raise Forbidden("YL-0270", role=principal.role.value, interaction="history", type="the whole server")
            return
        if page.resource_id is not None:
            self._require(ctx, page.resource_type, "r")
            current = self.store.read(page.resource_type, page.resource_id)
            if current is not None and not self._visible(principal, current, None):
                raise Hidden
            return
        self._require(ctx, page.resource_type, "s")
        if principal.role is Role.MEMBER and owned(page.resource_type):
            raise Forbidden("YL-0272", type=page.resource_type)


__all__ = [
    "MEMBER_CLAIMS",
    "MEMBER_SYSTEM",
    "MUTUALLY_RECOGNISED",
    "ROLE_ACCESS",
    "SHARED_TYPES",
    "Policy",
    "member_claims",
    "owner_coding",
    "owner_of",
    "owner_tag",
    "patient_context",
    "role_allows",
]
