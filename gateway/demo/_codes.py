"""Identifier systems, code systems and profile URLs the demo data is written against.

They are the ones the alliance profiles in ``profiles/`` declare (NamingSystem-*, CodeSystem-*,
StructureDefinition-*); nothing here is a second source of truth, only the names the demo uses.
"""

from __future__ import annotations

SD = "http://yaolian.org/fhir/StructureDefinition/"
CS = "http://yaolian.org/fhir/CodeSystem/"
SID = "http://yaolian.org/fhir/sid/"

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
PRESCRIPTION_NUMBER = "urn:oid:2.16.156.10011.1.20"
ICD10 = "urn:oid:2.16.156.10011.2.3.3.11.1"
DOSE_FORM = "urn:oid:2.16.156.10011.2.3.1.211"
ROUTE = "urn:oid:2.16.156.10011.2.3.1.158"
UCUM = "http://unitsofmeasure.org"

FIXMEDINS = SID + "fixmedins-code"
PHYSICIAN_CODE = SID + "nhsa-physician-code"
PSN_NO = SID + "nhsa-psn-no"
NHSA_DRUG = SID + "nhsa-drug-code"
STANDARD_CODE = SID + "drug-standard-code"
MEMBER_DRUG = SID + "member-drug-code"
MEMBER = SID + "member"
HI_RXNO = SID + "hi-rxno"
TRACE_CODE = SID + "drug-trace-code"

ALLIANCE_TIER = CS + "alliance-tier"
PRESCRIPTION_CATEGORY = CS + "prescription-category"
CHRONIC_GROUP = CS + "chronic-disease-group"
REVIEW_RESULT = CS + "review-result"
SUPPLY_KIND = CS + "supply-request-kind"
DEMAND_REASON = CS + "demand-reason"

# ISO 7064 MOD 11-2 (GB 11643-1999), as DOMAIN.md states it.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def resident_id(area: str, birth_date: str, sequence: int) -> str:
    """A resident ID card number with its check character.

    ``birth_date`` is ``YYYY-MM-DD``; ``sequence`` (0–999) is odd for men and even for women,
    so the caller chooses it to agree with ``Patient.gender``.
    """
    first17 = f"{area}{birth_date.replace('-', '')}{sequence:03d}"
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError(f"not 17 digits: {first17!r}")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return first17 + _CHECK[total % 11]


def profile(name: str) -> dict[str, list[str]]:
    return {"profile": [SD + name]}


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {"coding": [coding(system, code, display)]}
    if text:
        out["text"] = text
    return out


def days(value: int) -> dict[str, object]:
    return {"value": value, "unit": "天", "system": UCUM, "code": "d"}
