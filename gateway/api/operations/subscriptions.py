"""``GET Subscription/{id}/$status`` and ``GET Subscription/{id}/$events`` (R5; issue 16).

The work is :mod:`gateway.events.status`'s; this module only reads the request and answers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context, in_thread, service
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest
from gateway.events.status import events_bundle, status_bundle


def _id(request: Request, op: str) -> str:
    rtype = request.path_params.get("type")
    rid = request.path_params.get("id")
    if rtype != "Subscription" or not rid:
        raise BadRequest("YL-0404", name=op, value=str(rtype), reason=f"only Subscription/{{id}}/{op}")
    return str(rid)


async def status(request: Request) -> Response:
    rid = _id(request, "$status")
    ctx = context(request, "operation", "Subscription")
    bundle = await in_thread(status_bundle, service(request), rid, ctx)
    return fhir_response(request, orjson.dumps(bundle))


async def events(request: Request) -> Response:
    rid = _id(request, "$events")
    ctx = context(request, "operation", "Subscription")
    params = {k: v for k, v in request.query_params.items()}
    bundle = await in_thread(events_bundle, service(request), rid, params, ctx)
    return fhir_response(request, orjson.dumps(bundle))


async def ws_binding_token(request: Request) -> Response:
    """``Subscription/{id}/$get-ws-binding-token``: a token the owner binds a websocket with."""
    rid = _id(request, "$get-ws-binding-token")
    ctx = context(request, "operation", "Subscription")
    dispatcher = request.app.state.dispatcher
    if dispatcher is None:
        raise BadRequest("YL-1302", channel="websocket", extra="(subscriptions are off in this process)")
    await in_thread(service(request).read, "Subscription", rid, ctx)  # its owner's only (404 otherwise)
    token, expires = await in_thread(dispatcher.channels["websocket"].token, rid)
    ws_base = ctx.base_url.replace("https://", "wss://").replace("http://", "ws://")
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "token", "valueString": token},
            {
                "name": "expiration",
                "valueDateTime": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            {"name": "subscription", "valueString": f"Subscription/{rid}"},
            {"name": "websocket-url", "valueUrl": f"{ws_base}/ws"},
        ],
    }
    return fhir_response(request, orjson.dumps(parameters))
