"""Client credentials: get a bearer token from the server's authorization server, then run with it.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html) asks a client
to authenticate with a JWT signed by its private key (`private_key_jwt`). That needs PyJWT and
cryptography; the kit does not depend on them. So:

- `--client-id ID --client-secret S`: OAuth 2.0 client_credentials grant with a shared secret
  (`client_secret_basic`, RFC 6749 §4.4 / §2.3.1). Always available.
- `--client-id ID --key FILE`: the SMART signed assertion (RS384 or ES384, by key type), only when
  PyJWT and cryptography are installed in the same environment; otherwise a clear error.

The token endpoint is found the way a SMART client finds it: `GET [base]/.well-known/smart-configuration`
(`token_endpoint`), else the CapabilityStatement's `rest.security` extension
`http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris` (`token`). `--token-url`
overrides both.
"""

from __future__ import annotations

import importlib
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_SCOPE = "system/*.cruds"

__all__ = ["AuthError", "discover_token_endpoint", "fetch_token", "signing_available"]


class AuthError(Exception):
    """The token could not be obtained; the message says why."""


def signing_available() -> bool:
    try:
        importlib.import_module("jwt")
        importlib.import_module("cryptography")
    except ImportError:
        return False
    return True


def discover_token_endpoint(base_url: str, http: httpx.Client) -> str:
    base = base_url.rstrip("/")
    tried = []
    try:
        r = http.get(f"{base}/.well-known/smart-configuration", headers={"Accept": "application/json"})
        tried.append(f".well-known/smart-configuration: HTTP {r.status_code}")
        if r.status_code == 200:
            endpoint = r.json().get("token_endpoint")
            if isinstance(endpoint, str) and endpoint:
                return endpoint
    except (httpx.HTTPError, ValueError) as exc:
        tried.append(f".well-known/smart-configuration: {type(exc).__name__}")
    try:
        r = http.get(f"{base}/metadata", headers={"Accept": "application/fhir+json"})
        tried.append(f"metadata: HTTP {r.status_code}")
        if r.status_code == 200:
            for rest in r.json().get("rest", []):
                for ext in (rest.get("security") or {}).get("extension", []):
                    if ext.get("url") != OAUTH_URIS:
                        continue
                    for sub in ext.get("extension", []):
                        if sub.get("url") == "token" and sub.get("valueUri"):
                            return str(sub["valueUri"])
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        tried.append(f"metadata: {type(exc).__name__}")
    raise AuthError(
        "no token endpoint: neither .well-known/smart-configuration (token_endpoint) nor the CapabilityStatement "
        f"(rest.security oauth-uris token) names one ({'; '.join(tried)}); pass --token-url"
    )


def _client_assertion(client_id: str, token_url: str, key_file: Path, key_id: str | None = None) -> str:
    if not signing_available():
        raise AuthError(
            "--key needs PyJWT and cryptography to sign the SMART client assertion and they are not installed "
            "here; install them (pip install pyjwt cryptography) or use --client-secret"
        )
    jwt: Any = importlib.import_module("jwt")
    serialization: Any = importlib.import_module("cryptography.hazmat.primitives.serialization")
    ec: Any = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ec")
    pem = key_file.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    algorithm = "ES384" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS384"
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 300, "jti": str(uuid.uuid4())}
    # SMART Backend Services: the header names the key (kid) of the client's registered JWKS
    headers = {"typ": "JWT", **({"kid": key_id} if key_id else {})}
    return str(jwt.encode(claims, key, algorithm=algorithm, headers=headers))


def fetch_token(
    base_url: str,
    client_id: str,
    *,
    client_secret: str | None = None,
    key_file: Path | None = None,
    key_id: str | None = None,
    scope: str | None = DEFAULT_SCOPE,
    token_url: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """The access token for `client_id` (client_credentials grant)."""
    if not client_secret and not key_file:
        raise AuthError("--client-id needs --client-secret (shared secret) or --key (signed JWT)")
    with httpx.Client(timeout=30.0, transport=transport) as http:
        endpoint = token_url or discover_token_endpoint(base_url, http)
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        extra: dict[str, Any] = {}
        if key_file:
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = _client_assertion(client_id, endpoint, key_file, key_id)
        else:
            extra["auth"] = httpx.BasicAuth(client_id, client_secret or "")
        try:
            r = http.post(endpoint, data=form, headers={"Accept": "application/json"}, **extra)
        except httpx.HTTPError as exc:
            raise AuthError(f"token endpoint {endpoint} unreachable: {type(exc).__name__}: {exc}") from exc
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
        detail = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
        raise AuthError(
            f"token endpoint {endpoint} refused client {client_id!r}: HTTP {r.status_code} {detail or r.text[:200]}"
        )
    kind = str(body.get("token_type", "bearer")).lower()
    if kind != "bearer":
        raise AuthError(f"token endpoint {endpoint} issued a {kind!r} token; the kit sends bearer tokens only")
    return str(body["access_token"])
