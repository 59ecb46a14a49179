"""How a member is reached: its Endpoint resources, read as :class:`MemberEndpoint` values.

A member's data either arrives over an adapter and is stored here (``pushed``) or stays at the
member and is asked live: in its own FHIR server (``fhir-r5``, ``fhir-r4``) or in a read-only
database view of its HIS (``sql-view``, read by the ``sqlview`` adapter). Endpoints are plain
FHIR R5 Endpoint resources, so the registry is managed over REST like any other data:

- ``connectionType`` carries a coding of :data:`KIND_SYSTEM` (``pushed``, ``fhir-r5``,
  ``fhir-r4``, ``sql-view``), next to the standard ``hl7-fhir-rest`` for the FHIR kinds;
- ``address`` is the FHIR base URL of a FHIR member (a placeholder URN for a pushed one); for a
  view member ``yaolian-sqlview:NAME``, NAME a connection of the gateway's settings
  (``YAOLIAN_FEDERATION_VIEWS``): the connection string and its password never appear in a
  resource every member's client can read;
- a view member's mapping (``mappings/sqlview/NAME.yaml``: which view, which columns) is the
  ``valueString`` of the extension :data:`SQLVIEW_MAPPING_EXTENSION`;
- the optional SMART Backend Services credentials the gateway uses *towards* the member are
  the sub-extensions of :data:`SMART_EXTENSION` (``tokenUrl``, ``clientId``, ``keyFile``: a
  path on the gateway's host, never the key itself; ``keyId``: the ``kid`` of that key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KIND_SYSTEM = "http://yaolian.org/fhir/CodeSystem/endpoint-kind"
KINDS = ("pushed", "fhir-r5", "fhir-r4", "sql-view")
LIVE_KINDS = ("fhir-r5", "fhir-r4", "sql-view")
#: The live kinds that are FHIR servers (asked over HTTP).
FHIR_KINDS = ("fhir-r5", "fhir-r4")
#: ``Endpoint.address`` of a view member: this prefix and the name of a configured connection.
SQLVIEW_ADDRESS = "yaolian-sqlview:"
SQLVIEW_MAPPING_EXTENSION = "http://yaolian.org/fhir/StructureDefinition/endpoint-sqlview-mapping"
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
    mapping: str | None = None
    """A view member's mapping name (``mappings/sqlview/<mapping>.yaml``)."""

    @property
    def connection(self) -> str | None:
        """A view member's connection name (its address without :data:`SQLVIEW_ADDRESS`)."""
        if self.kind != "sql-view" or not self.address.startswith(SQLVIEW_ADDRESS):
            return None
        return self.address.removeprefix(SQLVIEW_ADDRESS)

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


def _mapping(endpoint: Mapping[str, Any]) -> str | None:
    for extension in endpoint.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") == SQLVIEW_MAPPING_EXTENSION:
            value = extension.get("valueString")
            return value if isinstance(value, str) else None
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
        mapping=_mapping(endpoint) if kind == "sql-view" else None,
    )


def endpoint_resource(
    endpoint_id: str,
    kind: str,
    address: str,
    *,
    name: str,
    organization: str,
    smart: SmartCredentials | None = None,
    mapping: str | None = None,
) -> dict[str, Any]:
    """The Endpoint resource ``yaolian members add`` registers (``organization``: ``Organization/id``;
    ``mapping``: a view member's mapping name)."""
    codings = [{"system": KIND_SYSTEM, "code": kind}]
    if kind in FHIR_KINDS:
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
    if kind in FHIR_KINDS:
        version = "4.0" if kind == "fhir-r4" else "5.0"
        resource["payload"] = [{"mimeType": [f"application/fhir+json; fhirVersion={version}"]}]
    if mapping is not None:
        resource["extension"] = [{"url": SQLVIEW_MAPPING_EXTENSION, "valueString": mapping}]
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
