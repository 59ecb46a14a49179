"""The ingest journal: every inbound message, raw, with its outcome, before it is acknowledged.

An accepted message is saved in the same database transaction as the resources it created, so
one commit makes both durable before the ACK; a rejected one is saved in a commit of its own
with the OperationOutcome. Rejected messages are the dead-letter queue that ``yaolian replay``
re-runs after a mapping fix. ``(adapter, control_id)`` is unique, so a resend of the same
MSH-10 finds the earlier reply instead of creating anything new. A crash before the commit
leaves no trace and sends no ACK, so the sender sends again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from sqlalchemy import ColumnElement, Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.service.clock import now_instant
from gateway.store.schema import ingest_messages
from gateway.store.sql import SqlStore

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
        conn: Connection,
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
        """Write the message with its outcome on ``conn`` (inside the caller's transaction).

        An accepted message is saved in the same transaction as the resources it created, so
        one commit makes both durable; a first-time insert that collides with a concurrent
        copy of the same message raises :class:`DuplicateMessage` and the caller rolls back.
        """
        if previous is not None:
            conn.execute(
                update(ingest_messages)
                .where(ingest_messages.c.seq == previous.seq)
                .values(status=status, outcome=outcome, reply=reply, attempts=ingest_messages.c.attempts + 1)
            )
            return previous.seq
        try:
            seq = conn.execute(
                insert(ingest_messages)
                .values(
                    adapter=adapter,
                    channel=channel,
                    control_id=control_id,
                    received=now_instant(),
                    status=status,
                    raw=raw,
                    outcome=outcome,
                    reply=reply,
                    attempts=1,
                )
                .returning(ingest_messages.c.seq)
            ).scalar_one()
        except IntegrityError:
            raise DuplicateMessage(adapter, control_id) from None
        return int(seq)

    def save_alone(
        self, *, status: str, outcome: bytes | None, reply: bytes | None, **fields: Unpack[MessageFields]
    ) -> int:
        """:meth:`save` in a transaction of its own (rejected messages: nothing else to commit)."""
        with self.store.write_connection() as conn, conn.begin():
            return self.save(conn, status=status, outcome=outcome, reply=reply, **fields)

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
