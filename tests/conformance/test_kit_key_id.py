"""The kit's signed assertion names its key (``--key-id``, the JWT header's ``kid``), as SMART
Backend Services require: against a real gateway whose client registered two keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from conformance.auth import AuthError, fetch_token
from conformance.cli import app as kit
from gateway.app import create_app
from gateway.settings import Settings

from ..security.conftest import add_jwt_client, new_keys
from .conftest import ServerThread


def _pem(private: object, path: Path) -> Path:
    path.write_bytes(
        private.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def test_the_assertion_names_its_key_and_the_gateway_takes_it(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'gw.sqlite'}"
    first, second = new_keys("ES384", "old-key"), new_keys("RS384", "new-key")
    client_id = add_jwt_client(database, tmp_path, first, second)
    key = _pem(second.private, tmp_path / "new.pem")
    with ServerThread(create_app(Settings(database=database, insecure_dev=False))) as server:
        token_url = server.base_url.removesuffix("/fhir") + "/auth/token"
        assert fetch_token(server.base_url, client_id, key_file=key, key_id="new-key", token_url=token_url)
        with pytest.raises(AuthError, match="kid"):  # unnamed, the gateway cannot tell which key
            fetch_token(server.base_url, client_id, key_file=key, token_url=token_url)
        with pytest.raises(AuthError):  # named wrongly: the other key's kid
            fetch_token(server.base_url, client_id, key_file=key, key_id="old-key", token_url=token_url)
        result = CliRunner().invoke(
            kit,
            [
                *("seed", "--base-url", server.base_url, "--client-id", client_id, "--key", str(key)),
                *("--key-id", "new-key", "--token-url", token_url),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "token obtained" in result.output and "seed resources" in result.output
