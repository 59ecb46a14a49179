"""Every FHIR call needs a token: the 401 a call without one gets (OperationOutcome plus
WWW-Authenticate) on every route of the API, the public endpoints, and insecure-dev."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gateway.api.routes import ROUTES
from gateway.hooks import Hooks, Pointcut, RequestContext
from gateway.principal import INSECURE_DEV

from .conftest import Keys, add_jwt_client, bearer, secure_client

HL7 = {"Content-Type": "x-application/hl7-v2+er7"}
SAMPLE = {"type": "MedicationRequest", "id": "rx-1", "vid": "1", "op": "validate"}


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from secure_client(f"sqlite:///{tmp_path_factory.mktemp('gate') / 'y.sqlite'}")


def _assert_401(response: Any, code: str = "YL-0900") -> None:
    assert response.status_code == 401, (response.request.method, response.request.url, response.text)
    # RFC 6750 3.1: no error code when no token was sent; invalid_token when one was refused
    expected = 'Bearer realm="yaolian"' if code == "YL-0900" else 'Bearer realm="yaolian", error="invalid_token"'
    assert response.headers["www-authenticate"] == expected
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == code
    assert outcome["issue"][0]["code"] in ("login", "expired")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/fhir/Patient/p1", None),
        ("GET", "/fhir/Patient?name=张", None),
        ("POST", "/fhir/Patient", {"resourceType": "Patient"}),
        ("PUT", "/fhir/Patient/p1", {"resourceType": "Patient", "id": "p1"}),
        ("DELETE", "/fhir/Patient/p1", None),
        ("POST", "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": []}),
        ("POST", "/fhir/$ingest?adapter=hl7v2", "MSH|^~\\&|HIS||GW||20250101||RDE^O11|1|P|2.5\r"),
        ("GET", "/fhir/_history", None),
        ("GET", "/fhir/Patient/p1/_history/1", None),
        ("POST", "/fhir/Patient/_search", "name=x"),
    ],
)
def test_a_call_without_a_token_gets_401_with_an_operation_outcome(
    locked: TestClient, method: str, path: str, body: Any
) -> None:
    kwargs: dict[str, Any] = {}
    if isinstance(body, dict):
        kwargs["json"] = body
    elif body is not None:
        kwargs["content"] = body
        kwargs["headers"] = HL7 if "$ingest" in path else {"Content-Type": "application/x-www-form-urlencoded"}
    _assert_401(locked.request(method, path, **kwargs))


def test_every_route_of_the_fhir_api_requires_a_token(locked: TestClient) -> None:
    """A route added later without going through context() fails here."""
    checked = 0
    for route in ROUTES:
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLE[m.group(1)], route.path)
        if path == "/fhir/metadata":
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            _assert_401(locked.request(method, path, content=b"{}"))
            checked += 1
    assert checked >= 20
    for op in ("ingest", "convert", "validate"):
        _assert_401(locked.post(f"/fhir/${op}?adapter=hl7v2" if op != "validate" else "/fhir/Patient/$validate"))
    for op in ("CodeSystem/$lookup", "ValueSet/$validate-code", "ConceptMap/$translate", "MedicationRequest/x/$hl7v2"):
        _assert_401(locked.get(f"/fhir/{op}"))


def test_a_token_that_does_not_verify_gets_401(locked: TestClient) -> None:
    for value in ("Bearer not-a-token", "Bearer ", "Basic dXNlcjpwYXNz", "bearer eyJhbGciOiJub25lIn0.e30."):
        response = locked.get("/fhir/Patient", headers={"Authorization": value})
        assert response.status_code == 401
    _assert_401(locked.get("/fhir/Patient", headers={"Authorization": "Bearer x.y.z"}), "YL-0901")
    forged = jwt.encode(
        {"iss": "yaolian", "sub": "yl-x", "exp": int(time.time()) + 60, "iat": 0, "jti": "j", "role": "admin"},
        "a guessed key of at least thirty-two bytes",
        algorithm="HS256",
    )
    _assert_401(locked.get("/fhir/Patient", headers={"Authorization": f"Bearer {forged}"}), "YL-0901")


def test_an_expired_access_token_gets_401_expired(
    gateway: TestClient, database_url: str, tmp_path: Path, rsa_keys: Keys
) -> None:
    from gateway.security.tokens import SERVER_KEY_NAME

    client_id = add_jwt_client(database_url, tmp_path, rsa_keys)
    bearer(gateway, rsa_keys, client_id)  # the server key exists now
    key = gateway.app.state.store.server_key(SERVER_KEY_NAME, lambda: "unused")
    now = int(time.time())
    claims = {"iss": "yaolian", "sub": client_id, "role": "admin", "scope": "system/*.cruds", "jti": "j"}
    expired = jwt.encode({**claims, "iat": now - 900, "exp": now - 600}, key, algorithm="HS256")
    _assert_401(gateway.get("/fhir/Patient", headers={"Authorization": f"Bearer {expired}"}), "YL-0902")
    fresh = jwt.encode({**claims, "iat": now, "exp": now + 60}, key, algorithm="HS256")
    assert gateway.get("/fhir/Patient", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_the_public_endpoints_answer_without_a_token(locked: TestClient) -> None:
    assert locked.get("/fhir/metadata").status_code == 200
    assert locked.get("/openapi.json").status_code == 200
    assert locked.get("/docs").status_code == 200
    assert locked.get("/healthz").status_code == 200
    smart = locked.get("/fhir/.well-known/smart-configuration")
    assert smart.status_code == 200
    config = smart.json()
    assert config["token_endpoint"] == "http://testserver/auth/token"
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "client_secret_basic"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert config["grant_types_supported"] == ["client_credentials"]
    assert "system/*.rs" in config["scopes_supported"]
    assert config["capabilities"] == ["client-confidential-asymmetric", "client-confidential-symmetric"]


def test_the_capability_statement_names_smart_on_fhir_and_the_token_endpoint(
    locked: TestClient, tmp_path: Path
) -> None:
    security = locked.get("/fhir/metadata").json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    [uris] = security["extension"]
    assert uris["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert uris["extension"] == [{"url": "token", "valueUri": "http://testserver/auth/token"}]
    from gateway import validation

    statement = locked.get("/fhir/metadata").json()
    assert [i for i in validation.validate(statement, (), structure=True) if i.severity == "error"] == []
    from gateway.app import create_app
    from gateway.settings import Settings

    with TestClient(create_app(Settings(database=f"sqlite:///{tmp_path / 'o.sqlite'}", insecure_dev=True))) as open_:
        assert "security" not in open_.get("/fhir/metadata").json()["rest"][0]


def test_insecure_dev_runs_every_call_as_the_insecure_dev_principal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.app import create_app
    from gateway.settings import Settings

    seen: list[RequestContext] = []
    hooks = Hooks()
    hooks.register(Pointcut.REQUEST_RECEIVED, seen.append)
    with caplog.at_level("WARNING"):
        app = create_app(Settings(database=f"sqlite:///{tmp_path / 'y.sqlite'}", insecure_dev=True), hooks=hooks)
    assert "INSECURE DEVELOPMENT MODE" in caplog.text
    with TestClient(app) as client:
        assert client.get("/fhir/Patient").status_code == 200
        assert client.post("/fhir/Patient", json={"resourceType": "Patient"}).status_code == 201
    assert [ctx.principal.client_id if ctx.principal else None for ctx in seen] == ["insecure-dev"] * 2
    assert seen[0].principal is not None and seen[0].principal.role is INSECURE_DEV.role


def test_demo_implies_insecure_dev() -> None:
    from gateway.settings import Settings

    assert Settings(demo=True, insecure_dev=False).insecure_dev is True
    assert Settings(insecure_dev=False).insecure_dev is False


def test_serve_warns_loudly_in_insecure_dev(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    from gateway.cli import app as cli

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    database = f"sqlite:///{tmp_path / 'y.sqlite'}"
    insecure = CliRunner().invoke(cli, ["serve", "--insecure-dev", "--database", database])
    assert insecure.exit_code == 0, insecure.output
    assert "INSECURE DEVELOPMENT MODE" in insecure.output
    monkeypatch.setenv("YAOLIAN_INSECURE_DEV", "0")
    secure = CliRunner().invoke(cli, ["serve", "--database", database])
    assert secure.exit_code == 0 and "INSECURE" not in secure.output
    demo = CliRunner().invoke(cli, ["serve", "--demo", "--database", database])
    assert demo.exit_code == 0, demo.output
    assert "--demo implies --insecure-dev" in demo.output and "INSECURE DEVELOPMENT MODE" in demo.output
