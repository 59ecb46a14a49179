"""Per-request context shared by the interaction handlers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.errors import BadRequest
from gateway.hooks import Pointcut, RequestContext
from gateway.principal import Principal
from gateway.security.authn import Authenticator
from gateway.service.fhir_service import Cancellation, FhirService, cancellable


def service(request: Request) -> FhirService:
    return request.app.state.service  # type: ignore[no-any-return]


def base_url(request: Request) -> str:
    """The FHIR base of links and Location: YAOLIAN_BASE_URL, or - only for a Host header in
    ``allowed_hosts`` - the request's own (a forged Host must not reach a link; issue 12)."""
    settings = request.app.state.settings
    if settings.base_url:
        return str(settings.base_url).rstrip("/")
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name.lower() not in {h.lower() for h in settings.allowed_hosts}:
        raise BadRequest("YL-0806", host=host[:100])
    return str(request.base_url).rstrip("/") + "/fhir"


def token_url(request: Request) -> str:
    from gateway.security.smart import token_url as beside

    return beside(base_url(request))


def authenticate(request: Request) -> Principal:
    """Who is asking (the bearer token's client), or Unauthorized (401) / TooManyRequests (429);
    ``insecure_dev``: the INSECURE_DEV principal."""
    authenticator: Authenticator = request.app.state.authenticator
    source_ip = request.client.host if request.client else None
    # the token URL (for the 401's message) only when there is no token: building it costs
    return authenticator.authenticate(request.headers.get("authorization"), source_ip, lambda: token_url(request))


def context(request: Request, interaction: str, resource_type: str | None = None) -> RequestContext:
    """The one place every FHIR interaction builds its context; it authenticates first, so a
    call without a valid token goes no further."""
    principal = authenticate(request)
    prefer = request.headers.get("prefer", "")
    strict: bool | None = None
    if "handling=strict" in prefer:
        strict = True
    elif "handling=lenient" in prefer:
        strict = False
    ctx = RequestContext(
        base_url=base_url(request),
        interaction=interaction,
        resource_type=resource_type,
        principal=principal,
        strict_handling=strict if strict is not None else request.app.state.settings.search_handling == "strict",
        extra={"headers": request.headers},
    )
    request.state.base_url = ctx.base_url
    hooks = service(request).hooks
    if Pointcut.REQUEST_RECEIVED in hooks:
        hooks.run(Pointcut.REQUEST_RECEIVED, ctx)
    return ctx


P = ParamSpec("P")
R = TypeVar("R")


async def in_thread(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Database and validation work runs in the thread pool, never on the event loop (typed as
    ``func`` itself: its arguments are checked and its result keeps its type)."""
    return await run_in_threadpool(func, *args, **kwargs)


async def reading(request: Request, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """:func:`in_thread` for a read the database stops when the client leaves (issue 12: a
    costly search kept running after its client had gone): while it runs, the request is
    watched for a disconnect, which cancels its queries (see ``Cancellation``). Only once the
    body has been read (the watch consumes what the client sends)."""
    token = Cancellation()
    limit = request.app.state.settings.statement_timeout_ms
    if limit > 0:  # one budget for the page, its count and its _include rounds
        token.deadline = time.monotonic() + limit / 1000
    with cancellable(token):  # the thread's context is copied here, token included
        work = asyncio.ensure_future(in_thread(func, *args, **kwargs))
    watch = asyncio.ensure_future(_cancel_when_gone(request, token))
    try:
        return await work
    finally:
        watch.cancel()


WATCH_AFTER = 1.0  # seconds: a read that answers sooner is never watched


async def _cancel_when_gone(request: Request, token: Cancellation) -> None:
    # Only a read still running after a second is watched: a fast search costs no polling,
    # and an ASGI wrapper that answers ``receive`` with an early disconnect once it has
    # replayed a buffered body (the conformance kit's Rewrite does) cannot cancel it.
    await asyncio.sleep(WATCH_AFTER)
    while not await request.is_disconnected():
        await asyncio.sleep(0.2)
    token.cancel()
