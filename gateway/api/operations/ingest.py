"""``$ingest`` and ``$convert``: a member's raw HIS message in, FHIR out.

``POST /fhir/$ingest?adapter=NAME`` journals the body, converts and stores it, and answers the
transaction-response Bundle (or an OperationOutcome saying where the input is wrong).
``POST /fhir/$convert?adapter=NAME`` converts only and stores nothing.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context, in_thread
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest, Unprocessable, operation_outcome
from gateway.ingest.journal import ACCEPTED
from gateway.ingest.pipeline import convert


def _adapter_name(request: Request) -> str:
    name = request.query_params.get("adapter")
    if not name:
        raise BadRequest("YL-0404", name="adapter", value="", reason="name the adapter, e.g. ?adapter=hl7v2")
    return name


async def ingest(request: Request) -> Response:
    ctx = context(request, "operation")
    name = _adapter_name(request)
    raw = await request.body()
    if not raw:
        raise BadRequest("YL-0102")
    pipeline = request.app.state.ingest
    result = await in_thread(pipeline.ingest, name, raw, channel="http", ctx=ctx)
    if result.status != ACCEPTED:
        raise Unprocessable(result.issues)
    headers = {"X-Yaolian-Message": str(result.seq)}
    if result.duplicate:
        headers["X-Yaolian-Duplicate"] = "true"
    return fhir_response(request, result.reply or b"{}", 200, headers)


async def convert_only(request: Request) -> Response:
    context(request, "operation")
    name = _adapter_name(request)
    raw = await request.body()
    bundle, issues = await in_thread(convert, name, raw)
    if bundle is None:
        raise Unprocessable(issues)
    if issues:  # R5 Bundle.issues carries warnings about how the Bundle was built
        bundle = {**bundle, "issues": operation_outcome(issues)}
    return fhir_response(request, orjson.dumps(bundle))
