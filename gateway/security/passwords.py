"""Client secrets: only a slow, salted hash is stored (scrypt, from the standard library).

The format is ``scrypt$N$r$p$salt$hash`` (salt and hash URL-safe base64), so the cost can be
raised later without breaking the secrets already issued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache

#: scrypt cost: ~16 MiB and some 50 ms per check, slow for a guesser, fine for a token a client
#: fetches every few minutes.
_N, _R, _P = 2**14, 8, 1
_LENGTH = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_secret() -> str:
    """A fresh client secret (256 random bits), shown to the operator once."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_LENGTH)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = _unb64(digest)
        found = hashlib.scrypt(
            secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=2**26
        )
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


@cache
def dummy_hash() -> str:
    """Checked against when the client is unknown, so a wrong id costs as long as a wrong secret."""
    return hash_secret(new_secret())
