"""Channel ``aggregate``: counts only, for the health commission's monitoring feed (POL-14/17).

Instead of resources, each notification is one FHIR MeasureReport (type ``summary``): the
number of events of the topic in the notification, stratified by member, tier and drug code -
no patient, no resource id, nothing a regulator's feed should not carry. Its identifier names
the subscription and the eventNumber range it counts, so the receiver de-duplicates a repeat.
``yaolian deliveries preset-health-commission`` creates the preset subscriptions (prescriptions
and stock alerts) as the operator.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from gateway.clock import now_instant
from gateway.events.channels import Sent
from gateway.events.matching import Matcher, drug_codes, members
from gateway.events.subscriptions import Subscription
from gateway.store.base import Delivery

MEASURE = "http://yaolian.org/fhir/Measure/subscription-aggregate"


class AggregateChannel:
    def __init__(self, matcher: Matcher, default_timeout: float = 10.0) -> None:
        self.matcher = matcher
        self.default_timeout = default_timeout
        self._client = httpx.Client(follow_redirects=False)

    def report(self, sub: Subscription, events: Sequence[Delivery]) -> dict[str, Any]:
        registry = self.matcher.registry()
        by: dict[str, Counter[str]] = {"member": Counter(), "tier": Counter(), "drug": Counter()}
        for d in events:
            version = d.version if d.event != "delete" else d.version - 1
            stored = self.matcher.version(d.res_type, d.res_id, version)
            data = orjson.loads(stored.body) if stored is not None and stored.body else {}
            codes = members(data, registry)
            by["member"].update(codes)
            by["tier"].update({m.tier for c in codes if (m := registry.get(c)) and m.tier})
            by["drug"].update(c for c in drug_codes(data) if "|" not in c and "/" not in c)
        return {
            "resourceType": "MeasureReport",
            "id": str(uuid.uuid4()),
            "identifier": [
                {
                    "system": "http://yaolian.org/fhir/sid/subscription-events",
                    "value": f"{sub.id}:{events[0].event_number}-{events[-1].event_number}",
                }
            ],
            "status": "complete",
            "type": "summary",
            "measure": MEASURE,
            "date": now_instant(),
            "period": {"start": events[0].created, "end": events[-1].created},
            "group": [
                {
                    "code": {"coding": [{"system": "http://yaolian.org/fhir/SubscriptionTopic", "code": sub.topic.id}]},
                    "population": [{"code": {"text": "events"}, "count": len(events)}],
                    "stratifier": [
                        {
                            "code": {"text": name},
                            "stratum": [
                                {"valueCodeableConcept": {"text": value}, "population": [{"count": count}]}
                                for value, count in sorted(counter.items())
                            ],
                        }
                        for name, counter in by.items()
                    ],
                }
            ],
        }

    def send(self, sub: Subscription, bundle: dict[str, Any], events: Sequence[Delivery], kind: str) -> Sent:
        if kind != "event-notification" or not events:
            return Sent(True)
        headers = {"Content-Type": "application/fhir+json", **dict(sub.headers)}
        try:
            answer = self._client.post(
                sub.endpoint,
                content=orjson.dumps(self.report(sub, events)),
                headers=headers,
                timeout=float(sub.timeout or self.default_timeout),
            )
        except httpx.HTTPError as exc:
            return Sent(False, f"{type(exc).__name__}: {exc}"[:500])
        return Sent(True) if answer.is_success else Sent(False, f"HTTP {answer.status_code}")

    def close(self) -> None:
        self._client.close()
