"""Direct checks of FHIR primitive values, sound with respect to the fhir.resources types.

The structural fast path used to run one pydantic ``TypeAdapter`` per primitive (about 70 per
prescription and drug), a quarter of the write path. :func:`quick_check` gives, for an
annotation of a fhir.resources field, a predicate that is True only for values the type
certainly accepts, written from the same definitions (fhir_core's regexes and bounds) and
limited to the plain JSON shape of each type: ``str`` for strings, ``int`` (never ``bool``) for
integers, ``bool`` for booleans. Everything else (a decimal or integer given as a string, a
leap second, more than six fractional digits, a string led by whitespace other than space, tab,
CR or LF) is "not sure" and goes to the adapter, so the predicates may be narrower than the
types but never wider;
``tests/validation/test_fastpath.py`` checks that on edge cases.

Regex engines: pydantic matches ``pattern`` constraints with Rust's regex, unanchored, whose
``\\s`` is Unicode White_Space; Python's ``\\s`` (``str.isspace``) is a superset of it, so a
class written as "not Python whitespace" here is inside Rust's ``\\S``.
"""

from __future__ import annotations

import datetime
import re
import typing
from collections.abc import Callable
from typing import Any

from fhir_core import constraints as fhir_constraints
from fhir_core import types as fhir_types

__all__ = ["quick_check"]

Check = Callable[[Any], bool]

_CODE = re.compile(r"[^\s]+(?: [^\s]+)*")
_ID = re.compile(r"[A-Za-z0-9\-.]+")
_OID = re.compile(r"urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+")
# the time part of a dateTime, instant or time as the fhir_core regexes allow it, minus leap
# seconds and with at most six fractional digits (what Python's datetime holds)
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?")
_BIG = 10**300  # str() of larger ints is slow or refused; the adapter decides


def _boolean(value: Any) -> bool:
    return value is True or value is False


def _string(value: Any) -> bool:
    # fhir_core: pattern [ \r\n\t\S]+ (searched); a first character that is not whitespace,
    # or is one of those four, matches however the pattern is applied
    return type(value) is str and value != "" and (not value[0].isspace() or value[0] in " \r\n\t")


def _any_string(value: Any) -> bool:
    return type(value) is str


def _matching(regex: re.Pattern[str], max_length: int | None = None) -> Check:
    def check(value: Any) -> bool:
        return (
            type(value) is str
            and (max_length is None or len(value) <= max_length)
            and regex.fullmatch(value) is not None
        )

    return check


def _integer(low: int, high: int) -> Check:
    def check(value: Any) -> bool:
        return type(value) is int and low <= value <= high

    return check


def _decimal(value: Any) -> bool:
    t = type(value)
    if t is int:
        return bool(-_BIG < value < _BIG)
    if t is float or t is str:
        # fhir_core's Decimal validator is exactly this test on str(value)
        return fhir_types.Decimal.pattern.fullmatch(str(value)) is not None
    return False


def real_date(value: str) -> bool:
    """``value`` starts with YYYY-MM-DD (already matched): is that a calendar date?"""
    try:
        datetime.date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return False
    return True


def _time_part(value: str) -> bool:
    """Everything after ``T`` in a dateTime or instant matched by fhir_core's regex."""
    if value.endswith("Z"):
        clock = value[:-1]
    else:
        clock = value[:-6]  # the regex guarantees a ±hh:mm offset otherwise
    return _TIME.fullmatch(clock) is not None


def _date(value: Any) -> bool:
    if type(value) is not str or fhir_types.Date.pattern.fullmatch(value) is None:
        return False
    return len(value) < 10 or real_date(value)  # YYYY and YYYY-MM are kept as strings


def _date_time(value: Any) -> bool:
    if type(value) is not str or fhir_types.DateTime.pattern.fullmatch(value) is None:
        return False
    if len(value) < 10:
        return True
    return real_date(value) and (len(value) == 10 or _time_part(value[11:]))


def _instant(value: Any) -> bool:
    if type(value) is not str or fhir_types.Instant.pattern.fullmatch(value) is None:
        return False
    return real_date(value) and _time_part(value[11:])


def _time(value: Any) -> bool:
    return (
        type(value) is str
        and fhir_types.Time.pattern.fullmatch(value) is not None
        and _TIME.fullmatch(value) is not None
    )


def quick_check(annotation: Any) -> Check | None:
    """A sound predicate for values of ``annotation`` (see the module docstring), or None
    when every value has to go through the adapter."""
    if typing.get_origin(annotation) is typing.Union:
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return quick_check(inner[0]) if len(inner) == 1 else None  # None items: not sure
    if annotation is bool:
        return _boolean
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    base, *metadata = typing.get_args(annotation)
    if len(metadata) != 1:
        return None
    meta = metadata[0]
    kind = type(meta)
    if kind is fhir_types.String and base is str:
        return _string
    if kind in (fhir_types.Uri, fhir_types.Canonical) and base is str and meta.pattern.pattern == r"\S*":
        return _any_string  # \S* matches the empty prefix of any string
    if kind is fhir_types.Markdown and base is str and meta.pattern.pattern == r"\s*(\S|\s)*":
        return _any_string
    if kind is fhir_types.Code and base is str:
        return _matching(_CODE)
    if kind is fhir_types.Id and base is str and fhir_constraints.TYPES_ID_PATTERN == r"^[A-Za-z0-9\-.]+$":
        return _matching(_ID, fhir_constraints.TYPES_ID_MAX_LENGTH)
    if kind is fhir_types.Oid and base is str:
        return _matching(_OID)
    if kind is fhir_types.Decimal:
        return _decimal
    if kind in (fhir_types.Integer, fhir_types.UnsignedInt, fhir_types.PositiveInt, fhir_types.Integer64):
        return _integer(meta.min_length, meta.max_length)
    if kind is fhir_types.Date:
        return _date
    if kind is fhir_types.DateTime:
        return _date_time
    if kind is fhir_types.Instant:
        return _instant
    if kind is fhir_types.Time:
        return _time
    return None
