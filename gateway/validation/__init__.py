"""Validation of resources against the base R5 structure and the alliance profiles.

``validate(resource, profiles)`` returns a list of :class:`~gateway.errors.Issue`; it never raises on
bad input. Steps: base structure (fhir.resources models), identifier formats and checksums
(:mod:`gateway.validation.identifiers`), then each profile's compiled snapshot rules
(cardinality, fixed/pattern, required bindings, slicing, extension profiles, FHIRPath
invariants). The REST layer passes ``meta.profile`` plus :func:`default_profiles`; see
:func:`profiles_for`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gateway.errors import Issue
from gateway.fhir.json_text import loads_exact
from gateway.validation._base import base_issues
from gateway.validation._conformance import conformance
from gateway.validation._formats import check_formats
from gateway.validation._issues import ERROR_CODES, issue
from gateway.validation._profile import Walker, compiled_profile
from gateway.validation._structure import model_class, structure_issues

__all__ = [
    "ERROR_CODES",
    "default_profiles",
    "known_profiles",
    "profile_resource_type",
    "profiles_for",
    "structure_issues",
    "validate",
    "validate_json",
]

_SD_BASE = "http://yaolian.org/fhir/StructureDefinition/"
_DEFAULTS = {
    "MedicationRequest": "yl-prescription",
    "Medication": "yl-drug",
    "SupplyRequest": "yl-supply-request",
    "InventoryReport": "yl-inventory-report",
    "Patient": "yl-patient",
    "Organization": "yl-organization",
    "Practitioner": "yl-practitioner",
}


def default_profiles(resource_type: str) -> tuple[str, ...]:
    """The alliance profile every resource of this type is held to (empty if none)."""
    name = _DEFAULTS.get(resource_type)
    return (_SD_BASE + name,) if name else ()


def known_profiles() -> list[str]:
    """Canonical URLs of all profiles (resource profiles and extensions) in ``profiles/``."""
    return sorted(sd["url"] for sd in conformance().all("StructureDefinition"))


def profile_resource_type(url: str) -> str | None:
    """The resource type a profile constrains (None for extensions and unknown URLs)."""
    compiled = compiled_profile(url.split("|", 1)[0])
    if compiled is None or compiled.resource_type == "Extension":
        return None
    return str(compiled.resource_type)


def profiles_for(resource: dict[str, Any]) -> tuple[str, ...]:
    """``meta.profile`` plus the alliance default for the type, without duplicates."""
    meta = resource.get("meta") if isinstance(resource, dict) else None
    claimed = meta.get("profile", []) if isinstance(meta, dict) else []
    urls = [u.split("|", 1)[0] for u in claimed if isinstance(u, str)]
    return tuple(dict.fromkeys([*urls, *default_profiles(str(resource.get("resourceType")))]))


def validate(resource: dict[str, Any], profiles: Sequence[str] = (), *, structure: bool = True) -> list[Issue]:
    """All findings for ``resource`` against the base structure (unless ``structure=False``)
    and each profile in ``profiles`` (canonical URLs, ``|version`` ignored)."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return [issue("YL-3004", "", detail="a JSON object with a resourceType is expected")]
    resource_type = resource["resourceType"]
    issues: list[Issue] = structure_issues(resource) if structure else []
    check_formats(resource, resource_type, issues)
    for url in dict.fromkeys(u.split("|", 1)[0] for u in profiles):
        compiled = compiled_profile(url)
        if compiled is None:
            issues.append(issue("YL-3002", resource_type, profile=url))
        elif compiled.resource_type != resource_type:
            issues.append(
                issue("YL-3003", resource_type, profile=url, expected=compiled.resource_type, actual=resource_type)
            )
        else:
            Walker(compiled.url, issues).element(compiled.root, resource, resource_type)
    return _dedupe(issues)


def _dedupe(issues: list[Issue]) -> list[Issue]:
    """One finding per (code, expression) for required elements: the base structure and a
    profile may both report the same missing element."""
    required = {i.expression for i in issues if i.error_code == "YL-3001" and i.code == "required"}
    out, seen = [], set()
    for i in issues:
        if i.error_code == "YL-3010" and i.expression in required:
            continue
        key = (i.error_code, i.expression, i.en)
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out


def validate_json(text: str | bytes, profiles: Sequence[str] = (), *, structure: bool = True) -> list[Issue]:
    """:func:`validate` of a JSON text, which also refuses what a parsed ``dict`` no longer
    shows: a property given twice in one object (``YL-3072``; the JSON form of FHIR forbids it,
    and a parser silently keeps one of the two), a decimal whose text breaks the R5 grammar
    (``YL-3070``), and text that is not JSON (``YL-3004``)."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        resource = json.loads(text, object_pairs_hook=pairs)
    except (ValueError, UnicodeDecodeError) as exc:
        return [issue("YL-3004", "", detail=f"not JSON ({exc})")]
    found = [
        issue("YL-3072", str(resource.get("resourceType", "")) if isinstance(resource, dict) else "", name=name)
        for name in dict.fromkeys(duplicates)
    ]
    found += validate(resource, profiles, structure=structure)
    if structure and isinstance(resource, dict) and model_class(str(resource.get("resourceType"))) is not None:
        # numbers as the client wrote them: a parsed float has lost its text (18 fraction digits,
        # an exponent form), which the R5 decimal grammar judges
        named = {i.expression for i in found}
        exact = base_issues(loads_exact(text), str(resource["resourceType"]))
        found += [i for i in exact if i.error_code == "YL-3070" and i.expression not in named]
    return found
