"""The CapabilityStatement, generated from what the server really supports.

Resource types come from the registry, search parameters from the loaded definitions (only
types the index implements), operations from the operation table, profiles from profiles/.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.fhir.registry import resource_types
from gateway.search.parameters import parameters_for

INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]


ALLIANCE_SERVER = "http://yaolian.org/fhir/CapabilityStatement/alliance-server"
TOPIC_SUPPORTED = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-subscriptiontopic-supported"


#: Types only ever served from the gateway's own files, never stored (the SubscriptionTopics of
#: ``profiles/`` are what the dispatcher matches: gateway.events.subscriptions refuses writes of
#: others). Other conformance types serve their files and store the rest (gateway/service/served.py).
READ_ONLY = frozenset({"SubscriptionTopic"})


def capability_statement(
    base_url: str,
    *,
    operations: Iterable[tuple[str, str, str, tuple[str, ...]]] = (),
    profiles_by_type: dict[str, list[str]] | None = None,
    software_version: str = "0.1.0",
    date: str,
    security: dict[str, Any] | None = None,
    subscription_topics: Iterable[str] = (),
) -> dict[str, Any]:
    """``security``: ``rest.security`` when the gateway requires tokens (SMART-on-FHIR);
    ``subscription_topics``: the SubscriptionTopic URLs a Subscription may name (R5
    ``capabilitystatement-subscriptiontopic-supported`` on the Subscription resource)."""
    topic_urls = list(subscription_topics)
    profiles_by_type = profiles_by_type or {}
    ops = list(operations)
    rest_resources = []
    for rtype in sorted(resource_types()):
        params = parameters_for(rtype)
        includes = sorted(f"{rtype}:{p.code}" for p in params.values() if p.type == "reference")
        rev = sorted(
            f"{other}:{p.code}"
            for other in resource_types()
            for p in parameters_for(other).values()
            if p.type == "reference" and (not p.targets or rtype in p.targets)
        )
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": code} for code in INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalPatch": False,
            "conditionalDelete": "single",
            "referencePolicy": ["literal", "logical"],
            "searchInclude": ["*", *includes],
            "searchRevInclude": rev,
            "searchParam": [
                {
                    "name": p.code,
                    "definition": p.url,
                    "type": p.type,
                    **({"documentation": p.description} if p.description else {}),
                }
                for p in sorted(params.values(), key=lambda x: x.code)
                if p.url
            ],
        }
        if rtype in READ_ONLY:  # served from files, not the store: read, vread (version 1) and search
            entry.update(
                interaction=[{"code": "read"}, {"code": "vread"}, {"code": "search-type"}],
                versioning="no-version",
                readHistory=False,
                updateCreate=False,
                conditionalCreate=False,
                conditionalUpdate=False,
                conditionalDelete="not-supported",
            )
            for key in ("searchInclude", "searchRevInclude"):
                entry.pop(key)
        if rtype in profiles_by_type:
            entry["supportedProfile"] = profiles_by_type[rtype]
        if rtype == "Subscription" and topic_urls:
            entry["extension"] = [{"url": TOPIC_SUPPORTED, "valueCanonical": url} for url in topic_urls]
        type_ops = [
            {"name": name, "definition": url}
            for name, url in dict.fromkeys(
                (n, u) for n, u, level, types in ops if level in ("type", "instance") and (not types or rtype in types)
            )
        ]
        if type_ops:
            entry["operation"] = type_ops
        rest_resources.append(entry)
    system_ops = [{"name": name, "definition": url} for name, url, level, _types in ops if level == "system"]
    return {
        "resourceType": "CapabilityStatement",
        "id": "yaolian",
        "url": f"{base_url}/metadata",
        "name": "YaolianGateway",
        "title": "Yaolian (药联) FHIR R5 gateway",
        "status": "active",
        "date": date,
        "publisher": "Yaolian",
        "kind": "instance",
        # the alliance's requirements this gateway implements (served from profiles/)
        "instantiates": [ALLIANCE_SERVER],
        "software": {"name": "Yaolian", "version": software_version},
        "implementation": {
            "description": "Yaolian county medical alliance gateway",
            "url": base_url,
        },
        "fhirVersion": "5.0.0",
        "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                **({"security": security} if security else {}),
                "resource": rest_resources,
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                ],
                **({"operation": system_ops} if system_ops else {}),
            }
        ],
    }
