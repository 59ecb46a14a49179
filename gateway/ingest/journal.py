"""The ingest journal: every inbound message, raw, with its outcome, before it is acknowledged.

An accepted message is saved in the same database transaction as the resources it created, so
one commit makes both durable before the ACK; a rejected one is saved with its OperationOutcome
after its resources were rolled back to a savepoint. Rejected messages are the dead-letter
queue that ``yaolian replay`` re-runs after a mapping fix. ``(adapter, control_id)`` is unique,
so a resend of the same MSH-10 finds the earlier reply instead of creating anything new. A
crash before the commit leaves no trace and sends no ACK, so the sender sends again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, func, select

from gateway.service.clock import now_instant
from gateway.store.schema import ingest_messages
from gateway.store.sql import SqlStore, SqlTransaction

RECEIVED, ACCEPTED, REJECTED = "received", "accepted", "rejected"


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    adapter: str
    channel: str
    control_id: str | None
    status: str
    raw: bytes
    outcome: bytes | None
    reply: bytes | None
    attempts: int


class MessageFields(TypedDict):
    """The message's side of :meth:`Journal.save` (the outcome's side is given per attempt)."""

    adapter: str
    channel: str
    control_id: str | None
    raw: bytes
    previous: JournalEntry | None


def _entry(row: Sequence[Any]) -> JournalEntry:
    r = tuple(row)
    return JournalEntry(
        int(r[0]),
        r[1],
        r[2],
        r[3],
        r[4],
        bytes(r[5]),
        bytes(r[6]) if r[6] is not None else None,
        bytes(r[7]) if r[7] is not None else None,
        int(r[8]),
    )


_COLS = (
    ingest_messages.c.seq,
    ingest_messages.c.adapter,
    ingest_messages.c.channel,
    ingest_messages.c.control_id,
    ingest_messages.c.status,
    ingest_messages.c.raw,
    ingest_messages.c.outcome,
    ingest_messages.c.reply,
    ingest_messages.c.attempts,
)


class DuplicateMessage(Exception):
    """Another request stored the same message first (a resend racing its original)."""


class Journal:
    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.engine = store.engine

    def save(
        self,
        tx: SqlTransaction,
        *,
        adapter: str,
        channel: str,
        control_id: str | None,
        raw: bytes,
        status: str,
        outcome: bytes | None,
        reply: bytes | None,
        previous: JournalEntry | None,
    ) -> int:
        """Write the message with its outcome inside the caller's transaction ``tx``.

        An accepted message is saved in the same transaction as the resources it created, so
        one commit makes both durable; a first-time insert that collides with a concurrent
        copy of the same message raises :class:`DuplicateMessage` and the caller rolls back.
        """
        sql, cursor = tx.sql, tx.cursor
        if previous is not None:
            cursor.execute(sql.journal_update, (status, outcome, reply, previous.seq))
            return previous.seq
        statement = sql.journal_insert
        values = (adapter, channel, control_id, now_instant(), status, raw, outcome, reply, 1)
        try:
            cursor.execute(statement.sql, statement.params(values))
        except self.engine.dialect.loaded_dbapi.IntegrityError:
            raise DuplicateMessage(adapter, control_id) from None
        return int(cursor.fetchone()[0])

    def find_in(self, tx: SqlTransaction, adapter: str, control_id: str | None) -> JournalEntry | None:
        """:meth:`find` inside a write transaction: it sees messages saved earlier in ``tx``."""
        cursor = tx.cursor
        cursor.execute(tx.sql.journal_find, (adapter, control_id))
        row = cursor.fetchone()
        return _entry(row) if row else None

    def find(self, adapter: str, control_id: str | None) -> JournalEntry | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*_COLS).where(ingest_messages.c.adapter == adapter, ingest_messages.c.control_id == control_id)
            ).first()
        return _entry(row) if row else None

    def get(self, seq: int) -> JournalEntry | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_COLS).where(ingest_messages.c.seq == seq)).first()
        return _entry(row) if row else None

    def dead_letters(self, adapter: str | None = None, limit: int = 1000) -> Iterator[JournalEntry]:
        clauses: list[ColumnElement[bool]] = [ingest_messages.c.status.in_([REJECTED, RECEIVED])]
        if adapter:
            clauses.append(ingest_messages.c.adapter == adapter)
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_COLS).where(*clauses).order_by(ingest_messages.c.seq).limit(limit)).all()
        for row in rows:
            yield _entry(row)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ingest_messages.c.status, func.count()).group_by(ingest_messages.c.status)).all()
        return {r[0]: int(r[1]) for r in rows}
