"""Normalised forms of search values, shared by indexing (write time) and querying.

Dates become inclusive UTC ranges in a fixed-width text form so both SQLite and PostgreSQL
compare them as strings; numbers get the implicit range of their precision (FHIR R5 search
page, "number" and "date").
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation

DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2})(?::(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
MIN_DATE = "0001-01-01T00:00:00.000000"
MAX_DATE = "9999-12-31T23:59:59.999999"
_FMT = "%Y-%m-%dT%H:%M:%S.%f"


PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
# Parameter types the index tables can compare (composite: by its components).
SEARCHABLE_TYPES = frozenset({"token", "string", "date", "reference", "number", "quantity", "uri", "composite"})


class ValueFormatError(ValueError):
    """A search value or stored value that cannot be understood."""


def split_prefix(value: str) -> tuple[str, str]:
    """``ge2020`` -> ("ge", "2020"); a value without a comparison prefix compares with ``eq``."""
    if len(value) > 2 and value[:2] in PREFIXES and not value[2].isalpha():
        return value[:2], value[2:]
    return "eq", value


def check_value(kind: str, value: str) -> None:
    """Raise :class:`ValueFormatError` for a value of a ``kind`` parameter that no stored value can be
    compared with (the query parser reports it to the client; the store then meets only good values).
    Composite values are checked by their components (``gateway.search.query``)."""
    if kind not in SEARCHABLE_TYPES:
        raise ValueFormatError(f"parameter type {kind} is not searchable")
    if kind == "date":
        date_range(split_prefix(value)[1])
    elif kind == "number":
        number_range(split_prefix(value)[1])
    elif kind == "quantity":
        number_range(split_prefix(unescape(split_values(value, "|")[0]))[1])


def normalise_string(value: str) -> str:
    """Case- and accent-insensitive form (NFKC folds full-width characters common in Chinese input)."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", stripped).casefold().strip()


def _to_utc_text(moment: datetime) -> str:
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            moment = moment.replace(tzinfo=None)
    return moment.strftime(_FMT).rjust(len(MIN_DATE), "0")


def date_range(value: str) -> tuple[str, str]:
    """Inclusive UTC range covered by a FHIR date, dateTime or instant, by its precision.

    Values without a time zone are taken as UTC (documented; FHIR leaves it to the server).
    """
    match = DATE_RE.match(value.strip())
    if not match:
        raise ValueFormatError(f"not a FHIR date/dateTime: {value!r}")
    g = match.groupdict()
    tz_text = g["tz"]
    tz = UTC
    if tz_text and tz_text != "Z":
        sign = 1 if tz_text[0] == "+" else -1
        hours, minutes = int(tz_text[1:3]), int(tz_text[4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        year = int(g["y"])
        if g["m"] is None:
            low = datetime(year, 1, 1, tzinfo=tz)
            high = datetime(year + 1, 1, 1, tzinfo=tz) if year < 9999 else None
        elif g["d"] is None:
            month = int(g["m"])
            low = datetime(year, month, 1, tzinfo=tz)
            nxt = (year + 1, 1) if month == 12 else (year, month + 1)
            high = datetime(nxt[0], nxt[1], 1, tzinfo=tz) if nxt[0] <= 9999 else None
        else:
            day = datetime(year, int(g["m"]), int(g["d"]), tzinfo=tz)
            if g["H"] is None:
                low, high = day, day + timedelta(days=1)
            elif g["M"] is None:
                low = day.replace(hour=int(g["H"]))
                high = low + timedelta(hours=1)
            elif g["S"] is None:
                low = day.replace(hour=int(g["H"]), minute=int(g["M"]))
                high = low + timedelta(minutes=1)
            else:
                frac = g["f"] or ""
                micro = int((frac + "000000")[:6]) if frac else 0
                low = day.replace(hour=int(g["H"]), minute=int(g["M"]), second=int(g["S"]), microsecond=micro)
                step = timedelta(microseconds=10 ** max(0, 6 - len(frac))) if frac else timedelta(seconds=1)
                high = low + step
    except (ValueError, OverflowError) as exc:
        raise ValueFormatError(f"not a valid date: {value!r} ({exc})") from None
    low_text = _to_utc_text(low)
    if high is None:
        return low_text, MAX_DATE
    return low_text, _to_utc_text(high - timedelta(microseconds=1))


def number_range(text: str) -> tuple[Decimal, Decimal, Decimal]:
    """``(value, low, high)`` where [low, high) is the implicit range of the text's precision."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueFormatError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise ValueFormatError(f"not a finite number: {text!r}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(max(exponent, -INDEX_SCALE) - 1)
    return index_decimal(value), index_decimal(value - half), index_decimal(value + half)


# The number and quantity index columns hold NUMERIC(38, 12): |x| < 10^26, 12 decimals.
INDEX_SCALE = 12
_WIDE = Context(prec=80)
INDEX_MAX = _WIDE.subtract(Decimal("1e26"), Decimal("1e-12"))
_INDEX_MIN = INDEX_MAX.copy_negate()  # unary minus would round to the default 28 digits


def index_decimal(value: Decimal) -> Decimal:
    """``value`` as the index can hold it (issue 12: a Quantity of 1e30 was a 500 on PostgreSQL,
    a search for 1e-99999 too): saturated at +/-(10^26 - 10^-12), decimals past the 13th
    dropped. The resource keeps the client's exact text; only its index row saturates."""
    if value > INDEX_MAX:
        return INDEX_MAX
    if value < _INDEX_MIN:
        return _INDEX_MIN
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -INDEX_SCALE - 1:
        return value.quantize(Decimal(1).scaleb(-INDEX_SCALE - 1), context=_WIDE)
    return value


def split_token(text: str) -> tuple[str | None, str | None]:
    """``system|code`` -> (system, code); ``|code`` -> ("", code); ``code`` -> (None, code)."""
    parts = _split_unescaped(text, "|", 1)
    if len(parts) == 1:  # no unescaped bar: a bare code (``L\|x`` is the code ``L|x``)
        return None, unescape(text)
    system, code = parts
    return unescape(system), (unescape(code) if code != "" else None)


def _split_unescaped(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    if "\\" not in text:  # nothing escaped: a plain split (every conditional create's token)
        return text.split(sep, maxsplit)
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def split_values(text: str, sep: str = ",") -> list[str]:
    """Split on an unescaped separator (``,`` for OR lists, ``$`` for composites)."""
    return _split_unescaped(text, sep)


def unescape(text: str) -> str:
    return re.sub(r"\\([\\,$|])", r"\1", text)
