"""The write path's statements as plain SQL text, run on the transaction's own DBAPI cursor.

A write (update of a prescription: current row, body, history, index rows, outbox event) is
about fifteen statements. Through SQLAlchemy each one cost ~70 µs of Python before SQLite
spent ~10 µs on it; run as prebuilt text on the DBAPI cursor of the same connection (so inside
the same transaction) the statements cost what the database costs. Values are bound with the
column types' own SQLAlchemy bind processors, so what lands in a column is what SQLAlchemy
would have written (``Decimal`` becomes ``float`` on SQLite, ``bool`` stays ``bool`` on
PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from gateway.store.schema import INDEX_COLUMNS, INDEX_TABLES, ingest_messages, outbox, resource_history, resources

_DIALECTS: dict[str, Dialect] = {"sqlite": sqlite.dialect(), "postgresql": postgresql.psycopg.dialect()}  # type: ignore[no-untyped-call]
Processor = Callable[[Any], Any] | None


def _processors(table: Table, columns: Sequence[str], dialect: Dialect) -> tuple[Processor, ...]:
    return tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns)


@dataclass(frozen=True)
class Insert:
    sql: str
    #: (position, processor) of the columns that have one: an index row has ~9 values and
    #: usually one or none to convert (Decimal -> float on SQLite), bound under the write lock.
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]

    def params(self, values: Sequence[Any]) -> tuple[Any, ...]:
        if not self.processors:
            return tuple(values)
        bound = list(values)
        for i, process in self.processors:
            if bound[i] is not None:
                bound[i] = process(bound[i])
        return tuple(bound)


def _insert(table: Table, columns: Sequence[str], dialect: str, marker: str, suffix: str = "") -> Insert:
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))}){suffix}"
    processors = _processors(table, columns, _DIALECTS[dialect])
    return Insert(sql, tuple((i, p) for i, p in enumerate(processors) if p is not None))


RESOURCE_COLUMNS = ("res_type", "res_id", "version", "last_updated", "deleted", "body")
HISTORY_COLUMNS = ("res_type", "res_id", "version", "last_updated", "deleted", "body", "method")
OUTBOX_COLUMNS = ("created", "event", "res_type", "res_id", "version", "delivered")
JOURNAL_COLUMNS = ("seq", "adapter", "channel", "control_id", "status", "raw", "outcome", "reply", "attempts")
JOURNAL_INSERT = ("adapter", "channel", "control_id", "received", "status", "raw", "outcome", "reply", "attempts")


class DriverSql:
    """The statements of one dialect (``?`` for sqlite3, ``%s`` for psycopg)."""

    def __init__(self, dialect: str) -> None:
        m = "?" if dialect == "sqlite" else "%s"
        self.dialect = dialect
        key = f"res_type = {m} AND res_id = {m}"
        columns = ", ".join(RESOURCE_COLUMNS)
        self.read = f"SELECT {columns} FROM resources WHERE {key}"
        self.current = self.read + (" FOR UPDATE" if dialect == "postgresql" else "")
        self.insert_new = _insert(resources, RESOURCE_COLUMNS, dialect, m, " ON CONFLICT DO NOTHING RETURNING version")
        self.update_current = (
            f"UPDATE resources SET version = {m}, last_updated = {m}, deleted = {m}, body = {m} "
            f"WHERE {key} AND version = {m}"
        )
        self.delete_index = tuple(f"DELETE FROM {table.name} WHERE {key}" for table in INDEX_TABLES.values())
        self.insert_index = {
            name: _insert(INDEX_TABLES[name], ("res_type", "res_id", *cols), dialect, m)
            for name, cols in INDEX_COLUMNS.items()
        }
        self.insert_history = _insert(resource_history, HISTORY_COLUMNS, dialect, m)
        self.insert_outbox = _insert(outbox, OUTBOX_COLUMNS, dialect, m)
        token = INDEX_TABLES["token"].name
        self.match_token = (
            f"SELECT res_id FROM resources WHERE res_type = {m} AND deleted = {m} AND res_id IN "
            f"(SELECT res_id FROM {token} WHERE res_type = {m} AND param = {m} AND system = {m} AND code = {m} "
            f"AND grp IS NULL) ORDER BY res_id LIMIT {m}"
        )
        #: the same, for resources that also carry one meta.tag (``_tag=system|code``): the
        #: conditional create of a member's record, restricted to that member's own
        self.match_token_tagged = self.match_token.replace(
            " ORDER BY",
            f" AND res_id IN (SELECT res_id FROM {token} WHERE res_type = {m} AND param = '_tag' AND system = {m} "
            f"AND code = {m} AND grp IS NULL) ORDER BY",
        )
        self.false = _processors(resources, ("deleted",), _DIALECTS[dialect])[0]
        self.journal_find = (
            f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM {ingest_messages.name} WHERE adapter = {m} AND control_id = {m}"
        )
        self.journal_insert = _insert(ingest_messages, JOURNAL_INSERT, dialect, m, " RETURNING seq")
        self.journal_update = (
            f"UPDATE {ingest_messages.name} SET status = {m}, outcome = {m}, reply = {m}, attempts = attempts + 1 "
            f"WHERE seq = {m}"
        )

    def boolean(self, value: bool) -> Any:
        return self.false(value) if self.false is not None else value


STATEMENTS = {name: DriverSql(name) for name in _DIALECTS}
