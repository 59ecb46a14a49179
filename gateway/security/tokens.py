"""SMART Backend Services tokens: ``POST /auth/token`` and the access tokens it issues.

A client proves who it is with a JWT it signed with its private key (``private_key_jwt``,
RS384 or ES384, checked against its registered JWKS) or, the weaker option, with its secret
over HTTP Basic (``client_secret_basic``). It gets an access token: a JWT signed HS256 with a
server key kept in the database (made on first use, shared by every gateway process), valid
five minutes, carrying the client, its role, member and granted scopes. Every FHIR request
presents it as ``Authorization: Bearer …`` (:meth:`Authority.principal`).

Nothing here is hand-made cryptography: PyJWT verifies and signs, scrypt hashes secrets.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

import jwt

from gateway.errors import Unauthorized
from gateway.principal import Principal, Role, Scope, parse_scopes
from gateway.security.clients import ASSERTION_ALGORITHMS, CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT, key_algorithm
from gateway.security.passwords import dummy_hash, verify_secret
from gateway.store.base import ClientRecord, Store

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT_TYPE = "client_credentials"
#: Lifetime of an access token, and the most an assertion's ``exp`` may lie ahead (seconds).
ACCESS_TOKEN_SECONDS = 300
ASSERTION_MAX_SECONDS = 300
#: Clock difference tolerated between a client and the gateway (seconds).
CLOCK_SKEW_SECONDS = 10
#: How long a process trusts what it read about a client (revocation takes effect within it).
CLIENT_CACHE_SECONDS = 10.0
ISSUER = "yaolian"
ACCESS_TOKEN_ALGORITHM = "HS256"
SERVER_KEY_NAME = "access-token-hs256"


class OAuthError(Exception):
    """An OAuth 2.0 error answer of the token endpoint (RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400, *, basic: bool = False) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.basic = basic  # the client tried HTTP Basic: answer with its WWW-Authenticate

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class JtiRegistry(Protocol):
    def use(self, client_id: str, jti: str, expires: int) -> bool:
        """True the first time ``client_id`` uses ``jti``; False for a replay before ``expires``."""
        ...


@dataclass
class StoreJti:
    """Used assertion ids in the database (the ``auth_jti`` table), shared by every process."""

    store: Store

    def use(self, client_id: str, jti: str, expires: int) -> bool:
        return self.store.jti_use(client_id, jti, expires)


class RedisJti:
    """Used assertion ids in Redis (``SET NX`` with the assertion's remaining lifetime)."""

    def __init__(self, client: Any) -> None:
        self._redis = client

    def use(self, client_id: str, jti: str, expires: int) -> bool:
        ttl = max(1, expires - int(time.time()) + CLOCK_SKEW_SECONDS)
        return bool(self._redis.set(f"yaolian:jti:{client_id}:{jti}", b"1", nx=True, ex=ttl))


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic base64(id:secret)`` (RFC 6749 2.3.1: both form-urlencoded)."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except ValueError:
        raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401, basic=True) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401, basic=True)
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def grant_scopes(requested: frozenset[Scope], registered: frozenset[Scope]) -> frozenset[Scope]:
    """Requested ∩ registered, scope by scope (``system/*.rs`` registered grants a requested
    ``system/Patient.rs``; a requested ``system/*.cruds`` gets what is registered)."""
    granted: dict[str, set[str]] = {}
    for want in requested:
        for have in registered:
            if want.resource_type == "*":
                rtype = have.resource_type
            elif have.resource_type in ("*", want.resource_type):
                rtype = want.resource_type
            else:
                continue
            both = want.interactions & have.interactions
            if both:
                granted.setdefault(rtype, set()).update(both)
    wildcard = granted.get("*", set())
    return frozenset(
        Scope(rtype, frozenset(interactions))
        for rtype, interactions in granted.items()
        if rtype == "*" or not interactions <= wildcard
    )


def scope_text(scopes: frozenset[Scope]) -> str:
    return " ".join(sorted(str(s) for s in scopes))


class Authority:
    """Issues access tokens at the token endpoint and turns them back into principals."""

    def __init__(self, store: Store, *, jti: JtiRegistry | None = None) -> None:
        self.store = store
        self.jti = jti or StoreJti(store)
        self.client_cache_seconds = CLIENT_CACHE_SECONDS
        self._key: bytes | None = None
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[float, ClientRecord | None]] = {}
        self._verified: dict[str, tuple[dict[str, Any], float]] = {}  # token -> (claims, exp)
        self._granted: dict[str, tuple[Role, frozenset[Scope]]] = {}  # token -> (role, scopes)

    # --- the server key ----------------------------------------------------------------------

    def _signing_key(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    text = self.store.server_key(SERVER_KEY_NAME, lambda: secrets.token_urlsafe(48))
                    self._key = text.encode()
        return self._key

    # --- the token endpoint --------------------------------------------------------------------

    def token(self, form: Mapping[str, str], basic: tuple[str, str] | None, token_url: str) -> dict[str, Any]:
        """Answer a client-credentials token request (``form`` is the request body)."""
        if form.get("grant_type") != GRANT_TYPE:
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
        assertion = form.get("client_assertion")
        if assertion is not None and basic is not None:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
            client = self._assertion_client(assertion, token_url, form.get("client_id"))
        elif basic is not None:
            client = self._basic_client(*basic)
        else:
            raise OAuthError(
                "invalid_client", "authenticate with client_assertion (private_key_jwt) or HTTP Basic", 401
            )
        registered = parse_scopes(client.scopes)
        requested_text = form.get("scope")
        try:
            requested = parse_scopes(requested_text) if requested_text is not None else registered
        except ValueError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        granted = grant_scopes(requested, registered)
        if not granted:
            raise OAuthError("invalid_scope", "none of the requested scopes is registered for this client")
        return self.issue(client, granted)

    def issue(self, client: ClientRecord, granted: frozenset[Scope]) -> dict[str, Any]:
        now = int(time.time())
        scope = scope_text(granted)
        claims = {
            "iss": ISSUER,
            "sub": client.client_id,
            "client_id": client.client_id,
            "name": client.name,
            "role": client.role,
            "member": client.member,
            "scope": scope,
            "iat": now,
            "exp": now + ACCESS_TOKEN_SECONDS,
            "jti": secrets.token_urlsafe(16),
        }
        token = jwt.encode(claims, self._signing_key(), algorithm=ACCESS_TOKEN_ALGORITHM, headers={"typ": "at+jwt"})
        return {"access_token": token, "token_type": "bearer", "expires_in": ACCESS_TOKEN_SECONDS, "scope": scope}

    def _basic_client(self, client_id: str, secret: str) -> ClientRecord:
        client = self.store.client_get(client_id)
        stored = client.secret_hash if client is not None and client.auth_kind == CLIENT_SECRET_BASIC else None
        matches = verify_secret(secret, stored or dummy_hash())
        if client is None or stored is None or not matches:
            raise OAuthError("invalid_client", "unknown client or wrong secret", 401, basic=True)
        if client.revoked:
            raise OAuthError("invalid_client", "the client has been revoked", 401, basic=True)
        return client

    def _assertion_client(self, assertion: str, token_url: str, form_client_id: str | None) -> ClientRecord:
        def refuse(why: str) -> OAuthError:
            return OAuthError("invalid_client", f"client assertion refused: {why}", 401)

        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise refuse("not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ASSERTION_ALGORITHMS:
            raise refuse(f"alg must be one of {', '.join(ASSERTION_ALGORITHMS)}")
        client_id = unverified.get("iss")
        if not isinstance(client_id, str) or unverified.get("sub") != client_id:
            raise refuse("iss and sub must both be the client_id")
        if form_client_id is not None and form_client_id != client_id:
            raise refuse("client_id does not match the assertion")
        client = self.store.client_get(client_id)
        if client is None or client.auth_kind != PRIVATE_KEY_JWT or not client.jwks:
            raise refuse("unknown client")
        if client.revoked:
            raise refuse("the client has been revoked")
        key = self._client_key(client, header.get("kid"), algorithm)
        try:
            claims = jwt.decode(
                assertion,
                key.key,
                algorithms=[algorithm],
                audience=token_url,
                issuer=client_id,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise refuse("expired") from None
        except jwt.InvalidAudienceError:
            raise refuse(f"aud must be the token endpoint {token_url}") from None
        except jwt.PyJWTError:
            raise refuse("signature or claims do not verify") from None
        expires = int(claims["exp"])
        if expires > time.time() + ASSERTION_MAX_SECONDS + CLOCK_SKEW_SECONDS:
            raise refuse(f"exp may be at most {ASSERTION_MAX_SECONDS} s ahead")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise refuse("jti must be a non-empty string")
        if not self.jti.use(client_id, jti, expires):
            raise refuse("this jti was used before (replay)")
        return client

    @staticmethod
    def _client_key(client: ClientRecord, kid: object, algorithm: str) -> jwt.PyJWK:
        keys = json.loads(client.jwks or "{}").get("keys", [])
        for key in keys:
            if key.get("kid") == kid:
                if key_algorithm(key) != algorithm:
                    break
                return jwt.PyJWK(key, algorithm)
        raise OAuthError("invalid_client", "client assertion refused: kid is not a registered key for its alg", 401)

    # --- every request -------------------------------------------------------------------------

    def principal(self, token: str, source_ip: str | None = None) -> Principal:
        """The principal of a bearer access token; :class:`Unauthorized` if it does not verify,
        has expired, or its client has been revoked since.

        A token that verified is remembered until it expires (by its whole text, signature
        included, so only the very same token is taken on trust): a client sends one token
        for minutes, and verifying it again on every request cost 65 µs of the ~400 µs of
        CPU a read costs. Expiry and revocation are checked on every request all the same."""
        remembered = self._verified.get(token)
        if remembered is None:
            remembered = self._verify(token)
            if len(self._verified) >= 4096:
                self._verified.clear()
            self._verified[token] = remembered
        claims, expires = remembered
        if time.time() >= expires:
            self._verified.pop(token, None)
            raise Unauthorized("YL-0902")
        client_id = str(claims["sub"])
        client = self._client(client_id)
        if client is None:
            raise Unauthorized("YL-0901", reason="its client is not registered")
        if client.revoked:
            raise Unauthorized("YL-0903", client_id=client_id)
        try:
            role, scopes = self._granted.get(token) or self._grant(token, claims)
        except (KeyError, ValueError):
            raise Unauthorized("YL-0901", reason="its claims are incomplete") from None
        return Principal(client_id, client.name, role, claims.get("member"), scopes, source_ip)

    def _grant(self, token: str, claims: dict[str, Any]) -> tuple[Role, frozenset[Scope]]:
        """A token's role and scopes, parsed once per token (like its signature, verified once)."""
        granted = Role(claims["role"]), parse_scopes(str(claims.get("scope", "")))
        if len(self._granted) >= 4096:
            self._granted.clear()
        self._granted[token] = granted
        return granted

    def _verify(self, token: str) -> tuple[dict[str, Any], float]:
        try:
            claims = jwt.decode(
                token,
                self._signing_key(),
                algorithms=[ACCESS_TOKEN_ALGORITHM],
                issuer=ISSUER,
                options={"require": ["iss", "sub", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("YL-0902") from None
        except jwt.PyJWTError:
            raise Unauthorized("YL-0901", reason="its signature or claims do not verify") from None
        return claims, float(claims["exp"])

    def _client(self, client_id: str) -> ClientRecord | None:
        now = time.monotonic()
        cached = self._clients.get(client_id)
        if cached is not None and now - cached[0] < self.client_cache_seconds:
            return cached[1]
        client = self.store.client_get(client_id)
        if len(self._clients) > 10_000:
            self._clients.clear()
        self._clients[client_id] = (now, client)
        return client

    def forget(self, client_id: str | None = None) -> None:
        """Drop what this process remembers about a client (all clients: None)."""
        if client_id is None:
            self._clients.clear()
        else:
            self._clients.pop(client_id, None)
