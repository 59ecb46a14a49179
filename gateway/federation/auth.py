"""Access tokens the gateway uses towards members that protect their FHIR server with SMART
Backend Services (client credentials with a signed JWT assertion, RS384/ES384).

Members are clients of the gateway; for a member asked live the roles turn round and the
gateway is the member's client. Tokens are kept until shortly before they expire, so a query
costs no token round trip.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.federation.endpoints import SmartCredentials

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: What the gateway asks a member for: the records of a patient's prescriptions.
SCOPES = "system/MedicationRequest.rs system/MedicationDispense.rs system/Medication.rs system/Patient.rs"


class TokenError(Exception):
    """The member's authorisation server refused or did not answer."""


def client_assertion(smart: SmartCredentials, now: float | None = None) -> str:
    """The signed JWT that authenticates the gateway at ``smart.token_url``."""
    try:
        key = load_pem_private_key(Path(smart.key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        raise TokenError("the gateway's private key for this member cannot be read (members add --key)") from None
    algorithm = "ES384" if isinstance(key, EllipticCurvePrivateKey) else "RS384"
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": smart.client_id,
        "sub": smart.client_id,
        "aud": smart.token_url,
        "exp": issued + 240,
        "jti": uuid.uuid4().hex,
    }
    headers = {"kid": smart.key_id} if smart.key_id else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)  # type: ignore[arg-type]


def _oauth_error(content: bytes) -> str:
    """The OAuth ``error``/``error_description`` a refusal carries (what to fix), if any."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return ""
    return f": {body['error']} {str(body.get('error_description') or '')[:200]}".rstrip()


@dataclass
class TokenSource:
    """Bearer tokens per set of credentials, fetched once and reused until near expiry."""

    tokens: dict[SmartCredentials, tuple[str, float]] = field(default_factory=dict)
    locks: dict[SmartCredentials, asyncio.Lock] = field(default_factory=dict)

    async def token(self, client: aiohttp.ClientSession, smart: SmartCredentials) -> str:
        cached = self.tokens.get(smart)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        lock = self.locks.setdefault(smart, asyncio.Lock())
        async with lock:
            cached = self.tokens.get(smart)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            form = {
                "grant_type": "client_credentials",
                "scope": SCOPES,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_assertion(smart),
            }
            try:
                async with client.post(smart.token_url, data=form) as answer:
                    status, content = answer.status, await answer.read()
            except aiohttp.ClientError as exc:
                raise TokenError(f"the token endpoint did not answer ({type(exc).__name__})") from None
            if status != 200:
                raise TokenError(f"token endpoint answered HTTP {status}{_oauth_error(content)}")
            try:
                body = orjson.loads(content)
                token = str(body["access_token"])
                expires = float(body.get("expires_in", 300))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise TokenError(f"token endpoint answered no access_token ({type(exc).__name__})") from None
            self.tokens[smart] = (token, time.monotonic() + max(0.0, expires - 30))
            return token

    def forget(self, smart: SmartCredentials) -> None:
        """Drop a token the member no longer accepts (a 401)."""
        self.tokens.pop(smart, None)
