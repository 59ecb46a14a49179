"""``Patient/$prescriptions`` (type level, GET or POST form): every prescription and dispense of
one patient across the alliance — the gateway's store and every live member, asked in parallel
(:mod:`gateway.federation.fanout`) — as one searchset Bundle.

Also :func:`federated_search`, the branch ``MedicationRequest``/``MedicationDispense`` searches
on ``patient.identifier`` take once the registry has a live member (the local path is
untouched otherwise).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context
from gateway.api.responses import fhir_response
from gateway.federation.fanout import Federation, parse_prescriptions, parse_type_search


def federation(request: Request) -> Federation:
    return request.app.state.federation  # type: ignore[no-any-return]


def no_cache(request: Request) -> bool:
    """``Cache-Control: no-cache`` (or ``no-store``): every live member is asked again."""
    directives = {d.strip().lower() for d in request.headers.get("cache-control", "").split(",")}
    return bool(directives & {"no-cache", "no-store"})


async def _params(request: Request) -> list[tuple[str, str]]:
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type == "application/x-www-form-urlencoded":
            params += parse_qsl((await request.body()).decode(), keep_blank_values=True)
    return [(k, v) for k, v in params if k not in ("_format", "_pretty")]


async def prescriptions(request: Request) -> Response:
    ctx = context(request, "operation", "Patient")
    fed = federation(request)
    query = parse_prescriptions(await _params(request), fed.settings)
    body = await fed.search(ctx, query, no_cache=no_cache(request), path="Patient/$prescriptions")
    return fhir_response(request, body)


async def federated_search(request: Request, resource_type: str) -> Response | None:
    """The federated answer of a type search that names the patient by identifier, or None
    when the search stays local (another search, or no live member)."""
    fed: Federation | None = getattr(request.app.state, "federation", None)
    if fed is None:
        return None
    query = parse_type_search(resource_type, await _params(request), fed.settings)
    if query is None or not await fed.has_live_members():
        return None
    ctx = context(request, "search-type", resource_type)
    body = await fed.search(ctx, query, no_cache=no_cache(request), path=resource_type)
    return fhir_response(request, body)
