"""R5 topic-based Subscriptions: what a Subscription resource says, checked when it is written,
and who owns it.

A Subscription is stored as a FHIR resource through the one write path. Writing one passes
:meth:`SubscriptionRules.before_write`: its topic must be one of ours, its filters ones the topic
allows, its channel and endpoint usable. The write path stamps its owner - the client that wrote
it - in ``meta.tag`` (system :data:`OWNER_SYSTEM`), where a client cannot forge it; a client
sees, changes and receives only its own subscriptions, and each event only if the owner may
read the resource it is about (checked through the service, i.e. the security policy, before
anything is delivered: :mod:`gateway.events.matching`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from gateway.errors import MethodNotAllowed, NotFound, Unprocessable
from gateway.events.topics import Topic, topic, topics
from gateway.hooks import Hidden, Pointcut, RequestContext
from gateway.principal import Role
from gateway.search.query import SearchQuery, parse_criterion
from gateway.service.fhir_service import FhirService
from gateway.store.base import StoredResource

OWNER_SYSTEM = "http://yaolian.org/fhir/sid/subscription-owner"
HL7_CHANNELS = "http://terminology.hl7.org/CodeSystem/subscription-channel-type"
YL_CHANNELS = "http://yaolian.org/fhir/CodeSystem/subscription-channel-type"
#: channel code -> kind; the alliance's own channels are in YL_CHANNELS
CHANNELS = {
    "rest-hook": "rest-hook",
    "websocket": "websocket",
    "message": "message",
    "insurance-rx": "insurance-rx",  # the national insurance platform's e-prescription interfaces
    "aggregate": "aggregate",  # counts only (the health commission's feed)
}
CONTENTS = ("empty", "id-only", "full-resource")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}: ?[^\r\n]{0,1024}$")
#: headers a subscriber may not set (the gateway's own, or hop-by-hop)
_RESERVED = {"content-type", "content-length", "host", "transfer-encoding", "connection"}


@dataclass(frozen=True)
class Subscription:
    """What delivery needs of a Subscription resource."""

    id: str
    topic: Topic
    status: str
    channel: str
    endpoint: str
    content: str
    content_type: str
    headers: tuple[tuple[str, str], ...]
    filters: tuple[tuple[str, str], ...]  # (filterParameter, value)
    heartbeat: int  # seconds, 0: none
    timeout: int  # seconds per attempt
    max_count: int  # events per notification
    owner: str | None  # client id
    version: int

    @property
    def reference(self) -> str:
        return f"Subscription/{self.id}"


def owner_of(data: dict[str, Any]) -> str | None:
    for tag in (data.get("meta") or {}).get("tag") or ():
        if isinstance(tag, dict) and tag.get("system") == OWNER_SYSTEM and isinstance(tag.get("code"), str):
            return str(tag["code"])
    return None


def _channel(data: dict[str, Any]) -> str:
    coding = data.get("channelType") or {}
    return str(coding.get("code") or "")


def _headers(data: dict[str, Any]) -> list[tuple[str, str]]:
    """R5 ``parameter`` (name/value: HTTP headers of a rest-hook)."""
    out = []
    for p in data.get("parameter") or ():
        if isinstance(p, dict):
            out.append((str(p.get("name", "")), str(p.get("value", ""))))
    return out


def parse(stored: StoredResource) -> Subscription | None:
    """The Subscription a stored version describes, None if it is not one we can serve."""
    if stored.body is None:
        return None
    data = orjson.loads(stored.body)
    found = topic(str(data.get("topic", "")))
    if found is None:
        return None
    return Subscription(
        id=stored.res_id,
        topic=found,
        status=str(data.get("status", "")),
        channel=_channel(data),
        endpoint=str(data.get("endpoint", "")),
        content=str(data.get("content") or "id-only"),
        content_type=str(data.get("contentType") or "application/fhir+json"),
        headers=tuple(_headers(data)),
        filters=tuple(
            (str(f.get("filterParameter")), str(f.get("value")))
            for f in data.get("filterBy") or ()
            if isinstance(f, dict)
        ),
        heartbeat=int(data.get("heartbeatPeriod") or 0),
        timeout=int(data.get("timeout") or 0),
        max_count=max(1, int(data.get("maxCount") or 1)),
        owner=owner_of(data),
        version=stored.version,
    )


def check(data: dict[str, Any], *, allow_private: bool = True) -> None:
    """Refuse (422, with the element) a Subscription we could not serve."""
    url = str(data.get("topic", ""))
    found = topic(url)
    if found is None:
        raise Unprocessable("YL-1300", topic=url or "(none)", expression=["Subscription.topic"])
    for i, f in enumerate(data.get("filterBy") or ()):
        name = str((f or {}).get("filterParameter", ""))
        if name not in found.filters or not str((f or {}).get("value", "")):
            raise Unprocessable(
                "YL-1301",
                index=i,
                topic=found.id,
                name=name or "(none)",
                allowed=", ".join(sorted(found.filters)),
                expression=[f"Subscription.filterBy[{i}]"],
            )
        comparator = (f or {}).get("comparator")
        if comparator not in (None, "eq"):
            raise Unprocessable(
                "YL-1304", path=f"filterBy[{i}].comparator", value=comparator, reason="only eq is supported",
                expression=[f"Subscription.filterBy[{i}].comparator"],
            )  # fmt: skip
    coding = data.get("channelType") or {}
    code = str(coding.get("code") or "")
    system = coding.get("system")
    if code not in CHANNELS or system not in (None, HL7_CHANNELS, YL_CHANNELS):
        raise Unprocessable(
            "YL-1302",
            channel=code or "(none)",
            extra="insurance-rx, aggregate",
            expression=["Subscription.channelType"],
        )
    endpoint = str(data.get("endpoint") or "")
    _check_endpoint(code, endpoint)
    content = data.get("content") or "id-only"
    if content not in CONTENTS:
        raise Unprocessable(
            "YL-1304",
            path="content",
            value=content,
            reason="empty, id-only or full-resource",
            expression=["Subscription.content"],
        )
    for i, (name, value) in enumerate(_headers(data)):
        if not _HEADER.match(f"{name}: {value}") or name.lower() in _RESERVED:
            raise Unprocessable(
                "YL-1304",
                path=f"parameter[{i}]",
                value=name,
                reason="an HTTP header and a one-line value, not a reserved one",
                expression=[f"Subscription.parameter[{i}]"],
            )
    for field, high in (("heartbeatPeriod", 86_400), ("timeout", 300), ("maxCount", 1000)):
        number = data.get(field)
        if number is not None and not (isinstance(number, int) and 0 < number <= high):
            raise Unprocessable(
                "YL-1304",
                path=field,
                value=number,
                reason=f"a whole number from 1 to {high}",
                expression=[f"Subscription.{field}"],
            )


def _check_endpoint(channel: str, endpoint: str) -> None:
    def refuse(reason: str) -> None:
        raise Unprocessable(
            "YL-1303",
            endpoint=endpoint or "(none)",
            channel=channel,
            reason=reason,
            expression=["Subscription.endpoint"],
        )

    if channel == "websocket":
        if endpoint:
            refuse("a websocket subscription has no endpoint: the client binds to it with a token")
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        refuse("an absolute http or https URL is needed")
    if parts.username or parts.password:
        refuse("credentials belong in a header parameter, not in the URL")


class SubscriptionRules:
    """The hooks of Subscription writes and reads (the owner's own only)."""

    def install(self, service: FhirService) -> None:
        stamp: Callable[..., dict[str, str] | None] | None = service.writer.owner_tag

        def owner_tag(ctx: RequestContext, resource_type: str, data: dict[str, Any]) -> dict[str, str] | None:
            if resource_type == "Subscription":
                client = ctx.principal.client_id if ctx.principal is not None else "anonymous"
                return {"system": OWNER_SYSTEM, "code": client}
            return stamp(ctx, resource_type, data) if stamp is not None else None

        service.writer.owner_tag = owner_tag
        hooks = service.hooks
        hooks.register(Pointcut.BEFORE_WRITE, self.before_write)
        hooks.register(Pointcut.BEFORE_SEARCH, self.before_search)
        hooks.register(Pointcut.BEFORE_READ_RESPONSE, self.before_read)

    @staticmethod
    def _others(ctx: RequestContext) -> bool:
        """Whether the caller is restricted to its own subscriptions (all but admins)."""
        return ctx.principal is not None and ctx.principal.role is not Role.ADMIN

    def before_write(
        self, ctx: RequestContext, resource_type: str, data: dict[str, Any] | None, existing: StoredResource | None
    ) -> None:
        if resource_type == "SubscriptionTopic":  # the topics are the files in profiles/ (GET SubscriptionTopic)
            raise MethodNotAllowed("YL-0205", what="a write of SubscriptionTopic (topics are read-only)")
        if resource_type != "Subscription":
            return
        if existing is not None and existing.body is not None and self._others(ctx):
            assert ctx.principal is not None
            if owner_of(orjson.loads(existing.body)) != ctx.principal.client_id:
                raise NotFound("YL-0201", type=resource_type, id=existing.res_id)
        if data is not None:
            check(data)

    def before_search(self, ctx: RequestContext, query: SearchQuery) -> None:
        if query.resource_type != "Subscription" or not self._others(ctx):
            return
        assert ctx.principal is not None
        own = parse_criterion("Subscription", "_tag", f"{OWNER_SYSTEM}|{ctx.principal.client_id}")
        assert own is not None
        query.criteria.append(own)

    def before_read(self, ctx: RequestContext, stored: StoredResource) -> None:
        if stored.res_type != "Subscription" or not self._others(ctx) or stored.body is None:
            return
        assert ctx.principal is not None
        if owner_of(orjson.loads(stored.body)) != ctx.principal.client_id:
            raise Hidden


__all__ = ["CHANNELS", "OWNER_SYSTEM", "Subscription", "SubscriptionRules", "check", "parse", "topics"]
