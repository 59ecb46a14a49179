"""How a member is reached: its Endpoint resources, read as :class:`MemberEndpoint` values.

A member's data either arrives over an adapter and is stored here (``pushed``) or stays in the
member's own FHIR server and is asked live (``fhir-r5``, ``fhir-r4``). Endpoints are plain FHIR
R5 Endpoint resources, so the registry is managed over REST like any other data:

- ``connectionType`` carries a coding of :data:`KIND_SYSTEM` (``pushed``, ``fhir-r5``,
  ``fhir-r4``), next to the standard ``hl7-fhir-rest`` for the live kinds;
- ``address`` is the FHIR base URL of a live member (a placeholder URN for a pushed one);
- the optional SMART Backend Services credentials the gateway uses *towards* the member are
  the sub-extensions of :data:`SMART_EXTENSION` (``tokenUrl``, ``clientId``, ``keyFile``: a
  path on the gateway's host, never the key itself; ``keyId``: the ``kid`` of that key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KIND_SYSTEM = "http://yaolian.org/fhir/CodeSystem/endpoint-kind"
KINDS = ("pushed", "fhir-r5", "fhir-r4")
LIVE_KINDS = ("fhir-r5", "fhir-r4")
CONNECTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
SMART_EXTENSION = "http://yaolian.org/fhir/StructureDefinition/endpoint-smart-backend"


@dataclass(frozen=True)
class SmartCredentials:
    """What the gateway needs to get an access token from a member's authorisation server."""

    token_url: str
    client_id: str
    key_file: str
    key_id: str | None = None
    """The ``kid`` the member registered the gateway's public key under (SMART requires one)."""


@dataclass(frozen=True)
class MemberEndpoint:
    """One Endpoint of a member."""

    endpoint_id: str
    kind: str
    address: str
    active: bool = True
    smart: SmartCredentials | None = None

    @property
    def live(self) -> bool:
        """Asked at query time (as opposed to data pushed into the gateway's store)."""
        return self.active and self.kind in LIVE_KINDS

    @property
    def reference(self) -> str:
        return f"Endpoint/{self.endpoint_id}"


def _kind(endpoint: Mapping[str, Any]) -> str | None:
    for concept in endpoint.get("connectionType") or ():
        for coding in (concept or {}).get("coding") or ():
            if coding.get("system") == KIND_SYSTEM and coding.get("code") in KINDS:
                return str(coding["code"])
    return None


def _smart(endpoint: Mapping[str, Any]) -> SmartCredentials | None:
    for extension in endpoint.get("extension") or ():
        if not isinstance(extension, dict) or extension.get("url") != SMART_EXTENSION:
            continue
        parts = {e.get("url"): e.get("valueUrl") or e.get("valueString") for e in extension.get("extension") or ()}
        token_url, client_id, key_file = parts.get("tokenUrl"), parts.get("clientId"), parts.get("keyFile")
        key_id = parts.get("keyId")
        if isinstance(token_url, str) and isinstance(client_id, str) and isinstance(key_file, str):
            return SmartCredentials(token_url, client_id, key_file, key_id if isinstance(key_id, str) else None)
    return None


def endpoint_from_resource(endpoint: Mapping[str, Any]) -> MemberEndpoint | None:
    """The endpoint an Endpoint resource describes; None when it is not one of ours (no kind)."""
    kind = _kind(endpoint)
    address = endpoint.get("address")
    if kind is None or not isinstance(address, str) or not endpoint.get("id"):
        return None
    return MemberEndpoint(
        endpoint_id=str(endpoint["id"]),
        kind=kind,
        address=address.rstrip("/"),
        active=endpoint.get("status", "active") == "active",
        smart=_smart(endpoint),
    )


def endpoint_resource(
    endpoint_id: str,
    kind: str,
    address: str,
    *,
    name: str,
    organization: str,
    smart: SmartCredentials | None = None,
) -> dict[str, Any]:
    """The Endpoint resource ``yaolian members add`` registers (``organization``: ``Organization/id``)."""
    codings = [{"system": KIND_SYSTEM, "code": kind}]
    if kind in LIVE_KINDS:
        codings.insert(0, {"system": CONNECTION_SYSTEM, "code": "hl7-fhir-rest"})
    resource: dict[str, Any] = {
        "resourceType": "Endpoint",
        "id": endpoint_id,
        "status": "active",
        "connectionType": [{"coding": codings}],
        "name": name,
        "managingOrganization": {"reference": organization},
        "address": address,
    }
    if kind in LIVE_KINDS:
        version = "4.0" if kind == "fhir-r4" else "5.0"
        resource["payload"] = [{"mimeType": [f"application/fhir+json; fhirVersion={version}"]}]
    if smart is not None:
        resource["extension"] = [
            {
                "url": SMART_EXTENSION,
                "extension": [
                    {"url": "tokenUrl", "valueUrl": smart.token_url},
                    {"url": "clientId", "valueString": smart.client_id},
                    {"url": "keyFile", "valueString": smart.key_file},
                    *([{"url": "keyId", "valueString": smart.key_id}] if smart.key_id else []),
                ],
            }
        ]
    return resource
