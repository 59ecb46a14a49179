"""Type-level interactions: create (plain and conditional), search (GET and POST),
conditional update and delete, type history."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context, in_thread, reading, service
from gateway.api.formats import parse_resource, request_format
from gateway.api.operations.prescriptions import federated_search
from gateway.api.responses import fhir_response, written_response
from gateway.errors import BadRequest
from gateway.service.writes import require_type

FEDERATED_TYPES = frozenset({"MedicationRequest", "MedicationDispense"})


async def create(request: Request) -> Response:
    rtype = request.path_params["type"]
    ctx = context(request, "create", rtype)
    require_type(rtype)
    body = parse_resource(await request.body(), request_format(request))
    svc = service(request)
    if_none_exist = request.headers.get("if-none-exist")

    result = await in_thread(
        svc.write, ctx, lambda tx: svc.writer.create(tx, ctx, rtype, body, if_none_exist=if_none_exist)
    )
    return written_response(request, result)


async def search(request: Request) -> Response:
    rtype = request.path_params["type"]
    if rtype in FEDERATED_TYPES:  # issue 13: a patient's prescriptions across live members
        federated = await federated_search(request, rtype)
        if federated is not None:
            return federated
    ctx = context(request, "search-type", rtype)
    params = list(request.query_params.multi_items())
    body = await reading(request, service(request).search, rtype, params, ctx)
    return fhir_response(request, body)


async def search_post(request: Request) -> Response:
    rtype = request.path_params["type"]
    ctx = context(request, "search-type", rtype)
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest(
            "YL-0404",
            name="Content-Type",
            value=content_type,
            reason="POST _search takes application/x-www-form-urlencoded",
        )
    if rtype in FEDERATED_TYPES:  # issue 13, as for GET
        federated = await federated_search(request, rtype)
        if federated is not None:
            return federated
    form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    params = list(request.query_params.multi_items()) + form
    body = await reading(request, service(request).search, rtype, params, ctx)
    return fhir_response(request, body)


def _criteria(request: Request) -> str:
    query = request.url.query
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in ("_format", "_pretty")]
    if not kept:
        raise BadRequest(
            "YL-0404",
            name="criteria",
            value=query,
            reason="a conditional interaction needs search criteria",
        )
    from urllib.parse import urlencode

    return urlencode(kept)


async def conditional_update(request: Request) -> Response:
    rtype = request.path_params["type"]
    ctx = context(request, "update", rtype)
    require_type(rtype)
    body = parse_resource(await request.body(), request_format(request))
    criteria = _criteria(request)
    svc = service(request)

    if_match = request.headers.get("if-match")
    result = await in_thread(
        svc.write, ctx, lambda tx: svc.writer.conditional_update(tx, ctx, rtype, criteria, body, if_match=if_match)
    )
    return written_response(request, result)


async def conditional_delete(request: Request) -> Response:
    rtype = request.path_params["type"]
    ctx = context(request, "delete", rtype)
    require_type(rtype)
    criteria = _criteria(request)
    svc = service(request)

    await in_thread(svc.write, ctx, lambda tx: svc.writer.conditional_delete(tx, ctx, rtype, criteria))
    return Response(status_code=204)


async def history(request: Request) -> Response:
    rtype = request.path_params["type"]
    ctx = context(request, "history-type", rtype)
    body = await in_thread(service(request).history, rtype, None, list(request.query_params.multi_items()), ctx)
    return fhir_response(request, body)
