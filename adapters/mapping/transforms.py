"""Value transforms used by mapping rules, each with its inverse where one exists.

Dates: HL7 TS (``20251103092500``, ``20251103092500+0800``), ISO-ish (``2025-11-03 09:25``) and
Chinese (``2025年11月3日``, ``2025年11月3日 9时25分``) all become FHIR ``dateTime``; a time
without an offset is read as China Standard Time (+08:00), the county HIS convention.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

__all__ = [
    "CST",
    "fhir_date",
    "fhir_datetime",
    "fhir_decimal",
    "fhir_integer",
    "hl7_ts",
    "source_decimal",
]

CST = timezone(timedelta(hours=8))

_TS = re.compile(
    r"^(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.\d{1,4})?)?)?)?)?)?"
    r"([+-]\d{4})?$"
)
_ISO = re.compile(
    r"^(\d{4})[-/](\d{1,2})(?:[-/](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?)?)?$"
)
_ZH = re.compile(
    r"^(\d{4})年(\d{1,2})月(?:(\d{1,2})日)?(?:\s*(\d{1,2})(?:时|:|点)(\d{1,2})分?"
    r"(?:(\d{1,2})秒?)?)?$"
)


def _parts(text: str) -> tuple[list[str | None], str | None] | None:
    text = text.strip()
    m = _TS.match(text)
    if m:
        return list(m.groups()[:6]), m.group(7)
    m = _ISO.match(text) or _ZH.match(text)
    if m:
        groups = list(m.groups())
        tz = groups[6] if len(groups) > 6 else None
        return groups[:6], tz
    return None


def _offset(tz: str | None) -> timezone:
    if not tz:
        return CST
    if tz == "Z":
        return UTC
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


def fhir_datetime(text: str) -> str | None:
    """FHIR dateTime at the precision given, or None when ``text`` is not a date."""
    parsed = _parts(text)
    if parsed is None:
        return None
    (year, month, day, hour, minute, second), tz = parsed
    try:
        if hour is not None:
            moment = datetime(
                int(year or 0),
                int(month or 1),
                int(day or 1),
                int(hour),
                int(minute or 0),
                int(second or 0),
                tzinfo=_offset(tz),
            )
            return moment.isoformat()
        if day is not None:
            return datetime(int(year or 0), int(month or 1), int(day)).strftime("%Y-%m-%d")
        if month is not None:
            if not 1 <= int(month) <= 12:
                return None
            return f"{year}-{int(month):02d}"
        return year
    except ValueError:
        return None


def fhir_date(text: str) -> str | None:
    value = fhir_datetime(text)
    return value[:10] if value else None


def hl7_ts(value: str) -> str:
    """FHIR date/dateTime -> HL7 TS; +08:00 is the implied local zone and is left out."""
    if "T" not in value:
        return value.replace("-", "")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.utcoffset() == CST.utcoffset(None):
        return moment.strftime("%Y%m%d%H%M%S")
    return moment.strftime("%Y%m%d%H%M%S%z")


def fhir_decimal(text: str) -> int | float | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    if number == number.to_integral_value() and "." not in text and "e" not in text.lower():
        return int(number)
    return float(number)


def fhir_integer(text: str) -> int | None:
    text = text.strip()
    if text.lstrip("+-").isdigit():
        return int(text)
    return None


def source_decimal(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
