"""What the gateway advertises about its authorization server: the SMART configuration
(``GET /fhir/.well-known/smart-configuration``) and the CapabilityStatement's security."""

from __future__ import annotations

from typing import Any

from gateway.security.clients import ASSERTION_ALGORITHMS, CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT
from gateway.security.tokens import GRANT_TYPE

SCOPES_SUPPORTED = ["system/*.cruds", "system/*.rs", "system/*.cud"]
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def token_url(base_url: str) -> str:
    """The token endpoint beside the FHIR base (``https://gw/fhir`` -> ``https://gw/auth/token``):
    what a client assertion's ``aud`` must be."""
    return base_url.rstrip("/").removesuffix("/fhir") + "/auth/token"


def smart_configuration(base_url: str) -> dict[str, Any]:
    return {
        "token_endpoint": token_url(base_url),
        "token_endpoint_auth_methods_supported": [PRIVATE_KEY_JWT, CLIENT_SECRET_BASIC],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "grant_types_supported": [GRANT_TYPE],
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": ["client-confidential-asymmetric", "client-confidential-symmetric"],
    }


def capability_security(base_url: str) -> dict[str, Any]:
    """``CapabilityStatement.rest.security`` of a gateway that requires tokens."""
    return {
        "extension": [
            {"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url(base_url)}]},
        ],
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 client credentials (SMART Backend Services)",
            }
        ],
        "description": "Every call needs Authorization: Bearer <token> from the token endpoint (docs/security.md).",
    }
