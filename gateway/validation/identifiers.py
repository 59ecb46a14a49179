"""Formats and check characters of the Chinese identifier and code systems (DOMAIN.md).

:data:`FORMATS` is the one source of these rules: the validator applies them to every
``Identifier`` (system + value) and ``Coding`` (system + code) it meets, the terminology
functions use them for code systems whose code list is not distributed (ICD-10 China), and
``scripts/build_profiles.py`` writes them into the NamingSystems' ``uniqueId.comment``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = ["FORMATS", "IdentifierFormat", "resident_id_check_char", "resident_id_problem"]

RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK = "10X98765432"


def resident_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits (GB 11643-1999)."""
    total = sum(int(d) * w for d, w in zip(first17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK[total % 11]


def resident_id_problem(value: str) -> tuple[str, str] | None:
    """None when a well-formed number is also plausible, else (error code, expected check char)."""
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return ("YL-3042", "")
    expected = resident_id_check_char(value[:17])
    if value[17] != expected:
        return ("YL-3041", expected)
    return None


@dataclass(frozen=True, slots=True)
class IdentifierFormat:
    name_en: str
    name_zh: str
    pattern: re.Pattern[str]
    resident_id: bool = False  # also check birth date and MOD 11-2
    warn_unless_prefix: str | None = None  # YL-3043 when the value does not start with it


def _f(en: str, zh: str, regex: str, **kw: object) -> IdentifierFormat:
    return IdentifierFormat(en, zh, re.compile(regex), **kw)  # type: ignore[arg-type]


FORMATS: dict[str, IdentifierFormat] = {
    "urn:oid:2.16.156.10011.1.3": _f(
        "resident ID card number",
        "居民身份证号",
        r"^[1-9]\d{5}(18|19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[\dX]$",
        resident_id=True,
    ),
    "http://yaolian.org/fhir/sid/fixmedins-code": _f("insurance institution code", "定点医疗机构编码", r"^[HP]\d{11}$"),
    "http://yaolian.org/fhir/sid/nhsa-physician-code": _f(
        "insurance physician code (at most 20 characters)", "医保医师代码（至多20位）", r"^\S.{0,19}$"
    ),
    "http://yaolian.org/fhir/sid/nhsa-drug-code": _f(
        "national insurance drug code", "医保药品分类与代码", r"^[XZ][A-Z0-9]{22}$"
    ),
    # the GB 18937 check digit is not confirmed: the shape only, never the check digit
    "http://yaolian.org/fhir/sid/drug-standard-code": _f("drug standard code (本位码)", "药品本位码", r"^869\d{11}$"),
    "http://yaolian.org/fhir/sid/drug-trace-code": _f(
        "drug traceability code", "药品追溯码", r"^\d{20}$", warn_unless_prefix="8"
    ),
    "urn:oid:2.16.156.10011.2.3.3.11.1": _f(
        "ICD-10 China code", "ICD-10 疾病编码", r"^[A-Z]\d{2}(\.[0-9x]\d{2}(x\d{3})?)?$"
    ),
}
