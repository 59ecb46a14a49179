"""The ingest journal's table on the SQL store: reads on SQLAlchemy Core, the per-message
find and save as the write path's prebuilt statements (:mod:`.driver_sql`).

An accepted message is saved in the same transaction as the resources it created, so one
commit makes both durable before the ACK; ``(adapter, control_id)`` is unique, so a resend of
the same MSH-10 finds the earlier reply instead of creating anything new.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from gateway.store.base import JournalEntry
from gateway.store.schema import ingest_messages

#: Statuses of messages ``yaolian replay`` re-runs (received: a crash between save and outcome).
DEAD_LETTER_STATUSES = ("rejected", "received")

_COLUMNS = (
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


def journal_entry(row: Sequence[Any]) -> JournalEntry:
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


def find(conn: Connection, adapter: str, control_id: str | None) -> JournalEntry | None:
    c = ingest_messages.c
    row = conn.execute(select(*_COLUMNS).where(c.adapter == adapter, c.control_id == control_id)).first()
    return journal_entry(row) if row else None


def get(conn: Connection, seq: int) -> JournalEntry | None:
    row = conn.execute(select(*_COLUMNS).where(ingest_messages.c.seq == seq)).first()
    return journal_entry(row) if row else None


def dead_letters(conn: Connection, adapter: str | None, limit: int) -> list[JournalEntry]:
    c = ingest_messages.c
    clauses: list[ColumnElement[bool]] = [c.status.in_(DEAD_LETTER_STATUSES)]
    if adapter:
        clauses.append(c.adapter == adapter)
    rows = conn.execute(select(*_COLUMNS).where(*clauses).order_by(c.seq).limit(limit)).all()
    return [journal_entry(row) for row in rows]


def counts(conn: Connection) -> dict[str, int]:
    c = ingest_messages.c
    rows = conn.execute(select(c.status, func.count()).group_by(c.status)).all()
    return {r[0]: int(r[1]) for r in rows}
