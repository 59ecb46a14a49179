"""System-level interactions: capabilities, batch/transaction, system history."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import base_url, context, in_thread, service
from gateway.api.formats import body_json, request_format
from gateway.api.operations.prescriptions import federated_entries
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest


async def metadata(request: Request) -> Response:
    cached = request.app.state.capability_cache.get(base_url(request))
    if cached is None:
        from gateway.api.operations import OPERATIONS
        from gateway.clock import now_instant
        from gateway.service.capability import capability_statement

        security = None
        if not request.app.state.settings.insecure_dev:
            from gateway.security.smart import capability_security

            security = capability_security(base_url(request))
        from gateway.events.topics import topics

        statement = capability_statement(
            base_url(request),
            subscription_topics=sorted(topics()),
            security=security,
            operations=[(op.name, op.definition, level, op.types) for op in OPERATIONS.values() for level in op.levels],
            profiles_by_type=request.app.state.profiles_by_type,
            date=now_instant()[:10],
        )
        cached = orjson.dumps(statement)
        request.app.state.capability_cache[base_url(request)] = cached
    return fhir_response(request, cached)


async def bundle(request: Request) -> Response:
    ctx = context(request, "transaction")
    raw = body_json(await request.body(), request_format(request))
    if not raw.strip():
        raise BadRequest("YL-0102")
    answered = await federated_entries(request, ctx, raw)
    body = await in_thread(service(request).process_bundle, raw, ctx, answered=answered)
    return fhir_response(request, body)


async def history(request: Request) -> Response:
    ctx = context(request, "history-system")
    body = await in_thread(service(request).history, None, None, list(request.query_params.multi_items()), ctx)
    return fhir_response(request, body)
