"""Registered clients: ``yaolian clients add|list|revoke|set-jwks`` (docs/security.md).

A client authenticates at ``POST /auth/token`` either with a JWT signed by its private key
(SMART Backend Services, ``private_key_jwt``: only its public JWKS is registered) or, the
weaker option, with a secret over HTTP Basic (``client_secret_basic``: only a scrypt hash of
the secret is stored; the secret is shown once).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from gateway.clock import now_instant
from gateway.principal import Principal, Role, parse_scopes
from gateway.security.passwords import hash_secret, new_secret
from gateway.security.policy import ROLE_ACCESS
from gateway.store.base import ClientRecord, Store

PRIVATE_KEY_JWT = "private_key_jwt"
CLIENT_SECRET_BASIC = "client_secret_basic"

#: Algorithms a client may sign its assertions with (SMART Backend Services).
ASSERTION_ALGORITHMS = ("RS384", "ES384")
_KEY_TYPES = {"RS384": "RSA", "ES384": "EC"}


def _role_scopes(role: Role) -> str:
    """Everything the role may do (:data:`gateway.security.policy.ROLE_ACCESS`), as scopes."""
    return " ".join(f"system/{rtype}.{letters}" for rtype, letters in sorted(ROLE_ACCESS[role].items()))


#: Scopes a client of each role is registered with when ``--scope`` is not given: all its role
#: permits (one table, ROLE_ACCESS, says what a role may do; ``--scope`` narrows it).
DEFAULT_SCOPES: dict[Role, str] = {role: _role_scopes(role) for role in Role}

_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


@dataclass(frozen=True)
class Registered:
    client: ClientRecord
    secret: str | None  # the client secret, to show once; None for private_key_jwt


def parse_jwks(text: str) -> str:
    """Check a client's public JWKS and return it as compact JSON: a ``keys`` list of RSA or
    EC P-384 public keys, each with a unique ``kid``. A private key is refused."""
    try:
        jwks = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the JWKS is not JSON: {exc}") from None
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError('a JWKS is a JSON object with a non-empty "keys" list')
    seen: set[str] = set()
    for key in keys:
        if not isinstance(key, dict):
            raise ValueError("every key of the JWKS must be a JSON object")
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError('every key needs a "kid" (the assertion header names it)')
        if kid in seen:
            raise ValueError(f"kid {kid!r} appears twice")
        seen.add(kid)
        if any(member in key for member in _PRIVATE_MEMBERS):
            raise ValueError(f"key {kid!r} holds private key material: register the PUBLIC key only")
        algorithm = key_algorithm(key)
        if algorithm is None:
            raise ValueError(f"key {kid!r} is neither an RSA key (RS384) nor an EC P-384 key (ES384)")
        try:
            jwt.PyJWK(key, algorithm)
        except jwt.PyJWTError as exc:
            raise ValueError(f"key {kid!r} cannot be read: {exc}") from None
    return json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True)


def key_algorithm(key: dict[str, Any]) -> str | None:
    """The assertion algorithm a JWK verifies (its ``alg``, or what its type implies)."""
    alg = key.get("alg")
    if alg is not None:
        return alg if alg in ASSERTION_ALGORITHMS and _KEY_TYPES[alg] == key.get("kty") else None
    if key.get("kty") == "RSA":
        return "RS384"
    if key.get("kty") == "EC" and key.get("crv") == "P-384":
        return "ES384"
    return None


def register(
    store: Store,
    name: str,
    role: Role,
    *,
    member: str | None = None,
    scopes: str | None = None,
    jwks: str | None = None,
    secret: bool = False,
) -> Registered:
    """Register a client; ``jwks`` (private_key_jwt) or ``secret`` (client_secret_basic)."""
    if not name.strip():
        raise ValueError("the client needs a name")
    if (jwks is None) == (not secret):
        raise ValueError("give exactly one of --jwks FILE (private_key_jwt) or --secret (client_secret_basic)")
    if role is Role.MEMBER and not member:
        raise ValueError("a member client needs --member CODE (the member it belongs to)")
    granted = parse_scopes(scopes if scopes is not None else DEFAULT_SCOPES[role])
    if not granted:
        raise ValueError("the client needs at least one scope")
    plain = new_secret() if secret else None
    record = ClientRecord(
        client_id="yl-" + secrets.token_hex(8),
        name=name.strip(),
        role=role.value,
        member=member or None,
        scopes=" ".join(sorted(str(s) for s in granted)),
        auth_kind=CLIENT_SECRET_BASIC if secret else PRIVATE_KEY_JWT,
        jwks=parse_jwks(jwks) if jwks is not None else None,
        secret_hash=hash_secret(plain) if plain is not None else None,
        created=now_instant(),
    )
    store.client_add(record)
    return Registered(record, plain)


def revoke(store: Store, client_id: str) -> bool:
    """Revoke a client: no new token from now on, and its tokens stop working within the
    gateway's client cache time (:data:`gateway.security.tokens.CLIENT_CACHE_SECONDS`)."""
    return store.client_revoke(client_id, now_instant())


def set_jwks(store: Store, client_id: str, jwks: str) -> bool:
    """Key rotation: replace a private_key_jwt client's public keys."""
    return store.client_set_jwks(client_id, parse_jwks(jwks))


def principal_of(client: ClientRecord, source_ip: str | None = None) -> Principal:
    """The principal a registered client acts as with all its registered scopes (for callers
    that authenticate it otherwise than by token, e.g. a bound MLLP connection)."""
    return Principal(
        client_id=client.client_id,
        name=client.name,
        role=Role(client.role),
        member=client.member,
        scopes=parse_scopes(client.scopes),
        source_ip=source_ip,
    )
