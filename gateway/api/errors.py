"""The one place where exceptions become OperationOutcome responses at the HTTP boundary.

4xx are logged without a trace, 5xx with one; an unexpected exception leaks nothing but a
reference the operator can find in the log.
"""

from __future__ import annotations

import logging
import uuid

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.formats import JSON, XML, render
from gateway.errors import FhirError, Issue, MethodNotAllowed, TooManyRequests, Unauthorized, issue, operation_outcome
from gateway.store.errors import InvalidSearchValue

log = logging.getLogger("yaolian.http")


def _format_for_error(request: Request) -> str:
    try:
        from gateway.api.formats import response_format

        return response_format(request)
    except FhirError:
        return JSON


def outcome_response(
    request: Request, issues: list[Issue], status: int, headers: dict[str, str] | None = None
) -> Response:
    fmt = _format_for_error(request)
    body = orjson.dumps(operation_outcome(issues))
    try:
        content = render(body, fmt)
    except Exception:  # never fail while reporting a failure
        content, fmt = body, JSON
    return Response(
        content,
        status_code=status,
        media_type=f"{fmt};charset=utf-8" if fmt in (JSON, XML) else fmt,
        headers=headers,
    )


async def _fhir_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    log.info(
        "%s %s -> %s %s",
        request.method,
        request.url.path,
        exc.status,
        exc.issues[0].en if exc.issues else "",
    )
    return outcome_response(request, exc.issues, exc.status, _headers(exc))


#: RFC 6750 section 3: what a 401 of the FHIR API tells the client to do - with an error code
#: when a token was sent and refused; without one when none was sent (section 3.1: a request
#: that lacks any authentication information gets no error code).
WWW_AUTHENTICATE = 'Bearer realm="yaolian", error="invalid_token"'
WWW_AUTHENTICATE_NO_TOKEN = 'Bearer realm="yaolian"'


def _headers(exc: FhirError) -> dict[str, str] | None:
    if isinstance(exc, Unauthorized):
        missing = any(i.error_code == "YL-0900" for i in exc.issues)
        return {"WWW-Authenticate": WWW_AUTHENTICATE_NO_TOKEN if missing else WWW_AUTHENTICATE}
    if isinstance(exc, TooManyRequests):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, MethodNotAllowed):  # RFC 9110: a 405 says what is allowed; the core raises
        return {"Allow": "GET, HEAD"}  # it only for what is read-only (served definitions, topics)
    return None


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        found = issue("YL-0205", what=f"{request.method} {request.url.path}")
        found.code = "not-found"
        return outcome_response(request, [found], 404)
    if exc.status_code == 405:  # keep Starlette's Allow header (RFC 9110 requires it)
        found = issue("YL-0205", what=f"{request.method} {request.url.path}")
        return outcome_response(request, [found], 405, dict(exc.headers or {}))
    return outcome_response(
        request, [Issue("error", "processing", en=str(exc.detail), zh=str(exc.detail))], exc.status_code
    )


async def _invalid_search_value(request: Request, exc: Exception) -> Response:
    """The store's own error for a value it cannot compare (the query parser normally reports it first)."""
    assert isinstance(exc, InvalidSearchValue)
    found = issue("YL-0401", value=exc.value, name=exc.name, reason=exc.reason, expression=[exc.name])
    log.info("%s %s -> 400 %s", request.method, request.url.path, found.en)
    return outcome_response(request, [found], 400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    reference = uuid.uuid4().hex[:12]
    log.exception("unexpected error %s on %s %s", reference, request.method, request.url.path)
    return outcome_response(request, [issue("YL-0001", ref=reference)], 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(FhirError, _fhir_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(InvalidSearchValue, _invalid_search_value)
    app.add_exception_handler(Exception, _unexpected)
