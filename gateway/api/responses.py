"""FHIR responses: format conversion, ETag/Last-Modified/Location, and ``Prefer: return``."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.formats import JSON, render, response_format
from gateway.errors import Issue, operation_outcome
from gateway.service.writes import WriteResult
from gateway.store.base import StoredResource


def _http_date(instant: str) -> str:
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return format_datetime(moment, usegmt=True)


def fhir_response(request: Request, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    fmt = response_format(request)
    return Response(
        render(body, fmt),
        status_code=status,
        media_type=f"{fmt};charset=utf-8" if fmt != JSON else JSON + ";charset=utf-8",
        headers=headers,
    )


def resource_response(
    request: Request,
    stored: StoredResource,
    *,
    status: int = 200,
    location: bool = False,
    issues: list[Issue] | None = None,
) -> Response:
    headers = {"ETag": stored.etag, "Last-Modified": _http_date(stored.last_updated)}
    if location:
        base = request.state.base_url
        headers["Location"] = f"{base}/{stored.res_type}/{stored.res_id}/_history/{stored.version}"
        headers["Content-Location"] = headers["Location"]
    prefer = request.headers.get("prefer", "")
    if "return=minimal" in prefer:
        return Response(status_code=status, headers=headers)
    if "return=OperationOutcome" in prefer:
        return fhir_response(request, orjson.dumps(operation_outcome(issues or [])), status, headers)
    return fhir_response(request, stored.body or b"{}", status, headers)


def written_response(request: Request, result: WriteResult) -> Response:
    """The answer to a create, update or patch: 201 + Location when it created, else 200."""
    return resource_response(
        request, result.stored, status=201 if result.created else 200, location=result.created, issues=result.issues
    )
