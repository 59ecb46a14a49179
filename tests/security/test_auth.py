"""Authentication (issue 11): clients registered with the CLI get SMART Backend Services
tokens (private_key_jwt with RS384/ES384, or a secret over HTTP Basic), and every FHIR call
needs one. Both backends wherever a store is involved."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from .conftest import (
    TOKEN_URL,
    Keys,
    add_jwt_client,
    add_secret_client,
    assertion,
    bearer,
    new_keys,
    run_cli,
    token_form,
)

PATIENT = {"resourceType": "Patient", "name": [{"family": "张", "given": ["三"]}], "gender": "female"}


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.mark.parametrize("keys_fixture", ["rsa_keys", "ec_keys"])
def test_a_client_registered_with_its_jwks_gets_a_token_and_reads(
    gateway: TestClient, database_url: str, tmp_path: Path, keys_fixture: str, request: pytest.FixtureRequest
) -> None:
    keys: Keys = request.getfixturevalue(keys_fixture)
    client_id = add_jwt_client(database_url, tmp_path, keys, role="admin")
    response = gateway.post(
        "/auth/token", data=token_form(assertion(keys, client_id), "system/Patient.cruds system/Observation.rs")
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["token_type"] == "bearer" and answer["expires_in"] == 300
    assert answer["scope"] == "system/Observation.rs system/Patient.cruds"
    assert response.headers["cache-control"] == "no-store"
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    created = gateway.post("/fhir/Patient", json=PATIENT, headers=headers)
    assert created.status_code == 201, created.text
    read = gateway.get(created.headers["location"].split("/_history")[0], headers=headers)
    assert read.status_code == 200 and read.json()["name"][0]["family"] == "张"
    assert gateway.get("/fhir/Patient", headers=headers).json()["resourceType"] == "Bundle"


def test_granted_scopes_are_the_requested_ones_the_client_has(
    gateway: TestClient, database_url: str, tmp_path: Path, rsa_keys: Keys
) -> None:
    client_id = add_jwt_client(
        database_url, tmp_path, rsa_keys, role="regulator", extra=("--scope", "system/*.rs system/Patient.c")
    )
    granted = gateway.post("/auth/token", data=token_form(assertion(rsa_keys, client_id), "system/Patient.cruds"))
    assert granted.json()["scope"] == "system/Patient.crs"
    everything = gateway.post("/auth/token", data=token_form(assertion(rsa_keys, client_id), None))
    assert everything.json()["scope"] == "system/*.rs system/Patient.c"
    nothing = gateway.post("/auth/token", data=token_form(assertion(rsa_keys, client_id), "system/Patient.d"))
    assert nothing.status_code == 400 and nothing.json()["error"] == "invalid_scope"
    bad = gateway.post("/auth/token", data=token_form(assertion(rsa_keys, client_id), "patient/Patient.read"))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_scope"


def test_a_secret_over_http_basic_is_the_weaker_option_that_works(gateway: TestClient, database_url: str) -> None:
    client_id, secret = add_secret_client(database_url, role="member", extra=("--member", "THC-01"))
    response = gateway.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Patient.rs"},
        headers=_basic(client_id, secret),
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["client_id"], claims["role"], claims["member"]) == (client_id, "member", "THC-01")
    assert gateway.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    wrong = gateway.post(
        "/auth/token", data={"grant_type": "client_credentials"}, headers=_basic(client_id, secret + "x")
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    unknown = gateway.post(
        "/auth/token", data={"grant_type": "client_credentials"}, headers=_basic("yl-nobody", secret)
    )
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"


def test_only_a_slow_hash_of_the_secret_is_stored(database_url: str) -> None:
    from gateway.security.passwords import verify_secret
    from gateway.store.sql import open_store

    client_id, secret = add_secret_client(database_url)
    store = open_store(database_url)
    try:
        record = store.client_get(client_id)
    finally:
        store.dispose()
    assert record is not None and record.secret_hash is not None
    assert secret not in repr(record) and record.secret_hash.startswith("scrypt$")
    assert verify_secret(secret, record.secret_hash) and not verify_secret(secret + "x", record.secret_hash)


def _hs256_with(key: bytes, claims: dict[str, Any], kid: str) -> str:
    """An assertion "signed" HS256 with the client's PUBLIC key as the secret (the classic
    algorithm-confusion attack; PyJWT will not make one, so it is built by hand)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def _unsigned(claims: dict[str, Any], kid: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}."


REFUSED = ["forged", "expired", "alg-none", "hs256-public-key", "unknown-kid", "wrong-aud", "too-long", "iss-not-sub"]


@pytest.mark.parametrize("case", REFUSED)
def test_assertions_that_do_not_prove_the_client_are_refused(
    gateway: TestClient, database_url: str, tmp_path: Path, rsa_keys: Keys, case: str
) -> None:
    client_id = add_jwt_client(database_url, tmp_path, rsa_keys)
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 240, "jti": uuid.uuid4().hex}
    if case == "forged":  # same kid, another key
        signed = assertion(new_keys("RS384", rsa_keys.kid), client_id)
    elif case == "expired":
        signed = assertion(rsa_keys, client_id, lifetime=-120)
    elif case == "alg-none":
        signed = _unsigned(claims, rsa_keys.kid)
    elif case == "hs256-public-key":
        pem = rsa_keys.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signed = _hs256_with(pem, claims, rsa_keys.kid)
    elif case == "unknown-kid":
        signed = assertion(rsa_keys, client_id, kid="not-registered")
    elif case == "wrong-aud":
        signed = assertion(rsa_keys, client_id, aud="http://testserver/fhir")
    elif case == "too-long":  # exp more than five minutes ahead
        signed = assertion(rsa_keys, client_id, lifetime=3600)
    else:
        signed = assertion(rsa_keys, client_id, sub="someone-else")
    response = gateway.post("/auth/token", data=token_form(signed))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.json()


def test_a_replayed_assertion_is_refused(gateway: TestClient, database_url: str, tmp_path: Path, ec_keys: Keys) -> None:
    client_id = add_jwt_client(database_url, tmp_path, ec_keys)
    signed = assertion(ec_keys, client_id)
    assert gateway.post("/auth/token", data=token_form(signed)).status_code == 200
    again = gateway.post("/auth/token", data=token_form(signed))
    assert again.status_code == 401 and "replay" in again.json()["error_description"]
    # the same jti from another client is that client's own business
    other = add_jwt_client(database_url, tmp_path, ec_keys)
    jti = jwt.decode(signed, options={"verify_signature": False})["jti"]
    assert gateway.post("/auth/token", data=token_form(assertion(ec_keys, other, jti=jti))).status_code == 200


def test_a_revoked_client_gets_no_token_and_its_tokens_stop_working(
    gateway: TestClient, database_url: str, tmp_path: Path, rsa_keys: Keys
) -> None:
    client_id = add_jwt_client(database_url, tmp_path, rsa_keys)
    secret_id, secret = add_secret_client(database_url)
    headers = bearer(gateway, rsa_keys, client_id)
    assert gateway.get("/fhir/Patient", headers=headers).status_code == 200
    run_cli("clients", "revoke", client_id, "--database", database_url)
    run_cli("clients", "revoke", secret_id, "--database", database_url)
    gateway.app.state.authenticator.authority.forget()  # what the client cache would do within seconds
    refused = gateway.get("/fhir/Patient", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "YL-0903"
    again = gateway.post("/auth/token", data=token_form(assertion(rsa_keys, client_id)))
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"
    basic = gateway.post("/auth/token", data={"grant_type": "client_credentials"}, headers=_basic(secret_id, secret))
    assert basic.status_code == 401


def test_key_rotation_replaces_the_jwks(gateway: TestClient, database_url: str, tmp_path: Path, rsa_keys: Keys) -> None:
    client_id = add_jwt_client(database_url, tmp_path, rsa_keys)
    new = new_keys("ES384", "ec-2026")
    jwks = tmp_path / "rotated.json"
    jwks.write_text(json.dumps({"keys": [new.jwk()]}), encoding="utf-8")
    run_cli("clients", "set-jwks", client_id, str(jwks), "--database", database_url)
    assert gateway.post("/auth/token", data=token_form(assertion(new, client_id))).status_code == 200
    assert gateway.post("/auth/token", data=token_form(assertion(rsa_keys, client_id))).status_code == 401


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_assertion": "x", "client_assertion_type": "other"},
            "invalid_request",
        ),
        (
            {"grant_type": "client_credentials", "client_assertion": "not.a.jwt", "client_assertion_type": "x"},
            "invalid_request",
        ),
    ],
)
def test_malformed_token_requests_get_oauth_errors(tmp_path: Path, form: dict[str, str], error: str) -> None:
    from .conftest import secure_client

    for client in secure_client(f"sqlite:///{tmp_path / 'y.sqlite'}"):
        response = client.post("/auth/token", data=form)
        assert response.status_code in (400, 401) and response.json()["error"] == error
        json_body = client.post("/auth/token", json=form)
        assert json_body.status_code == 400 and json_body.json()["error"] == "invalid_request"


@pytest.mark.redis
def test_with_redis_a_replayed_assertion_is_refused_across_processes(
    tmp_path: Path, rsa_keys: Keys, redis_url: str
) -> None:
    from .conftest import secure_client

    database = f"sqlite:///{tmp_path / 'y.sqlite'}"
    client_id = add_jwt_client(database, tmp_path, rsa_keys)
    signed = assertion(rsa_keys, client_id)
    for first in secure_client(database, redis=redis_url):
        assert first.post("/auth/token", data=token_form(signed)).status_code == 200
    for second in secure_client(database, redis=redis_url):  # another gateway process, same Redis
        again = second.post("/auth/token", data=token_form(signed))
        assert again.status_code == 401 and "replay" in again.json()["error_description"]
        assert second.post("/auth/token", data=token_form(assertion(rsa_keys, client_id))).status_code == 200


def test_a_token_from_one_gateway_process_works_at_another(database_url: str, tmp_path: Path, ec_keys: Keys) -> None:
    """The server key is in the database: every process signs and verifies with the same one."""
    from .conftest import secure_client

    client_id = add_jwt_client(database_url, tmp_path, ec_keys)
    for first in secure_client(database_url):
        headers = bearer(first, ec_keys, client_id)
        for second in secure_client(database_url):
            assert second.get("/fhir/Patient", headers=headers).status_code == 200


def test_the_configured_public_base_names_the_token_endpoint_and_the_aud(tmp_path: Path, rsa_keys: Keys) -> None:
    from .conftest import secure_client

    database = f"sqlite:///{tmp_path / 'y.sqlite'}"
    client_id = add_jwt_client(database, tmp_path, rsa_keys)
    public = "https://gw.alliance.example/auth/token"
    for client in secure_client(database, base_url="https://gw.alliance.example/fhir"):
        assert client.get("/fhir/.well-known/smart-configuration").json()["token_endpoint"] == public
        internal = client.post("/auth/token", data=token_form(assertion(rsa_keys, client_id)))
        assert internal.status_code == 401 and "aud" in internal.json()["error_description"]
        assert (
            client.post("/auth/token", data=token_form(assertion(rsa_keys, client_id, aud=public))).status_code == 200
        )
