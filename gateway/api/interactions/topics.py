"""``GET /fhir/SubscriptionTopic[?url=&_id=&status=&resource=]``, ``POST …/_search`` and
``GET /fhir/SubscriptionTopic/{id}``, answered from the topic files in ``profiles/`` (the
topics a Subscription may name are the ones the dispatcher matches, not rows of the store).

Topics are definitions without patient data: any client with a valid token may read them (it
must know them to subscribe). They are read-only: create, update, patch and delete answer 405
(and a Bundle entry writing one is refused by :class:`gateway.events.subscriptions.SubscriptionRules`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import authenticate, base_url
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest, NotFound
from gateway.events.topics import SD, topic_resources


def _triggers(topic: dict[str, Any]) -> list[str]:
    """``resource`` matches the trigger's type by name or by StructureDefinition URL."""
    names = [str(t.get("resource", "")) for t in topic.get("resourceTrigger") or ()]
    return [*names, *(n.removeprefix(SD) for n in names)]


#: search parameter -> what of a topic it compares (exact match, any of comma-separated values)
_SEARCH: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "_id": lambda t: [str(t["id"])],
    "url": lambda t: [str(t["url"])],
    "status": lambda t: [str(t.get("status", ""))],
    "resource": _triggers,
}
_RESULT = ("_format", "_pretty", "_count")


def _matches(topic: dict[str, Any], params: list[tuple[str, str]]) -> bool:
    for name, value in params:
        if name in _RESULT:
            continue
        if not set(value.split(",")) & set(_SEARCH[name](topic)):
            return False
    return True


async def search(request: Request) -> Response:
    authenticate(request)
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        params += parse_qsl((await request.body()).decode(), keep_blank_values=True)
    for name, _ in params:
        if name not in _SEARCH and name not in _RESULT:
            raise BadRequest("YL-0400", name=name, type="SubscriptionTopic", expression=[name])
    count = next((value for name, value in params if name == "_count"), None)
    if count is not None and not count.isdigit():
        raise BadRequest("YL-0401", value=count, name="_count", reason="a non-negative integer", expression=["_count"])
    found = [t for t in topic_resources() if _matches(t, params)]
    base = base_url(request)
    shown = found if count is None else found[: int(count)]
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {"fullUrl": f"{base}/SubscriptionTopic/{t['id']}", "resource": t, "search": {"mode": "match"}}
            for t in shown
        ],
    }
    return fhir_response(request, orjson.dumps(bundle))


async def read(request: Request) -> Response:
    authenticate(request)
    rid = request.path_params["id"]
    for topic in topic_resources():
        if topic["id"] == rid:
            return fhir_response(request, orjson.dumps(topic))
    raise NotFound("YL-0201", type="SubscriptionTopic", id=rid)


async def refuse(request: Request) -> Response:
    """Writes: 405 with the methods the route takes (to a caller with a token only)."""
    authenticate(request)
    allow = "GET, HEAD" if "id" in request.path_params else "GET, HEAD, POST"
    raise HTTPException(405, headers={"Allow": allow})
