"""The route table of the FHIR REST API (FHIR R5 http page), in matching order.

Literal segments (``metadata``, ``_history``, ``_search``, ``$op``) come before ``{id}`` so
they are never taken for resource ids, and ``{type}`` only matches a name that starts with a
capital letter (as every resource type does), so ``POST /fhir/metadata`` or
``DELETE /fhir/_history`` is a 405 for the literal route rather than an interaction on a
resource type called ``metadata``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.context import authenticate
from gateway.api.interactions import audit, instance, system, type_level
from gateway.api.operations import OPERATIONS
from gateway.errors import NotFound


class ResourceTypeConvertor(Convertor[str]):
    regex = "[A-Z][A-Za-z0-9]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("fhirtype", ResourceTypeConvertor())


async def _operation(request: Request) -> Response:
    name = request.path_params["op"]
    op = OPERATIONS.get(name)
    level = "instance" if "id" in request.path_params else ("type" if "type" in request.path_params else "system")
    wrong_type = level != "system" and op is not None and op.types and request.path_params["type"] not in op.types
    if op is None or level not in op.levels or wrong_type:
        authenticate(request)  # a caller without a token learns nothing, not even which operations exist
        raise NotFound("YL-0204", op=f"${name}")
    return await op.handler(request)


def _route(path: str, **handlers: Callable[[Request], Awaitable[Response]]) -> Route:
    """One route per path dispatching on the method, so a 405 lists every allowed method."""

    async def endpoint(request: Request) -> Response:
        return await handlers["GET" if request.method == "HEAD" else request.method](request)

    return Route(path, endpoint, methods=list(handlers))


ROUTES = [
    _route("/fhir/metadata", GET=system.metadata),
    _route("/fhir", POST=system.bundle),
    _route("/fhir/", POST=system.bundle),
    _route("/fhir/_history", GET=system.history),
    _route("/fhir/${op}", GET=_operation, POST=_operation),
    # the audit trail, from its own table (auditors only; the gateway alone writes AuditEvents)
    _route("/fhir/AuditEvent", GET=audit.search, POST=audit.refuse, PUT=audit.refuse, DELETE=audit.refuse),
    _route("/fhir/AuditEvent/_search", POST=audit.search),
    _route("/fhir/AuditEvent/{id}", GET=audit.read, PUT=audit.refuse, PATCH=audit.refuse, DELETE=audit.refuse),
    _route("/fhir/{type:fhirtype}/_search", POST=type_level.search_post),
    _route("/fhir/{type:fhirtype}/_history", GET=type_level.history),
    _route("/fhir/{type:fhirtype}/${op}", GET=_operation, POST=_operation),
    _route(
        "/fhir/{type:fhirtype}",
        GET=type_level.search,
        POST=type_level.create,
        PUT=type_level.conditional_update,
        DELETE=type_level.conditional_delete,
    ),
    _route("/fhir/{type:fhirtype}/{id}/_history", GET=instance.history),
    _route("/fhir/{type:fhirtype}/{id}/_history/{vid}", GET=instance.vread),
    _route("/fhir/{type:fhirtype}/{id}/${op}", GET=_operation, POST=_operation),
    _route(
        "/fhir/{type:fhirtype}/{id}",
        GET=instance.read,
        PUT=instance.update,
        PATCH=instance.patch,
        DELETE=instance.delete,
    ),
]
