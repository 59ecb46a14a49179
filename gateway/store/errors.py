"""Errors the store raises about what it was asked (never the FHIR/REST errors of ``gateway.errors``:
the layers above decide what a client is told, and ``gateway.api.errors`` maps what reaches it)."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's own errors."""


class InvalidSearchValue(StoreError, ValueError):
    """A search value the index tables cannot be compared with (a date that is no date, …)."""

    def __init__(self, name: str, value: str, reason: str) -> None:
        super().__init__(f"{name}={value}: {reason}")
        self.name = name
        self.value = value
        self.reason = reason
