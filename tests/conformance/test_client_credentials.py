"""--client-id/--client-secret: the token endpoint is discovered on the server under test, the token
is fetched from it (respx mocks that remote endpoint only) and the run uses it as a bearer token."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from typer.testing import CliRunner

from conformance.auth import AuthError, fetch_token, signing_available
from conformance.cli import app

from .conftest import ServerThread

TOKEN_URL = "https://auth.alliance.example/oauth/token"
TOKEN = "tok-vendor-a-1"


class Guarded:
    """A Yaolian behind a SMART-style guard: bearer TOKEN or 401 (metadata and discovery are public)."""

    def __init__(self, app: Any, smart_configuration: bool = True) -> None:
        self.app, self.smart_configuration, self.seen = app, smart_configuration, []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = dict(scope["headers"])
        if path.endswith("/.well-known/smart-configuration"):
            if self.smart_configuration:
                await _send(send, 200, {"token_endpoint": TOKEN_URL, "grant_types_supported": ["client_credentials"]})
            else:
                await _send(send, 404, {"resourceType": "OperationOutcome", "issue": []})
            return
        if path.endswith("/metadata"):
            await self.app(scope, receive, _with_oauth_uris(send) if not self.smart_configuration else send)
            return
        auth = headers.get(b"authorization", b"").decode()
        self.seen.append(auth)
        if auth != f"Bearer {TOKEN}":
            outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
            await _send(send, 401, outcome)
            return
        await self.app(scope, receive, send)


async def _send(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/fhir+json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _with_oauth_uris(send: Any) -> Callable[[dict[str, Any]], Any]:
    """Add rest.security oauth-uris to the CapabilityStatement (the discovery fallback)."""
    chunks: list[bytes] = []
    start: dict[str, Any] = {}

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        cs = json.loads(b"".join(chunks))
        ext = {
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": TOKEN_URL}],
        }
        cs["rest"][0].setdefault("security", {})["extension"] = [ext]
        await _send(send, start["status"], cs)

    return wrapped


def token_endpoint(request: httpx.Request) -> httpx.Response:
    form = dict(parse_qsl(request.content.decode()))
    basic = base64.b64encode(b"vendor-a:s3cret").decode()
    if form.get("grant_type") != "client_credentials" or request.headers.get("authorization") != f"Basic {basic}":
        return httpx.Response(401, json={"error": "invalid_client", "error_description": "bad client credentials"})
    return httpx.Response(200, json={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300})


@pytest.fixture
def token_server() -> Any:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        route = mock.post(TOKEN_URL).mock(side_effect=token_endpoint)
        yield route


def test_run_with_client_credentials(broken_base: Any, token_server: Any) -> None:
    guarded = Guarded(broken_base)
    with ServerThread(guarded, lifespan="off") as server:
        result = CliRunner().invoke(
            app,
            [
                "run",
                "--base-url",
                server.base_url,
                "--client-id",
                "vendor-a",
                "--client-secret",
                "s3cret",
                "--only",
                "security,interaction/Patient/read",
                "-q",
            ],
        )
    assert result.exit_code == 0, result.output
    assert token_server.call_count == 1
    form = dict(parse_qsl(token_server.calls[0].request.content.decode()))
    assert form == {"grant_type": "client_credentials", "scope": "system/*.cruds"}
    assert f"Bearer {TOKEN}" in guarded.seen  # the run used the token
    assert "" in guarded.seen  # and the security group tried without it


def test_discovery_from_the_capability_statement(broken_base: Any, token_server: Any) -> None:
    with ServerThread(Guarded(broken_base, smart_configuration=False), lifespan="off") as server:
        assert fetch_token(server.base_url, "vendor-a", client_secret="s3cret") == TOKEN


def test_wrong_secret_is_reported(broken_base: Any, token_server: Any) -> None:
    with ServerThread(Guarded(broken_base), lifespan="off") as server:
        with pytest.raises(AuthError, match="refused client 'vendor-a': HTTP 401 bad client credentials"):
            fetch_token(server.base_url, "vendor-a", client_secret="wrong")
        result = CliRunner().invoke(
            app, ["run", "--base-url", server.base_url, "--client-id", "vendor-a", "--client-secret", "x", "-q"]
        )
    assert result.exit_code == 2 and "could not get a token" in result.output


def test_key_without_pyjwt_says_so(tmp_path: Any) -> None:
    if signing_available():
        pytest.skip("PyJWT and cryptography are installed here")
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    with pytest.raises(AuthError, match="PyJWT and cryptography"):
        fetch_token("http://unused", "vendor-a", key_file=key, token_url=TOKEN_URL)
