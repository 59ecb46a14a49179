"""Subscription tables on the SQL store (issue 16): per-subscription state and deliveries.

Functions of a connection; :class:`gateway.store.sql.SqlStore` opens it (a write connection,
which on SQLite takes the writer lock) and delegates here. The fan-out runs one at a time
(an advisory transaction lock on PostgreSQL), so eventNumbers are handed out in outbox order,
consecutive per subscription, whichever process fans out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, exists, func, select, update

from gateway.store.base import ChangeEvent, Delivery, DeliveryOutcome, FanOut, SubscriptionState
from gateway.store.schema import outbox, sub_deliveries, sub_state

FAN_OUT_LOCK = 7231916  # pg_advisory_xact_lock key of the fan-out

_STATE = tuple(sub_state.c[n] for n in SubscriptionState.__dataclass_fields__)
_DELIVERY = tuple(sub_deliveries.c[n] for n in Delivery.__dataclass_fields__)


def _state(row: Sequence[Any]) -> SubscriptionState:
    r = tuple(row)
    return SubscriptionState(r[0], r[1], int(r[2]), int(r[3]), r[4], r[5], float(r[6]), float(r[7]), r[8])


def _delivery(row: Sequence[Any]) -> Delivery:
    r = tuple(row)
    return Delivery(
        r[0], int(r[1]), int(r[2]), r[3], r[4], r[5], r[6], int(r[7]), r[8], int(r[9]), float(r[10]),
        float(r[11]) if r[11] is not None else None, r[12],
    )  # fmt: skip


def pending(conn: Connection, limit: int, seqs: Sequence[int] | None, after: int | None = None) -> list[ChangeEvent]:
    o = outbox.c
    stmt = select(o.seq, o.event, o.res_type, o.res_id, o.version).where(o.delivered.is_(False))
    if seqs is not None:
        stmt = stmt.where(o.seq.in_(list(seqs)))
    if after is not None:
        stmt = stmt.where(o.seq > after)
    rows = conn.execute(stmt.order_by(o.seq).limit(limit)).all()
    return [ChangeEvent(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in rows]


def fan_out(conn: Connection, plans: Sequence[FanOut], now: str) -> list[int]:
    if not plans:
        return []
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({FAN_OUT_LOCK})")
    o = outbox.c
    stmt = select(o.seq, o.event, o.res_type, o.res_id, o.version).where(
        o.seq.in_([p.seq for p in plans]), o.delivered.is_(False)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    rows = {int(r[0]): r for r in conn.execute(stmt)}
    counters: dict[str, tuple[int, int] | None] = {}  # sub_id -> (events, start_seq), None: unknown

    def counter(sub_id: str) -> tuple[int, int] | None:
        if sub_id not in counters:
            row = conn.execute(
                select(sub_state.c.events, sub_state.c.start_seq).where(sub_state.c.sub_id == sub_id)
            ).first()
            counters[sub_id] = (int(row[0]), int(row[1])) if row else None
        return counters[sub_id]

    inserts: list[dict[str, Any]] = []
    done: list[int] = []
    for plan in sorted(plans, key=lambda p: p.seq):
        row = rows.get(plan.seq)
        if row is None:
            continue  # another process fanned it out first
        done.append(plan.seq)
        for sub_id, topic in plan.starts:
            if counter(sub_id) is None:
                conn.execute(
                    sub_state.insert().values(
                        sub_id=sub_id, topic=topic, start_seq=plan.seq, events=0, status="requested",
                        lease_owner=None, lease_until=0.0, last_sent=0.0, last_error=None,
                    )
                )  # fmt: skip
                counters[sub_id] = (0, plan.seq)
        for sub_id in dict.fromkeys(plan.matches):
            state = counter(sub_id)
            if state is None or state[1] >= plan.seq:
                continue  # not started yet (its own create comes later in the outbox)
            number = state[0] + 1
            counters[sub_id] = (number, state[1])
            inserts.append(
                {
                    "sub_id": sub_id, "event_number": number, "outbox_seq": plan.seq, "created": now,
                    "event": row[1], "res_type": row[2], "res_id": row[3], "version": int(row[4]),
                    "status": "pending", "attempts": 0, "next_attempt": 0.0, "first_failure": None,
                    "last_error": None,
                }
            )  # fmt: skip
    if inserts:
        conn.execute(sub_deliveries.insert(), inserts)
        for sub_id, state in counters.items():
            if state is not None:
                conn.execute(update(sub_state).where(sub_state.c.sub_id == sub_id).values(events=state[0]))
    if done:
        conn.execute(update(outbox).where(o.seq.in_(done)).values(delivered=True))
    return done


def states(conn: Connection) -> list[SubscriptionState]:
    return [_state(r) for r in conn.execute(select(*_STATE).order_by(sub_state.c.sub_id))]


def state(conn: Connection, sub_id: str) -> SubscriptionState | None:
    row = conn.execute(select(*_STATE).where(sub_state.c.sub_id == sub_id)).first()
    return _state(row) if row else None


def set_status(conn: Connection, sub_id: str, status: str, error: str | None, sent: float | None) -> None:
    values: dict[str, Any] = {"status": status, "last_error": error}
    if sent is not None:
        values["last_sent"] = sent
    conn.execute(update(sub_state).where(sub_state.c.sub_id == sub_id).values(**values))


def due(conn: Connection, now: float, limit: int) -> list[str]:
    """Subscriptions with a pending delivery whose lease is free (read-only: most polls find
    none, and then take no write lock)."""
    s, d = sub_state.c, sub_deliveries.c
    has_pending = exists().where(and_(d.sub_id == s.sub_id, d.status == "pending"))
    stmt = select(s.sub_id).where(s.lease_until < now, s.status != "off", has_pending).order_by(s.last_sent)
    return [r[0] for r in conn.execute(stmt.limit(limit))]


def claim(conn: Connection, owner: str, now: float, lease: float, candidates: Sequence[str]) -> list[str]:
    s = sub_state.c
    claimed: list[str] = []
    for sub_id in candidates:
        result = conn.execute(
            update(sub_state)
            .where(s.sub_id == sub_id, s.lease_until < now)
            .values(lease_owner=owner, lease_until=now + lease)
        )
        if result.rowcount == 1:
            claimed.append(sub_id)
    return claimed


def release(conn: Connection, sub_id: str, owner: str, until: float) -> None:
    s = sub_state.c
    conn.execute(
        update(sub_state).where(s.sub_id == sub_id, s.lease_owner == owner).values(lease_owner=None, lease_until=until)
    )


def pending_of(conn: Connection, sub_id: str, limit: int) -> list[Delivery]:
    d = sub_deliveries.c
    stmt = select(*_DELIVERY).where(d.sub_id == sub_id, d.status == "pending").order_by(d.event_number).limit(limit)
    return [_delivery(r) for r in conn.execute(stmt)]


def record(
    conn: Connection, sub_id: str, owner: str, outcomes: Sequence[DeliveryOutcome], now: float, lease: float
) -> bool:
    s, d = sub_state.c, sub_deliveries.c
    stmt = select(s.lease_owner).where(s.sub_id == sub_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    holder = conn.execute(stmt).scalar()
    if holder != owner:
        return False  # the lease ran out and another process took it: its attempt counts
    if outcomes:  # one executemany: psycopg sends the updates together, not a round trip each
        conn.execute(
            update(sub_deliveries)
            .where(d.sub_id == sub_id, d.event_number == bindparam("b_number"))
            .values(
                status=bindparam("b_status"), attempts=bindparam("b_attempts"),
                next_attempt=bindparam("b_next"), first_failure=bindparam("b_first"),
                last_error=bindparam("b_error"),
            ),
            [
                {
                    "b_number": out.event_number, "b_status": out.status, "b_attempts": out.attempts,
                    "b_next": out.next_attempt, "b_first": out.first_failure, "b_error": out.last_error,
                }
                for out in outcomes
            ],
        )  # fmt: skip
    values: dict[str, Any] = {"lease_until": now + lease}
    failed = [o for o in outcomes if o.status != "delivered"]
    if any(o.status == "delivered" for o in outcomes):
        values.update(status="active", last_sent=now, last_error=None)
    if failed:
        values.update(status="error", last_error=failed[-1].last_error)
    conn.execute(update(sub_state).where(s.sub_id == sub_id).values(**values))
    return True


def listing(
    conn: Connection, sub_id: str | None, status: str | None, limit: int, since: int, until: int | None
) -> list[Delivery]:
    d = sub_deliveries.c
    stmt = select(*_DELIVERY).where(d.event_number >= since)
    if sub_id is not None:
        stmt = stmt.where(d.sub_id == sub_id)
    if status is not None:
        stmt = stmt.where(d.status == status)
    if until is not None:
        stmt = stmt.where(d.event_number <= until)
    return [_delivery(r) for r in conn.execute(stmt.order_by(d.sub_id, d.event_number).limit(limit))]


def retry(conn: Connection, sub_id: str | None, numbers: Sequence[int] | None, now: float) -> int:
    d, s = sub_deliveries.c, sub_state.c
    stmt = update(sub_deliveries).where(d.status == "dead")
    if sub_id is not None:
        stmt = stmt.where(d.sub_id == sub_id)
    if numbers is not None:
        stmt = stmt.where(d.event_number.in_(list(numbers)))
    count = conn.execute(stmt.values(status="pending", attempts=0, next_attempt=now, first_failure=None)).rowcount
    unpark = update(sub_state).where(s.lease_owner.is_(None))
    if sub_id is not None:
        unpark = unpark.where(s.sub_id == sub_id)
    conn.execute(unpark.values(lease_until=0.0))
    return int(count)


def counts(conn: Connection) -> dict[str, int]:
    d = sub_deliveries.c
    return {r[0]: int(r[1]) for r in conn.execute(select(d.status, func.count()).group_by(d.status))}


def prune(conn: Connection, before: str) -> tuple[int, int]:
    """Delivered events and fanned-out outbox rows created before ``before`` (an instant in the
    stored form); dead letters and anything pending stay."""
    d, o = sub_deliveries.c, outbox.c
    deliveries = conn.execute(delete(sub_deliveries).where(d.status == "delivered", d.created < before)).rowcount
    rows = conn.execute(delete(outbox).where(o.delivered.is_(True), o.created < before)).rowcount
    return int(deliveries), int(rows)
