"""Reporting periods: a month (``2025-11``) or a year (``2025``), as half-open text ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import BadRequest

_PERIOD = re.compile(r"^(\d{4})(?:-(0[1-9]|1[0-2]))?$")


@dataclass(frozen=True)
class Period:
    text: str
    start: str  # YYYY-MM-DD, inclusive
    end: str  # YYYY-MM-DD, exclusive

    def contains(self, when: str | None) -> bool:
        """Whether a date/dateTime (its day, as written) falls in the period."""
        return bool(when) and self.start <= str(when)[:10] < self.end

    @property
    def last_day(self) -> str:
        from datetime import date, timedelta

        return (date.fromisoformat(self.end) - timedelta(days=1)).isoformat()


def parse_period(text: str, field: str = "period") -> Period:
    match = _PERIOD.match(text or "")
    if not match:
        raise BadRequest("YL-1202", value=text, expression=[field])
    year, month = int(match.group(1)), match.group(2)
    if month is None:
        return Period(text, f"{year:04d}-01-01", f"{year + 1:04d}-01-01")
    m = int(month)
    end = f"{year + 1:04d}-01-01" if m == 12 else f"{year:04d}-{m + 1:02d}-01"
    return Period(text, f"{year:04d}-{m:02d}-01", end)
