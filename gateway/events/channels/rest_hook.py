"""The rest-hook channel: POST the notification Bundle to the subscriber's endpoint.

Custom headers come from the Subscription's ``parameter`` entries (e.g. an Authorization the
receiver expects); any 2xx is success, anything else (or no answer within the subscription's
``timeout``) is a failure the dispatcher retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from gateway.events.channels import Sent
from gateway.events.subscriptions import Subscription
from gateway.store.base import Delivery


class RestHook:
    def __init__(self, default_timeout: float = 10.0) -> None:
        self.default_timeout = default_timeout
        self._client = httpx.Client(follow_redirects=False)

    def send(self, sub: Subscription, bundle: dict[str, Any], events: Sequence[Delivery], kind: str) -> Sent:
        headers = {"Content-Type": "application/fhir+json; fhirVersion=5.0", **dict(sub.headers)}
        try:
            answer = self._client.post(
                sub.endpoint,
                content=orjson.dumps(bundle),
                headers=headers,
                timeout=float(sub.timeout or self.default_timeout),
            )
        except httpx.HTTPError as exc:
            return Sent(False, f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= answer.status_code < 300:
            return Sent(True)
        return Sent(False, f"HTTP {answer.status_code}: {answer.text[:200]}")

    def close(self) -> None:
        self._client.close()
