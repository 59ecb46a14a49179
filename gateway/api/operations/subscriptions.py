"""``GET Subscription/{id}/$status`` and ``GET Subscription/{id}/$events`` (R5; issue 16).

The work is :mod:`gateway.events.status`'s; this module only reads the request and answers.
"""

from __future__ import annotations

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
