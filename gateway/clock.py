"""Server timestamps in the FHIR instant form the store sorts by (UTC, microseconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_instant() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def instant_of(epoch: float) -> str:
    """:func:`now_instant`'s form of a ``time.time()`` reading taken earlier (formatting it
    costs more than reading the clock: hot paths keep the float, others format it)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
