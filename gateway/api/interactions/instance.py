"""Instance-level interactions: read, vread, update, patch, delete, instance history."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context, in_thread, service
from gateway.api.formats import parse_resource, request_format
from gateway.api.responses import fhir_response, resource_response, written_response
from gateway.errors import UnsupportedMedia


async def read(request: Request) -> Response:
    rtype, rid = request.path_params["type"], request.path_params["id"]
    ctx = context(request, "read", rtype)
    stored = await in_thread(service(request).read, rtype, rid, ctx)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and if_none_match.strip() == stored.etag:
        return Response(status_code=304, headers={"ETag": stored.etag})
    summary, elements = request.query_params.get("_summary"), request.query_params.get("_elements")
    if summary or elements:
        from gateway.service.projection import project

        assert stored.body is not None, "read() answers a deleted resource with 410 Gone"
        body = project(
            stored.body,
            rtype,
            None if summary == "false" else summary,
            elements.split(",") if elements else None,
        )
        return fhir_response(request, body, 200, {"ETag": stored.etag})
    return resource_response(request, stored)


async def vread(request: Request) -> Response:
    p = request.path_params
    ctx = context(request, "vread", p["type"])
    stored = await in_thread(service(request).vread, p["type"], p["id"], p["vid"], ctx)
    return resource_response(request, stored)


async def update(request: Request) -> Response:
    rtype, rid = request.path_params["type"], request.path_params["id"]
    ctx = context(request, "update", rtype)
    body = parse_resource(await request.body(), request_format(request))
    svc = service(request)
    if_match = request.headers.get("if-match")
    result = await in_thread(svc.write, ctx, lambda tx: svc.writer.update(tx, ctx, rtype, rid, body, if_match=if_match))
    return written_response(request, result)


async def patch(request: Request) -> Response:
    rtype, rid = request.path_params["type"], request.path_params["id"]
    ctx = context(request, "patch", rtype)
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/json-patch+json":
        raise UnsupportedMedia("YL-0601")
    raw = await request.body()
    svc = service(request)
    if_match = request.headers.get("if-match")
    result = await in_thread(svc.write, ctx, lambda tx: svc.writer.patch(tx, ctx, rtype, rid, raw, if_match=if_match))
    return written_response(request, result)


async def delete(request: Request) -> Response:
    rtype, rid = request.path_params["type"], request.path_params["id"]
    ctx = context(request, "delete", rtype)
    svc = service(request)
    if_match = request.headers.get("if-match")
    stored = await in_thread(svc.write, ctx, lambda tx: svc.writer.delete(tx, ctx, rtype, rid, if_match=if_match))
    headers = {"ETag": stored.etag} if stored is not None else {}
    return Response(status_code=204, headers=headers)


async def history(request: Request) -> Response:
    rtype, rid = request.path_params["type"], request.path_params["id"]
    ctx = context(request, "history-instance", rtype)
    body = await in_thread(service(request).history, rtype, rid, list(request.query_params.multi_items()), ctx)
    return fhir_response(request, body)
