"""Per-request context shared by the interaction handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.hooks import Pointcut, RequestContext
from gateway.principal import Principal
from gateway.security.authn import Authenticator
from gateway.service.fhir_service import FhirService


def service(request: Request) -> FhirService:
    return request.app.state.service  # type: ignore[no-any-return]


def base_url(request: Request) -> str:
    configured = request.app.state.settings.base_url
    if configured:
        return str(configured).rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def token_url(request: Request) -> str:
    from gateway.security.smart import token_url as beside

    return beside(base_url(request))


def authenticate(request: Request) -> Principal:
    """Who is asking (the bearer token's client), or Unauthorized (401) / TooManyRequests (429);
    ``insecure_dev``: the INSECURE_DEV principal."""
    authenticator: Authenticator = request.app.state.authenticator
    source_ip = request.client.host if request.client else None
    return authenticator.authenticate(request.headers.get("authorization"), source_ip, token_url(request))


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
