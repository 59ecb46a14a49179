"""Server timestamps in the FHIR instant form the store sorts by (UTC, microseconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_instant() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
