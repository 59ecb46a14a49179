"""The auditors' view of the audit trail: ``GET /fhir/AuditEvent?patient=&agent=&date=``,
``POST /fhir/AuditEvent/_search`` and ``GET /fhir/AuditEvent/{id}``, answered from the audit
table (never the resource store), for role admin or regulator only (403 for other roles).
AuditEvents cannot be created, changed or deleted over REST (405): the gateway writes them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import authenticate, context, in_thread
from gateway.api.responses import fhir_response
from gateway.errors import NotFound
from gateway.security.audit import AuditTrail


def _trail(request: Request) -> AuditTrail:
    trail: Any = getattr(request.app.state, "audit", None)
    if trail is None:  # audit switched off: there is no trail to search
        raise NotFound("YL-0205", what=f"{request.method} {request.url.path} (the audit trail is off)")
    return trail  # type: ignore[no-any-return]


async def search(request: Request) -> Response:
    """``GET /fhir/AuditEvent?patient=&agent=&date=ge..&date=lt..`` (auditors only)."""
    ctx = context(request, "search-type", "AuditEvent")
    settings = request.app.state.settings
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        params += parse_qsl((await request.body()).decode(), keep_blank_values=True)
    trail = _trail(request)
    body = await in_thread(
        trail.search, params, ctx, default_count=settings.default_count, max_count=settings.max_count
    )
    return fhir_response(request, body)


async def read(request: Request) -> Response:
    ctx = context(request, "read", "AuditEvent")
    rid = request.path_params["id"]
    body = await in_thread(_trail(request).read, rid, ctx)
    if body is None:
        raise NotFound("YL-0201", type="AuditEvent", id=rid)
    return fhir_response(request, body)


async def refuse(request: Request) -> Response:
    """Create, update, patch, delete of an AuditEvent: 405, the gateway alone writes them (to a
    caller with a token: one without learns nothing of the API, as everywhere)."""
    authenticate(request)
    allow = "GET" if "id" in request.path_params else "GET, HEAD"
    raise HTTPException(405, headers={"Allow": allow})
