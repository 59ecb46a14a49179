"""The ingest journal: every inbound message, raw, with its outcome, before it is acknowledged.

An accepted message is saved in the same database transaction as the resources it created, so
one commit makes both durable before the ACK; a rejected one is saved with its OperationOutcome
after its resources were rolled back to a savepoint. Rejected messages are the dead-letter
queue that ``yaolian replay`` re-runs after a mapping fix. ``(adapter, control_id)`` is unique,
so a resend of the same MSH-10 finds the earlier reply instead of creating anything new. A
crash before the commit leaves no trace and sends no ACK, so the sender sends again.

The table is the store's (:meth:`gateway.store.base.Store.journal_find` and the rest); this
module is the ingest side's view of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypedDict

from gateway.store.base import DuplicateMessage, JournalEntry, Store

RECEIVED, ACCEPTED, REJECTED = "received", "accepted", "rejected"

__all__ = ["ACCEPTED", "RECEIVED", "REJECTED", "DuplicateMessage", "Journal", "JournalEntry", "MessageFields"]


class MessageFields(TypedDict):
    """The message's side of a journal save (the outcome's side is given per attempt)."""

    adapter: str
    channel: str
    control_id: str | None
    raw: bytes
    previous: JournalEntry | None


class Journal:
    def __init__(self, store: Store) -> None:
        self.store = store

    def find(self, adapter: str, control_id: str | None) -> JournalEntry | None:
        return self.store.journal_find(adapter, control_id)

    def get(self, seq: int) -> JournalEntry | None:
        return self.store.journal_get(seq)

    def dead_letters(self, adapter: str | None = None, limit: int = 1000) -> Iterator[JournalEntry]:
        yield from self.store.journal_dead_letters(adapter, limit)

    def counts(self) -> dict[str, int]:
        return self.store.journal_counts()
