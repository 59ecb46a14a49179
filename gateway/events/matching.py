"""Which subscriptions an outbox event is an event of.

For each committed change (an outbox row) the matcher reads the version it names and the one
before it, asks every topic on that resource type whether the change triggers it
(:meth:`Topic.triggered`), then every active subscription of those topics whether its filters
(patient, member, drug, tier) hold and whether its owner may read the resource. That last
question is asked through the service with the owner's principal - the security policy's
read hooks answer it exactly as they would answer the owner's own read - so a subscription
never carries what its owner could not fetch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from gateway.errors import FhirError
from gateway.events.subscriptions import Subscription, parse
from gateway.events.topics import topics
from gateway.federation.registry import MemberRegistry, load_registry
from gateway.hooks import Hidden, Pointcut, RequestContext
from gateway.principal import INSECURE_DEV, Principal, Role, parse_scopes
from gateway.security.policy import MEMBER_SYSTEM, member_claims, owner_tag
from gateway.service.fhir_service import FhirService
from gateway.store.base import ChangeEvent, FanOut, StoredResource

log = logging.getLogger("yaolian.events")

#: The dispatcher's own reads (subscriptions, versions, the member registry): the gateway itself.
DISPATCHER = Principal(
    "yaolian-dispatcher", "subscription dispatcher", Role.ADMIN, None, parse_scopes("system/*.cruds")
)
#: where a record names its drug (``implicated``: a stock alert's Medication, gateway.alliance.supply)
_DRUG_ELEMENTS = ("medication", "medicationCodeableConcept", "item", "suppliedItem", "code", "concept", "implicated")
ACTIVE = ("requested", "active")


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def drug_codes(data: dict[str, Any]) -> set[str]:
    """``code`` and ``system|code`` of every coding under the drug elements (and Medication refs)."""
    found: set[str] = set()
    for key in _DRUG_ELEMENTS:
        for node in _walk(data.get(key)):
            if "code" in node and isinstance(node.get("code"), str):
                found.add(node["code"])
                if isinstance(node.get("system"), str):
                    found.add(f"{node['system']}|{node['code']}")
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith("Medication/"):
                found.update({ref, ref.removeprefix("Medication/")})
    return found


def patients(data: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for key in ("subject", "patient"):
        ref = (data.get(key) or {}).get("reference") if isinstance(data.get(key), dict) else None
        if isinstance(ref, str) and ref.startswith("Patient/"):
            found.update({ref, ref.removeprefix("Patient/")})
    return found


def members(data: dict[str, Any], registry: MemberRegistry) -> set[str]:
    """The member codes a record belongs to or names (its owner tag, its member claims, any
    Organization it references that is a member, any member identifier)."""
    found: set[str] = set()
    tag = owner_tag(data)
    if tag:
        found.add(tag)
    found.update(code for _, code in member_claims(str(data.get("resourceType")), data))
    for node in _walk({k: v for k, v in data.items() if k not in ("meta", "contained")}):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith("Organization/"):
            member = registry.by_organization(ref)
            if member is not None:
                found.add(member.code)
        if node.get("system") == MEMBER_SYSTEM and isinstance(node.get("value"), str):
            found.add(node["value"])
    return found


#: Versions kept in memory after a read (the newest events'; a few MB of bodies at most).
_VERSIONS_KEPT = 2048


class Matcher:
    """Turns outbox events into :class:`FanOut` plans; keeps the active subscriptions."""

    def __init__(self, service: FhirService, *, refresh_seconds: float = 5.0) -> None:
        self.service = service
        self.ctx = RequestContext(base_url="urn:yaolian:dispatcher", interaction="operation", principal=DISPATCHER)
        self.refresh_seconds = refresh_seconds
        self._subs: dict[str, Subscription] = {}
        self._started: set[str] = set()
        self._loaded = 0.0
        self._registry: MemberRegistry | None = None
        self._registry_loaded = 0.0
        self._owners: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()
        self._versions: OrderedDict[tuple[str, str, int], StoredResource] = OrderedDict()
        self._versions_lock = threading.Lock()

    # -- the active subscriptions ----------------------------------------------------------
    def invalidate(self) -> None:
        """A Subscription was written in this process: read them again at the next question
        (other processes notice within ``refresh_seconds``)."""
        self._loaded = 0.0

    def refresh(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._loaded < self.refresh_seconds:
                return
            found: dict[str, Subscription] = {}
            offset = 0
            while True:
                page = self.service.find(
                    "Subscription", [("_count", "500"), ("_offset", str(offset)), ("_sort", "_id")], self.ctx
                )
                for stored in page:
                    sub = parse(stored)
                    if sub is not None:
                        found[sub.id] = sub
                if len(page) < 500:
                    break
                offset += len(page)
            self._subs = found
            self._started = {s.sub_id for s in self.service.store.subscription_states()}
            self._loaded = time.monotonic()

    def subscriptions(self) -> list[Subscription]:
        self.refresh()
        return list(self._subs.values())

    def get(self, sub_id: str) -> Subscription | None:
        self.refresh()
        return self._subs.get(sub_id)

    def wanted(self) -> bool:
        """Whether any subscription exists (else outbox rows may wait: no fan-out write)."""
        self.refresh()
        return bool(self._subs)

    def registry(self) -> MemberRegistry:
        if self._registry is None or time.monotonic() - self._registry_loaded > 60:
            self._registry = load_registry(self.service, self.ctx)
            self._registry_loaded = time.monotonic()
        return self._registry

    # -- owners ---------------------------------------------------------------------------
    def owner(self, client_id: str | None) -> Principal | None:
        """The principal a subscription's events are checked for: its owner's, as registered now
        (a revoked or removed client receives nothing)."""
        if client_id is None:
            return None
        if client_id in (INSECURE_DEV.client_id, "cli"):
            return INSECURE_DEV
        cached = self._owners.get(client_id)
        if cached is not None and time.monotonic() - cached[0] < 30:
            return cached[1]
        record = self.service.store.client_get(client_id)
        principal = None
        if record is not None and record.revoked is None:
            principal = Principal(
                record.client_id, record.name, Role(record.role), record.member, parse_scopes(record.scopes)
            )
        self._owners[client_id] = (time.monotonic(), principal)
        return principal

    def visible(self, sub: Subscription, stored: StoredResource) -> bool:
        """Whether the owner may read this version: the read hooks (the security policy) run on
        it with the owner's principal, exactly as for the owner's own read of it."""
        principal = self.owner(sub.owner)
        if principal is None:
            return False
        if Pointcut.BEFORE_READ_RESPONSE not in self.service.hooks:
            return True
        ctx = RequestContext(
            base_url=self.ctx.base_url, interaction="vread", resource_type=stored.res_type, principal=principal
        )
        try:
            self.service.hooks.run(Pointcut.BEFORE_READ_RESPONSE, ctx, stored)
        except (Hidden, FhirError):
            return False
        return True

    # -- planning -------------------------------------------------------------------------
    def version(self, res_type: str, res_id: str, version: int) -> StoredResource | None:
        """One version as the gateway itself reads it (through the service; None if not there
        or deleted). Versions never change, so the newest read are kept: with three subscribers
        an event's version was read four times (fan-out and each delivery), a third of a
        delivery worker's time on PostgreSQL (benchmarks/bench_subscriptions.py)."""
        if version < 1:
            return None
        key = (res_type, res_id, version)
        with self._versions_lock:
            kept = self._versions.get(key)
            if kept is not None:
                self._versions.move_to_end(key)
                return kept
        try:
            stored = self.service.vread(res_type, res_id, str(version), self.ctx)
        except FhirError:
            return None
        with self._versions_lock:  # a version never changes: the fan-out and each subscriber share one read
            self._versions[key] = stored
            if len(self._versions) > _VERSIONS_KEPT:
                self._versions.popitem(last=False)
        return stored

    def filters_hold(self, sub: Subscription, data: dict[str, Any]) -> bool:
        for name, value in sub.filters:
            values = set(value.split(","))
            if name == "patient":
                have = patients(data)
            elif name == "drug":
                have = drug_codes(data)
            elif name == "member":
                have = members(data, self.registry())
            elif name == "tier":
                registry = self.registry()
                have = {m.tier for code in members(data, registry) if (m := registry.get(code)) and m.tier}
            else:
                return False
            if not values & have:
                return False
        return True

    def plan(self, events: Sequence[ChangeEvent]) -> list[FanOut]:
        self.refresh()
        by_topic: dict[str, list[Subscription]] = {}
        for sub in self._subs.values():
            by_topic.setdefault(sub.topic.url, []).append(sub)
        plans: list[FanOut] = []
        for ev in sorted(events, key=lambda e: e.seq):
            if ev.resource_type == "Subscription":
                plans.append(self._subscription_event(ev, by_topic))
                continue
            relevant = [t for t in topics().values() if t.resource_type == ev.resource_type and t.url in by_topic]
            if not relevant:
                plans.append(FanOut(ev.seq))
                continue
            current_stored = (
                None if ev.event == "delete" else self.version(ev.resource_type, ev.resource_id, ev.version)
            )
            current = orjson.loads(current_stored.body) if current_stored is not None and current_stored.body else None
            needs_previous = ev.event == "delete" or any(t.previous for t in relevant)
            previous_stored = self.version(ev.resource_type, ev.resource_id, ev.version - 1) if needs_previous else None
            previous = (
                orjson.loads(previous_stored.body) if previous_stored is not None and previous_stored.body else None
            )
            shown = current if current is not None else previous
            shown_stored = current_stored if current is not None else previous_stored
            matches: list[str] = []
            seen: dict[str | None, bool] = {}  # owner -> may read it (asked once per owner)
            for t in relevant:
                if shown is None or shown_stored is None or not t.triggered(ev.event, current, previous):
                    continue
                for sub in by_topic[t.url]:
                    if sub.status not in ACTIVE or not self.filters_hold(sub, shown):
                        continue
                    if sub.owner not in seen:
                        seen[sub.owner] = self.visible(sub, shown_stored)
                    if seen[sub.owner]:
                        matches.append(sub.id)
            plans.append(FanOut(ev.seq, tuple(matches)))
        return plans

    def _subscription_event(self, ev: ChangeEvent, by_topic: dict[str, list[Subscription]]) -> FanOut:
        stored = self.version("Subscription", ev.resource_id, ev.version)
        sub = parse(stored) if stored is not None else None
        if sub is None:
            self._subs.pop(ev.resource_id, None)
            return FanOut(ev.seq)
        old = self._subs.get(sub.id)
        if old is not None and old in by_topic.get(old.topic.url, []):
            by_topic[old.topic.url].remove(old)
        self._subs[sub.id] = sub
        by_topic.setdefault(sub.topic.url, []).append(sub)
        if sub.id in self._started:
            return FanOut(ev.seq)
        self._started.add(sub.id)
        return FanOut(ev.seq, starts=((sub.id, sub.topic.url),))
