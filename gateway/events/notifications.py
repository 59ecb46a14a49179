"""R5 subscription notification Bundles (``Bundle.type`` = ``subscription-notification``).

The first entry is always the SubscriptionStatus (status, type, eventsSinceSubscriptionStart,
notificationEvent with each eventNumber); what follows depends on the subscription's content:
``empty`` nothing (and no focus), ``id-only`` an entry per event with its fullUrl and request,
``full-resource`` the same with the resource as it was at that version.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from gateway.clock import now_instant
from gateway.events.subscriptions import Subscription
from gateway.store.base import Delivery

_METHODS = {"create": "POST", "update": "PUT", "delete": "DELETE"}


def status_resource(
    sub: Subscription,
    base_url: str,
    kind: str,
    events_since_start: int,
    events: Sequence[Delivery] = (),
    status: str = "active",
    error: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "SubscriptionStatus",
        "id": str(uuid.uuid4()),
        "status": status,
        "type": kind,
        "eventsSinceSubscriptionStart": str(events_since_start),  # integer64: a JSON string
        "subscription": {"reference": f"{base_url}/Subscription/{sub.id}"},
        "topic": sub.topic.url,
    }
    if events:
        notification = []
        for d in events:
            item: dict[str, Any] = {"eventNumber": str(d.event_number), "timestamp": d.created}
            if sub.content != "empty":
                item["focus"] = {"reference": f"{base_url}/{d.res_type}/{d.res_id}/_history/{d.version}"}
            notification.append(item)
        resource["notificationEvent"] = notification
    if error:
        resource["error"] = [{"text": error}]
    return resource


def notification(
    sub: Subscription,
    base_url: str,
    kind: str,
    events_since_start: int,
    events: Sequence[Delivery] = (),
    resources: dict[tuple[str, str, int], dict[str, Any]] | None = None,
    status: str = "active",
) -> dict[str, Any]:
    """A notification Bundle; ``resources`` holds the focus versions for full-resource."""
    status_entry = {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": status_resource(sub, base_url, kind, events_since_start, events, status),
    }
    entries: list[dict[str, Any]] = [status_entry]
    if sub.content != "empty":
        for d in events:
            entry: dict[str, Any] = {
                "fullUrl": f"{base_url}/{d.res_type}/{d.res_id}",
                "request": {
                    "method": _METHODS.get(d.event, "PUT"),
                    "url": f"{d.res_type}/{d.res_id}" if d.event != "create" else d.res_type,
                },
                "response": {"status": "410" if d.event == "delete" else ("201" if d.event == "create" else "200"),
                             "etag": f'W/"{d.version}"'},
            }  # fmt: skip
            body = (resources or {}).get((d.res_type, d.res_id, d.version))
            if sub.content == "full-resource" and body is not None:
                entry["resource"] = body
            entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now_instant()},
        "type": "subscription-notification",
        "timestamp": now_instant(),
        "entry": entries,
    }
