"""No secrets in logs: tokens, assertions, secrets and Authorization headers are redacted
from every log record, exception text included."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.hooks import Hooks, Pointcut, RequestContext
from gateway.security.redact import RedactingFilter, redact

from .conftest import Keys, add_jwt_client, add_secret_client, assertion, token_form


def test_errors_provoked_with_a_token_log_no_token(
    tmp_path: Path, rsa_keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.app import create_app
    from gateway.settings import Settings

    database = f"sqlite:///{tmp_path / 'y.sqlite'}"
    client_id = add_jwt_client(database, tmp_path, rsa_keys)
    secret_id, secret = add_secret_client(database)

    def explode(ctx: RequestContext) -> None:
        if ctx.resource_type == "Observation":  # a bug that puts the request headers in its message
            raise RuntimeError(f"boom with {dict(ctx.extra['headers'])}")

    hooks = Hooks()
    hooks.register(Pointcut.REQUEST_RECEIVED, explode)
    app = create_app(Settings(database=database, insecure_dev=False), hooks=hooks)
    basic = base64.b64encode(f"{secret_id}:{secret}".encode()).decode()
    with caplog.at_level(logging.DEBUG), TestClient(app, raise_server_exceptions=False) as client:
        signed = assertion(rsa_keys, client_id)
        token = client.post("/auth/token", data=token_form(signed)).json()["access_token"]
        replay = client.post("/auth/token", data=token_form(signed))  # refused: replay
        assert replay.status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/fhir/Observation", headers=headers).status_code == 500
        assert client.get("/fhir/Patient/missing", headers=headers).status_code == 404
        assert client.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
        wrong = {"Authorization": f"Basic {base64.b64encode(f'{secret_id}:{secret}x'.encode()).decode()}"}
        assert client.post("/auth/token", data={"grant_type": "client_credentials"}, headers=wrong).status_code == 401
        assert (
            client.post(
                "/auth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
            ).status_code
            == 200
        )
        logging.getLogger("yaolian.test").info("request had Authorization: Bearer %s and secret=%s", token, secret)
    assert "boom with" in caplog.text  # the failure itself is logged ...
    for leaked in (token, signed, secret, basic, token.split(".")[2]):
        assert leaked not in caplog.text  # ... without what would let someone act as the client
        assert all(leaked not in record.getMessage() for record in caplog.records)
    assert "[redacted]" in caplog.text


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def-ghi_jkl",
        "authorization=Basic dXNlcjpwYXNz",
        "client_assertion=eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJ4In0.c2ln&scope=x",
        "client_secret=s3cr3t-VALUE",
        '{"access_token": "opaque-value-1"}',
        "Headers({'authorization': 'Bearer opaque-value-2'})",
    ],
)
def test_the_patterns_that_are_redacted(text: str) -> None:
    clean = redact(text)
    for secret in (
        "abc.def-ghi_jkl",
        "dXNlcjpwYXNz",
        "eyJhbGciOiJSUzM4NCJ9",
        "s3cr3t-VALUE",
        "opaque-value-1",
        "opaque-value-2",
    ):
        assert secret not in clean
    assert "[redacted]" in clean


def test_the_filter_form_for_handlers_configured_elsewhere() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", ("Bearer abc",), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "token Bearer [redacted]"
