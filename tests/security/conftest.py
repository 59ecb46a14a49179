"""Gateways that require tokens (``insecure_dev=False``), clients registered through the CLI,
and client assertions signed with keys generated here."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.security.tokens import ASSERTION_TYPE

TOKEN_URL = "http://testserver/auth/token"


@dataclass
class Keys:
    alg: str
    private: Any
    kid: str

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if self.alg == "RS384" else jwt.algorithms.ECAlgorithm
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}


def new_keys(alg: str, kid: str | None = None) -> Keys:
    if alg == "RS384":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP384R1())
    return Keys(alg, private, kid or uuid.uuid4().hex[:8])


@pytest.fixture(scope="session")
def rsa_keys() -> Keys:
    return new_keys("RS384", "rsa-1")


@pytest.fixture(scope="session")
def ec_keys() -> Keys:
    return new_keys("ES384", "ec-1")


def assertion(
    keys: Keys,
    client_id: str,
    *,
    aud: str = TOKEN_URL,
    lifetime: int = 240,
    jti: str | None = None,
    kid: str | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + lifetime, "jti": jti or uuid.uuid4().hex}
    body.update(claims)
    return jwt.encode(body, keys.private, algorithm=keys.alg, headers={"kid": kid or keys.kid})


def token_form(signed: str, scope: str | None = "system/*.cruds") -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
    if scope is not None:
        form["scope"] = scope
    return form


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return result.output


def cli_fails(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "300"})
    assert result.exit_code != 0, result.output
    return result.output


def field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.startswith(f"{name}: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no {name} in {output!r}")


def add_jwt_client(database: str, tmp_path: Path, *keys: Keys, role: str = "admin", extra: tuple[str, ...] = ()) -> str:
    jwks = tmp_path / f"{uuid.uuid4().hex}.jwks.json"
    jwks.write_text(json.dumps({"keys": [k.jwk() for k in keys]}), encoding="utf-8")
    output = run_cli(
        "clients", "add", "test client", "--role", role, "--jwks", str(jwks), "--database", database, *extra
    )
    return field(output, "client_id")


def add_secret_client(database: str, role: str = "admin", extra: tuple[str, ...] = ()) -> tuple[str, str]:
    output = run_cli("clients", "add", "basic client", "--role", role, "--secret", "--database", database, *extra)
    return field(output, "client_id"), field(output, "client_secret")


def secure_client(database: str, **settings: Any) -> Iterator[TestClient]:
    from gateway.app import create_app
    from gateway.settings import Settings

    app = create_app(Settings(database=database, insecure_dev=False, **settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def gateway(database_url: str) -> Iterator[TestClient]:
    """A gateway that requires tokens, on each backend."""
    yield from secure_client(database_url)


def bearer(client: TestClient, keys: Keys, client_id: str, scope: str = "system/*.cruds") -> dict[str, str]:
    response = client.post("/auth/token", data=token_form(assertion(keys, client_id), scope))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
