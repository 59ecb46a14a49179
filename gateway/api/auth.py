"""The authorization server's HTTP side (SMART Backend Services): ``POST /auth/token`` and
``GET /fhir/.well-known/smart-configuration``, both public. The work is in
:mod:`gateway.security.tokens`; this module only reads the request and writes OAuth answers.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.context import base_url, in_thread, token_url
from gateway.security.authn import Authenticator
from gateway.security.smart import smart_configuration
from gateway.security.tokens import OAuthError, parse_basic

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(error: OAuthError) -> Response:
    headers = dict(_NO_STORE)
    if error.basic and error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="yaolian"'
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def token(request: Request) -> Response:
    authenticator: Authenticator = request.app.state.authenticator
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "send the request as application/x-www-form-urlencoded")
        try:
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise OAuthError("invalid_request", "the body is not UTF-8") from None
        form: dict[str, str] = {}
        for name, value in pairs:
            if name in form:  # RFC 6749 3.2: parameters must not be repeated
                raise OAuthError("invalid_request", f"parameter {name} is repeated")
            form[name] = value
        basic = parse_basic(request.headers.get("authorization"))
        answer = await in_thread(authenticator.authority.token, form, basic, token_url(request))
    except OAuthError as error:
        return _oauth_error(error)
    return JSONResponse(answer, headers=_NO_STORE)


async def smart_config(request: Request) -> Response:
    return JSONResponse(smart_configuration(base_url(request)))


ROUTES = [
    Route("/auth/token", token, methods=["POST"]),
    Route("/fhir/.well-known/smart-configuration", smart_config, methods=["GET"]),
]
