"""Authentication tables on the SQL store (issue 11): registered clients, the assertion ids
(``jti``) already used, and the server keys every gateway process shares.

Functions of a connection; :class:`gateway.store.sql.SqlStore` opens it (a write connection,
which on SQLite takes the writer lock) and delegates here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from gateway.clock import now_instant
from gateway.store.base import ClientRecord, DuplicateClient
from gateway.store.schema import auth_clients, auth_jti, auth_keys

_COLUMNS = (
    auth_clients.c.client_id,
    auth_clients.c.name,
    auth_clients.c.role,
    auth_clients.c.member,
    auth_clients.c.scopes,
    auth_clients.c.auth_kind,
    auth_clients.c.jwks,
    auth_clients.c.secret_hash,
    auth_clients.c.created,
    auth_clients.c.revoked,
)


def _record(row: Sequence[Any]) -> ClientRecord:
    return ClientRecord(*tuple(row))


def _insert_ignoring_duplicates(conn: Connection, table: Any, values: dict[str, Any]) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).values(**values).on_conflict_do_nothing()
    return sqlite.insert(table).values(**values).on_conflict_do_nothing()


def add(conn: Connection, client: ClientRecord) -> None:
    values = {column.name: getattr(client, column.name) for column in _COLUMNS}
    try:
        conn.execute(auth_clients.insert().values(**values))
    except IntegrityError as exc:
        raise DuplicateClient(client.client_id) from exc


def get(conn: Connection, client_id: str) -> ClientRecord | None:
    row = conn.execute(select(*_COLUMNS).where(auth_clients.c.client_id == client_id)).first()
    return _record(row) if row else None


def list_all(conn: Connection) -> list[ClientRecord]:
    rows = conn.execute(select(*_COLUMNS).order_by(auth_clients.c.created, auth_clients.c.client_id)).all()
    return [_record(row) for row in rows]


def revoke(conn: Connection, client_id: str, when: str) -> bool:
    c = auth_clients.c
    result = conn.execute(
        update(auth_clients).where(c.client_id == client_id, c.revoked.is_(None)).values(revoked=when)
    )
    return bool(result.rowcount)


def set_jwks(conn: Connection, client_id: str, jwks: str) -> bool:
    c = auth_clients.c
    result = conn.execute(
        update(auth_clients).where(c.client_id == client_id, c.auth_kind == "private_key_jwt").values(jwks=jwks)
    )
    return bool(result.rowcount)


def use_jti(conn: Connection, client_id: str, jti: str, expires: int) -> bool:
    conn.execute(delete(auth_jti).where(auth_jti.c.expires < int(time.time())))
    # RETURNING, not rowcount: psycopg reports 1 for an INSERT that ON CONFLICT skipped
    inserted = conn.execute(
        _insert_ignoring_duplicates(conn, auth_jti, {"client_id": client_id, "jti": jti, "expires": expires}).returning(
            auth_jti.c.jti
        )
    ).first()
    return inserted is not None


def read_key(conn: Connection, name: str) -> str | None:
    value = conn.execute(select(auth_keys.c.value).where(auth_keys.c.name == name)).scalar()
    return str(value) if value is not None else None


def create_key(conn: Connection, name: str, make: Callable[[], str]) -> None:
    """Insert a new key unless another process got there first (its key then stands)."""
    conn.execute(
        _insert_ignoring_duplicates(conn, auth_keys, {"name": name, "value": make(), "created": now_instant()})
    )
