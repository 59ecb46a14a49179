"""Who is asking: the authenticated client a request or message runs for.

A plain value at the bottom of the layers, so the hook context (:class:`gateway.hooks.RequestContext`)
can carry it and every layer can read it; :mod:`gateway.security` makes one from a token, an
MLLP connection's binding, or ``--insecure-dev``.

Scopes are SMART v2 system scopes (``system/MedicationRequest.rs``, ``system/*.cruds``); what a
client may do is its scopes intersected with its role (``docs/security.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum


class Role(Enum):
    MEMBER = "member"  # a hospital, township centre or village clinic, bound to its member code
    COUNTY_PHARMACY = "county-pharmacy"
    INSURANCE = "insurance"
    REGULATOR = "regulator"
    ADMIN = "admin"


#: SMART v2 interactions: c(reate) r(ead by id) u(pdate) d(elete) s(earch).
INTERACTIONS = "cruds"
_SCOPE = re.compile(r"^system/(\*|[A-Z][A-Za-z]+)\.([cruds]+)$")


@dataclass(frozen=True)
class Scope:
    resource_type: str  # or "*"
    interactions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``system/MedicationRequest.rs`` (SMART v2; the v1 forms ``.read``/``.write``/``.*``
        are mapped to ``rs``/``cud``/``cruds``)."""
        text = text.strip()
        for v1, v2 in ((".read", ".rs"), (".write", ".cud"), (".*", ".cruds")):
            if text.endswith(v1):
                text = text[: -len(v1)] + v2
                break
        match = _SCOPE.match(text)
        if not match:
            raise ValueError(f"not a SMART v2 system scope: {text!r} (e.g. system/MedicationRequest.rs)")
        return cls(match.group(1), frozenset(match.group(2)))

    def allows(self, resource_type: str, interaction: str) -> bool:
        return self.resource_type in ("*", resource_type) and interaction in self.interactions

    def __str__(self) -> str:
        return f"system/{self.resource_type}." + "".join(i for i in INTERACTIONS if i in self.interactions)


def parse_scopes(text: str) -> frozenset[Scope]:
    return frozenset(Scope.parse(part) for part in text.split() if part)


@dataclass(frozen=True)
class Principal:
    client_id: str
    name: str
    role: Role
    member: str | None = None  # the member code, for Role.MEMBER
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    source_ip: str | None = None

    def scope_allows(self, resource_type: str, interaction: str) -> bool:
        """What the client's scopes allow (the role's own limits are the policy's)."""
        return any(s.allows(resource_type, interaction) for s in self.scopes)


#: The principal of ``--insecure-dev``: checks are off, so every call runs as this admin.
INSECURE_DEV = Principal("insecure-dev", "insecure development mode", Role.ADMIN, None, parse_scopes("system/*.cruds"))
