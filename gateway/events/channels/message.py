"""The message channel: the events' resources written to a remote FHIR server.

For each event the resource as it is at that version is ``PUT`` to ``{endpoint}/{type}/{id}``
(update-as-create: the remote copy keeps our id, so a repeat is harmless), a deletion is a
``DELETE`` there. Custom headers come from the Subscription's ``parameter`` entries. Any 2xx
(and 404/410 for a delete) is success; the rest is retried with back-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from gateway.events.channels import Sent
from gateway.events.matching import Matcher
from gateway.events.subscriptions import Subscription
from gateway.store.base import Delivery


class MessageChannel:
    def __init__(self, matcher: Matcher, default_timeout: float = 10.0) -> None:
        self.matcher = matcher
        self.default_timeout = default_timeout
        self._client = httpx.Client(follow_redirects=False)

    def send(self, sub: Subscription, bundle: dict[str, Any], events: Sequence[Delivery], kind: str) -> Sent:
        if kind != "event-notification":
            return Sent(True)  # a FHIR server takes resources, not handshakes
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", **dict(sub.headers)}
        timeout = float(sub.timeout or self.default_timeout)
        base = sub.endpoint.rstrip("/")
        for d in events:
            url = f"{base}/{d.res_type}/{d.res_id}"
            try:
                if d.event == "delete":
                    answer = self._client.delete(url, headers=headers, timeout=timeout)
                    ok = answer.is_success or answer.status_code in (404, 410)
                else:
                    stored = self.matcher.version(d.res_type, d.res_id, d.version)
                    if stored is None or stored.body is None:
                        continue
                    body = orjson.loads(stored.body)
                    body.pop("meta", None)  # the remote server keeps its own versions
                    answer = self._client.put(url, content=orjson.dumps(body), headers=headers, timeout=timeout)
                    ok = answer.is_success
            except httpx.HTTPError as exc:
                return Sent(False, f"{d.res_type}/{d.res_id}: {type(exc).__name__}: {exc}"[:500])
            if not ok:
                return Sent(False, f"{d.res_type}/{d.res_id}: HTTP {answer.status_code}: {answer.text[:200]}")
        return Sent(True)

    def close(self) -> None:
        self._client.close()
