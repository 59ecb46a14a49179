"""The audit trail's tables on the SQL store (:mod:`gateway.security.audit` says what goes in).

Appending reads the last record's ``seq`` and ``hash`` and chains the new records to it, so
appends must not interleave: the caller holds the audit lock (PostgreSQL: a transaction-level
advisory lock taken by :meth:`~gateway.store.sql.SqlTransaction.audit_append`; SQLite: the
writer lock every write transaction holds). ``seq`` is last + 1, not a sequence: a
rolled-back append burns no number, so a gap in ``seq`` always means a deleted record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select, update

from gateway.clock import now_instant
from gateway.store.base import (
    AUDIT_GENESIS,
    AuditAnchor,
    AuditCriteria,
    AuditRecord,
    AuditRow,
    audit_hash,
)
from gateway.store.schema import audit_anchor, audit_log, audit_patient, audit_spool

#: The advisory lock key appends and prunes take on PostgreSQL.
AUDIT_LOCK = "yaolian:audit_log"

_COLUMNS = (
    audit_log.c.recorded,
    audit_log.c.client_id,
    audit_log.c.member,
    audit_log.c.action,
    audit_log.c.outcome,
    audit_log.c.patients,
    audit_log.c.event,
    audit_log.c.seq,
    audit_log.c.prev_hash,
    audit_log.c.hash,
)


def _row(r: Sequence[Any]) -> AuditRow:
    return AuditRow(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        tuple(r[5].split()) if r[5] else (),
        r[6].encode() if isinstance(r[6], str) else bytes(r[6]),  # edited to text: still checked
        int(r[7]),
        r[8],
        r[9],
    )


_COLUMN_NAMES = "seq, recorded, client_id, member, action, outcome, patients, event, prev_hash, hash"
_HEAD = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
_ANCHOR = "SELECT seq, hash FROM audit_anchor WHERE id = 1"
_INSERT = {
    "sqlite": (
        f"INSERT INTO audit_log ({_COLUMN_NAMES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "INSERT INTO audit_patient (seq, patient) VALUES (?, ?)",
    ),
    "postgresql": (
        f"INSERT INTO audit_log ({_COLUMN_NAMES}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        "INSERT INTO audit_patient (seq, patient) VALUES (%s, %s)",
    ),
}


def _chain(
    last: Sequence[Any] | None, records: Sequence[AuditRecord]
) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
    """The rows of ``records`` chained after ``last`` (seq, hash; None: the genesis)."""
    seq, prev = (int(last[0]), str(last[1])) if last else (0, AUDIT_GENESIS)
    rows: list[tuple[Any, ...]] = []
    patients: list[tuple[int, str]] = []
    for record in records:
        seq += 1
        digest = audit_hash(prev, seq, record)
        rows.append(
            (
                seq,
                record.recorded,
                record.client_id,
                record.member,
                record.action,
                record.outcome,
                " ".join(record.patients),
                record.event,
                prev,
                digest,
            )
        )
        patients.extend((seq, p) for p in dict.fromkeys(record.patients))
        prev = digest
    return rows, patients


def append(cursor: Any, records: Sequence[AuditRecord]) -> list[int]:
    """SQLite: chain ``records`` after the last one on the transaction's DBAPI cursor (prebuilt
    statements: through SQLAlchemy Core an append cost 0.6 ms of CPU, most of it compiling).
    The writer lock every SQLite write transaction holds serialises appends."""
    cursor.execute(_HEAD)
    last = cursor.fetchone()
    if last is None:
        cursor.execute(_ANCHOR)
        last = cursor.fetchone()
    rows, patients = _chain(last, records)
    insert_log, insert_patient = _INSERT["sqlite"]
    cursor.executemany(insert_log, rows)
    if patients:
        cursor.executemany(insert_patient, patients)
    return [r[0] for r in rows]


def append_pipelined(connection: Any, lock: int, records: Sequence[AuditRecord]) -> list[int]:
    """PostgreSQL: the advisory lock, then the head read after it (its own statement, so its
    snapshot is taken once the lock is held), in one round trip; the inserts in a second. Under
    load every round trip waits for the server to be scheduled: one statement each made an
    audit commit 5 ms instead of 1."""
    with connection.pipeline():
        connection.cursor().execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
        head = connection.cursor()
        head.execute(_HEAD)
        anchor = connection.cursor()
        anchor.execute(_ANCHOR)
    last = head.fetchone() or anchor.fetchone()
    rows, patients = _chain(last, records)
    insert_log, insert_patient = _INSERT["postgresql"]
    with connection.pipeline():
        cursor = connection.cursor()
        cursor.executemany(insert_log, rows)
        if patients:
            cursor.executemany(insert_patient, patients)
    return [r[0] for r in rows]


def rows_after(conn: Connection, after: int, limit: int) -> list[AuditRow]:
    """With each record's patient index rows (``indexed``), for verify."""
    found = conn.execute(select(*_COLUMNS).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(limit))
    rows = [_row(r) for r in found]
    if not rows:
        return rows
    p = audit_patient.c
    indexed: dict[int, list[str]] = {}
    for seq, patient in conn.execute(select(p.seq, p.patient).where(p.seq > after, p.seq <= rows[-1].seq)):
        indexed.setdefault(int(seq), []).append(patient)
    return [replace(row, indexed=tuple(indexed.get(row.seq, ()))) for row in rows]


def get_anchor(conn: Connection) -> AuditAnchor | None:
    a = audit_anchor.c
    r = conn.execute(select(a.seq, a.hash, a.pruned_at, a.pruned).where(a.id == 1)).first()
    return AuditAnchor(int(r[0]), r[1], r[2], int(r[3])) if r else None


def search(conn: Connection, criteria: AuditCriteria, count: int, offset: int) -> tuple[list[AuditRow], int]:
    c = audit_log.c
    clauses: list[ColumnElement[bool]] = []
    if criteria.patient:
        clauses.append(c.seq.in_(select(audit_patient.c.seq).where(audit_patient.c.patient == criteria.patient)))
    if criteria.client_id:
        clauses.append(c.client_id == criteria.client_id)
    if criteria.since:
        clauses.append(c.recorded >= criteria.since)
    if criteria.before:
        clauses.append(c.recorded < criteria.before)
    total = int(conn.execute(select(func.count()).select_from(audit_log).where(*clauses)).scalar_one())
    rows = conn.execute(select(*_COLUMNS).where(*clauses).order_by(c.seq.desc()).limit(count).offset(offset))
    return [_row(r) for r in rows], total


def prune(conn: Connection, before: str) -> AuditAnchor | None:
    """Delete what was recorded before ``before`` (the caller holds the audit lock)."""
    c = audit_log.c
    last = conn.execute(select(c.seq, c.hash).where(c.recorded < before).order_by(c.seq.desc()).limit(1)).first()
    if last is None:
        return None
    seq, digest = int(last[0]), last[1]
    previous = get_anchor(conn)
    count = int(conn.execute(select(func.count()).select_from(audit_log).where(c.seq <= seq)).scalar_one())
    conn.execute(delete(audit_patient).where(audit_patient.c.seq <= seq))
    conn.execute(delete(audit_log).where(c.seq <= seq))
    anchor = AuditAnchor(seq, digest, now_instant(), (previous.pruned if previous else 0) + count)
    values = {"seq": anchor.seq, "hash": anchor.hash, "pruned_at": anchor.pruned_at, "pruned": anchor.pruned}
    if previous is None:
        conn.execute(insert(audit_anchor).values(id=1, **values))
    else:
        conn.execute(update(audit_anchor).where(audit_anchor.c.id == 1).values(**values))
    return anchor


# -- spool marks (gateway/security/audit_spool.py) ------------------------------------------
def mark_spool(conn: Connection, name: str, chained: int) -> None:
    """Record, in the transaction that chains them, how far spool ``name`` is chained. Only the
    process holding the spool's file lock (or the one recovering it) marks it: no race."""
    s = audit_spool.c
    if conn.execute(update(audit_spool).where(s.name == name).values(chained=chained)).rowcount == 0:
        conn.execute(insert(audit_spool).values(name=name, chained=chained))


def spool_chained(conn: Connection, name: str) -> int:
    found = conn.execute(select(audit_spool.c.chained).where(audit_spool.c.name == name)).scalar()
    return int(found or 0)


def forget_spool(conn: Connection, name: str) -> None:
    conn.execute(delete(audit_spool).where(audit_spool.c.name == name))
