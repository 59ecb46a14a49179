"""``Subscription/{id}/$status`` and ``$events``: what a subscriber may ask about its subscription.

``$status`` answers a searchset Bundle with one SubscriptionStatus (type ``query-status``,
``eventsSinceSubscriptionStart`` = the last eventNumber handed out). ``$events`` answers a
subscription-notification Bundle (type ``query-event``) of the events numbered
``eventsSinceNumber``..``eventsUntilNumber`` (default: the last 100), with the content asked
for (``content``, default the subscription's own): a receiver that was down for longer than the
retry budget fetches what it missed by number. Both read the Subscription through the service,
so a client asks only about its own; full resources are read with the caller's rights too.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import orjson

from gateway.clock import now_instant
from gateway.errors import BadRequest, FhirError
from gateway.events.notifications import notification, status_resource
from gateway.events.subscriptions import CONTENTS, Subscription, parse
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService

MAX_EVENTS = 1000


def _subscription(svc: FhirService, sub_id: str, ctx: RequestContext) -> Subscription:
    stored = svc.read("Subscription", sub_id, ctx)
    sub = parse(stored)
    if sub is None:
        raise BadRequest("YL-1300", topic="(unknown)", expression=["Subscription.topic"])
    return sub


def status_bundle(svc: FhirService, sub_id: str, ctx: RequestContext) -> dict[str, Any]:
    sub = _subscription(svc, sub_id, ctx)
    state = svc.store.subscription_state(sub_id)
    events = state.events if state else 0
    status = state.status if state else "requested"
    if sub.status == "off":
        status = "off"
    resource = status_resource(
        sub, ctx.base_url, "query-status", events, status=status, error=state.last_error if state else None
    )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "timestamp": now_instant(),
        "total": 1,
        "entry": [{"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource, "search": {"mode": "match"}}],
    }


def _number(params: dict[str, str], name: str, sub_id: str, count: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("YL-1305", name=name, value=raw, id=sub_id, count=count)
    return int(raw)


def events_bundle(svc: FhirService, sub_id: str, params: dict[str, str], ctx: RequestContext) -> dict[str, Any]:
    sub = _subscription(svc, sub_id, ctx)
    state = svc.store.subscription_state(sub_id)
    count = state.events if state else 0
    since = _number(params, "eventsSinceNumber", sub_id, count)
    until = _number(params, "eventsUntilNumber", sub_id, count)
    until = min(until if until is not None else count, count)
    since = since if since is not None else max(1, until - 99)
    since = max(since, until - MAX_EVENTS + 1, 1)
    content = params.get("content") or sub.content
    if content not in CONTENTS:
        raise BadRequest("YL-1304", path="content", value=content, reason="empty, id-only or full-resource")
    shown = dataclasses.replace(sub, content=content)
    deliveries = svc.store.deliveries_list(sub_id, None, MAX_EVENTS, since=since, until=until) if since <= until else []
    resources: dict[tuple[str, str, int], dict[str, Any]] = {}
    if content == "full-resource":
        for d in deliveries:
            version = d.version if d.event != "delete" else d.version - 1
            try:
                stored = svc.vread(d.res_type, d.res_id, str(version), ctx)
            except FhirError:
                continue  # no longer shown to the caller: the event keeps its number, not the body
            if stored.body:
                resources[(d.res_type, d.res_id, d.version)] = orjson.loads(stored.body)
    bundle = notification(shown, ctx.base_url, "query-event", count, deliveries, resources)
    bundle["entry"][0]["resource"]["status"] = state.status if state else "requested"
    return bundle
