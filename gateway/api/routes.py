"""The route table of the FHIR REST API (FHIR R5 http page), in matching order.

Literal segments (``metadata``, ``_history``, ``_search``, ``$op``) come before ``{id}`` so
they are never taken for resource ids.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.interactions import instance, system, type_level
from gateway.api.operations import OPERATIONS
from gateway.errors import NotFound


async def _operation(request: Request) -> Response:
    name = request.path_params["op"]
    op = OPERATIONS.get(name)
    level = "instance" if "id" in request.path_params else ("type" if "type" in request.path_params else "system")
    if op is None or level not in op.levels:
        raise NotFound("YL-0204", op=f"${name}")
    return await op.handler(request)


ROUTES = [
    Route("/fhir/metadata", system.metadata, methods=["GET"]),
    Route("/fhir", system.bundle, methods=["POST"]),
    Route("/fhir/", system.bundle, methods=["POST"]),
    Route("/fhir/_history", system.history, methods=["GET"]),
    Route("/fhir/${op}", _operation, methods=["GET", "POST"]),
    Route("/fhir/{type}/_search", type_level.search_post, methods=["POST"]),
    Route("/fhir/{type}/_history", type_level.history, methods=["GET"]),
    Route("/fhir/{type}/${op}", _operation, methods=["GET", "POST"]),
    Route("/fhir/{type}", type_level.search, methods=["GET"]),
    Route("/fhir/{type}", type_level.create, methods=["POST"]),
    Route("/fhir/{type}", type_level.conditional_update, methods=["PUT"]),
    Route("/fhir/{type}", type_level.conditional_delete, methods=["DELETE"]),
    Route("/fhir/{type}/{id}/_history", instance.history, methods=["GET"]),
    Route("/fhir/{type}/{id}/_history/{vid}", instance.vread, methods=["GET"]),
    Route("/fhir/{type}/{id}/${op}", _operation, methods=["GET", "POST"]),
    Route("/fhir/{type}/{id}", instance.read, methods=["GET"]),
    Route("/fhir/{type}/{id}", instance.update, methods=["PUT"]),
    Route("/fhir/{type}/{id}", instance.patch, methods=["PATCH"]),
    Route("/fhir/{type}/{id}", instance.delete, methods=["DELETE"]),
]
