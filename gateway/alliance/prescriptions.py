"""What the formulary checks and the review read off a ``MedicationRequest`` of the
``yl-prescription`` profile: the prescribing member, the drug, days of supply, category, the
long-term and extended-prescription extensions (POL-06, POL-09)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from gateway.security.policy import MEMBER_SYSTEM

SD = "http://yaolian.org/fhir/StructureDefinition/"
CATEGORY_URL = SD + "yl-prescription-category"
LONG_TERM_URL = SD + "yl-long-term-prescription"
EXTENDED_URL = SD + "yl-extended-prescription"
REVIEW_URL = SD + "yl-central-review-result"
_DAYS_PER = {
    "d": 1.0,
    "day": 1.0,
    "days": 1.0,
    "天": 1.0,
    "wk": 7.0,
    "week": 7.0,
    "周": 7.0,
    "mo": 30.0,
    "月": 30.0,
    "h": 1 / 24,
    "min": 1 / 1440,
}


def extension(resource: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext
    return None


def sub_extension(ext: Mapping[str, Any] | None, url: str) -> Mapping[str, Any] | None:
    for part in (ext or {}).get("extension") or ():
        if isinstance(part, dict) and part.get("url") == url:
            return part
    return None


def tagged_member(resource: Mapping[str, Any]) -> str | None:
    """The owning member the write path stamped (``meta.tag`` in :data:`MEMBER_SYSTEM`)."""
    for tag in (resource.get("meta") or {}).get("tag") or ():
        if isinstance(tag, dict) and tag.get("system") == MEMBER_SYSTEM and tag.get("code"):
            return str(tag["code"])
    return None


def medication_reference(rx: Mapping[str, Any]) -> str | None:
    medication = rx.get("medication") or {}
    reference = (medication.get("reference") or {}).get("reference")
    return reference if isinstance(reference, str) else None


def medication_codes(rx: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(system, code) of a drug named by concept instead of by reference."""
    concept = (rx.get("medication") or {}).get("concept") or {}
    return [(str(c.get("system")), str(c.get("code"))) for c in concept.get("coding") or () if c.get("code")]


def days_supply(rx: Mapping[str, Any]) -> float | None:
    duration = (rx.get("dispenseRequest") or {}).get("expectedSupplyDuration") or {}
    value = duration.get("value")
    if not isinstance(value, int | float):
        return None
    unit = str(duration.get("code") or duration.get("unit") or "d")
    return float(value) * _DAYS_PER.get(unit, 1.0)


CATEGORY_SYSTEM = "http://yaolian.org/fhir/CodeSystem/prescription-category"


def category(rx: Mapping[str, Any]) -> str:
    """The prescription category (处方类别): the profile's extension, else a
    ``MedicationRequest.category`` coding of the same code system."""
    coding = (extension(rx, CATEGORY_URL) or {}).get("valueCoding") or {}
    if coding.get("code"):
        return str(coding["code"])
    for concept in rx.get("category") or ():
        for found in (concept or {}).get("coding") or ():
            if found.get("system") == CATEGORY_SYSTEM and found.get("code"):
                return str(found["code"])
    return ""


def long_term(rx: Mapping[str, Any]) -> tuple[bool, str | None, int | None]:
    """(long-term?, its chronic group, its maxWeeks)."""
    ext = extension(rx, LONG_TERM_URL)
    if ext is None:
        return False, None, None
    group = ((sub_extension(ext, "chronicGroup") or {}).get("valueCoding") or {}).get("code")
    weeks = (sub_extension(ext, "maxWeeks") or {}).get("valuePositiveInt")
    return True, group, weeks if isinstance(weeks, int) else None


def dispensing_member_reference(rx: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``dispensingMember`` Reference of an extended prescription (延伸处方), else None."""
    part = sub_extension(extension(rx, EXTENDED_URL), "dispensingMember")
    value = (part or {}).get("valueReference")
    return value if isinstance(value, dict) else None


def diagnoses(rx: Mapping[str, Any], conditions: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Diagnosis codes of ``reason`` (concepts, and Conditions it references that came along)."""
    codes = []
    for reason in rx.get("reason") or ():
        concept = (reason or {}).get("concept") or {}
        referenced = ((reason or {}).get("reference") or {}).get("reference")
        if not concept and conditions and isinstance(referenced, str) and referenced in conditions:
            concept = conditions[referenced].get("code") or {}
        for coding in concept.get("coding") or ():
            if coding.get("code"):
                codes.append(str(coding["code"]))
    return codes


def authored_day(rx: Mapping[str, Any]) -> str | None:
    authored = rx.get("authoredOn")
    return authored[:10] if isinstance(authored, str) and len(authored) >= 10 else None


def parse_day(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


def reference_of(value: Any) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) else None
