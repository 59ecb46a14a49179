"""``yaolian clients`` and the store's client tables, on both backends."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from gateway.principal import Role, Scope, parse_scopes
from gateway.security.clients import DEFAULT_SCOPES, parse_jwks
from gateway.security.tokens import grant_scopes
from gateway.store.base import ClientRecord, DuplicateClient

from .conftest import Keys, add_jwt_client, add_secret_client, cli_fails, new_keys, run_cli


def test_list_shows_every_client_with_its_member_role_scopes_and_revocation(
    database_url: str, tmp_path: Path, rsa_keys: Keys
) -> None:
    jwt_id = add_jwt_client(database_url, tmp_path, rsa_keys, role="member", extra=("--member", "THC-07"))
    secret_id, _secret = add_secret_client(database_url, role="regulator")
    run_cli("clients", "revoke", secret_id, "--database", database_url)
    listing = run_cli("clients", "list", "--database", database_url)
    assert "2 clients" in listing
    for expected in (jwt_id, secret_id, "THC-07", "member", "regulator", "private_key_jwt", "secret (Basic)"):
        assert expected in listing
    assert "system/MeasureReport.rs" in listing and "system/MedicationRequest.cruds" in listing
    assert cli_fails("clients", "revoke", secret_id, "--database", database_url)  # already revoked
    assert cli_fails("clients", "revoke", "yl-nobody", "--database", database_url)


def test_registration_refuses_what_would_not_work(database_url: str, tmp_path: Path, rsa_keys: Keys) -> None:
    assert "--member" in cli_fails("clients", "add", "x", "--role", "member", "--secret", "--database", database_url)
    assert "unknown role" in cli_fails(
        "clients", "add", "x", "--role", "doctor", "--secret", "--database", database_url
    )
    assert "exactly one" in cli_fails("clients", "add", "x", "--role", "admin", "--database", database_url)
    bad_scope = cli_fails(
        "clients", "add", "x", "--role", "admin", "--secret", "--scope", "user/*.*", "--database", database_url
    )
    assert "not a SMART v2 system scope" in bad_scope
    private = tmp_path / "private.json"
    key = json.loads(__import__("jwt").algorithms.RSAAlgorithm.to_jwk(rsa_keys.private))
    private.write_text(json.dumps({"keys": [{**key, "kid": "k"}]}), encoding="utf-8")
    refused = cli_fails("clients", "add", "x", "--role", "admin", "--jwks", str(private), "--database", database_url)
    assert "PUBLIC" in refused
    assert "0 clients" in run_cli("clients", "list", "--database", database_url)


def test_default_scopes_are_data_and_valid_for_every_role() -> None:
    assert set(DEFAULT_SCOPES) == set(Role)
    for scopes in DEFAULT_SCOPES.values():
        assert parse_scopes(scopes)
    assert "system/MeasureReport.rs" in DEFAULT_SCOPES[Role.REGULATOR].split()
    assert DEFAULT_SCOPES[Role.ADMIN] == "system/*.cruds"


@pytest.mark.parametrize(
    ("jwks", "why"),
    [
        ("{", "not JSON"),
        ('{"keys": []}', "non-empty"),
        ('{"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}', "kid"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}]}', "private"),
        ('{"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "a"}]}', "P-384"),
    ],
)
def test_a_jwks_that_cannot_verify_an_assertion_is_refused(jwks: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_jwks(jwks)


def test_an_es384_and_an_rs384_key_in_one_jwks() -> None:
    keys = [new_keys("RS384", "a").jwk(), new_keys("ES384", "b").jwk()]
    assert json.loads(parse_jwks(json.dumps({"keys": keys})))["keys"] == keys


def test_granted_scopes_intersect_scope_by_scope() -> None:
    def granted(requested: str, registered: str) -> set[str]:
        return {str(s) for s in grant_scopes(parse_scopes(requested), parse_scopes(registered))}

    assert granted("system/Patient.cruds", "system/*.rs") == {"system/Patient.rs"}
    assert granted("system/*.cruds", "system/Patient.rs system/Medication.r") == {
        "system/Patient.rs",
        "system/Medication.r",
    }
    assert granted("system/*.rs system/Patient.r", "system/*.cruds") == {"system/*.rs"}
    assert granted("system/Patient.d", "system/Patient.rs") == set()
    assert Scope.parse("system/Patient.rs") in grant_scopes(
        parse_scopes("system/Patient.rs"), parse_scopes("system/*.rs")
    )


def _record(client_id: str) -> ClientRecord:
    return ClientRecord(
        client_id, "n", "admin", None, "system/*.rs", "client_secret_basic", None, "scrypt$x", "2026-01-01"
    )


def test_the_store_keeps_clients_jti_and_one_shared_server_key(database_url: str) -> None:
    from gateway.store.sql import open_store

    first, second = open_store(database_url), open_store(database_url)  # two gateway processes
    try:
        first.create_schema()
        first.client_add(_record("yl-a"))
        with pytest.raises(DuplicateClient):
            second.client_add(_record("yl-a"))
        assert second.client_get("yl-a") == _record("yl-a")
        assert second.client_get("yl-b") is None
        assert first.client_revoke("yl-a", "2026-02-02") and not first.client_revoke("yl-a", "2026-03-03")
        assert [c.revoked for c in second.clients_list()] == ["2026-02-02"]
        assert not first.client_set_jwks("yl-a", "{}")  # not a private_key_jwt client

        later = int(time.time()) + 60
        jti = uuid.uuid4().hex
        assert first.jti_use("yl-a", jti, later) is True
        assert second.jti_use("yl-a", jti, later) is False  # replay, seen by the other process
        assert first.jti_use("yl-b", jti, later) is True  # per client
        gone = uuid.uuid4().hex
        assert first.jti_use("yl-a", gone, int(time.time()) - 5) is True
        assert first.jti_use("yl-a", gone, later) is True  # the expired one was forgotten

        made: list[str] = []

        def make() -> str:
            made.append("key")
            return f"key-{len(made)}"

        assert first.server_key("k", make) == "key-1"
        assert second.server_key("k", make) == "key-1" and made == ["key"]
    finally:
        first.dispose()
        second.dispose()


def test_the_principal_of_a_registered_client(database_url: str) -> None:
    from gateway.security.clients import principal_of
    from gateway.store.sql import open_store

    client_id, _secret = add_secret_client(database_url, role="member", extra=("--member", "VC-3"))
    store = open_store(database_url)
    try:
        record = store.client_get(client_id)
    finally:
        store.dispose()
    assert record is not None
    principal = principal_of(record, "10.0.0.7")
    assert (principal.client_id, principal.role, principal.member, principal.source_ip) == (
        client_id,
        Role.MEMBER,
        "VC-3",
        "10.0.0.7",
    )
    assert principal.scopes == parse_scopes(DEFAULT_SCOPES[Role.MEMBER])
