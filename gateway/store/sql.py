"""The SQL store: one implementation on SQLAlchemy Core, specialised per dialect.

:class:`SqliteStore` is the embedded default (a WAL file, ``synchronous=FULL`` so a commit is
on disk before we answer, ``BEGIN IMMEDIATE`` for writers so concurrent updates serialise
instead of failing on lock upgrades). :class:`PostgresStore` is production: row locks decide
If-Match races, ``pg_advisory_xact_lock`` serialises conditional creates across processes
and hosts, so the gateway process keeps no shared state of its own.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    event,
    false,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from gateway.clock import now_instant
from gateway.search.extract import IndexRows
from gateway.search.query import SearchQuery
from gateway.store import sql_audit, sql_clients, sql_journal, sql_subscriptions
from gateway.store.base import (
    READS,
    AuditAnchor,
    AuditCriteria,
    AuditRecord,
    AuditRow,
    Cancellation,
    ChangeEvent,
    ClientRecord,
    Delivery,
    DeliveryOutcome,
    DuplicateMessage,
    FanOut,
    JournalEntry,
    QueryTimeout,
    SearchPage,
    StoredResource,
    StoreTransaction,
    SubscriptionState,
    VersionConflict,
)
from gateway.store.driver_sql import STATEMENTS
from gateway.store.schema import (
    INDEX_TABLES,
    metadata,
    outbox,
    resource_history,
    resources,
)
from gateway.store.sql_search import count_select, search_select
from gateway.store.staging import Question, StagedTransaction

_COLUMNS = (
    resources.c.res_type,
    resources.c.res_id,
    resources.c.version,
    resources.c.last_updated,
    resources.c.deleted,
    resources.c.body,
)

# Built once: constructing the statement on every read cost as much as running it.
_READ_CURRENT = select(*_COLUMNS).where(
    resources.c.res_type == bindparam("res_type"), resources.c.res_id == bindparam("res_id")
)


def _decode(question: Question, rows: list[Any]) -> Any:
    if question[0] == "current":
        return _row(rows[0]) if rows else None
    return [r[0] for r in rows]


def _row(row: Any, method: str = "") -> StoredResource:
    body = row[5]
    return StoredResource(
        row[0],
        row[1],
        row[2],
        row[3],
        bool(row[4]),
        bytes(body) if body is not None else None,
        method,
    )


class _SqlSavepoint:
    def __init__(self, cursor: Any, name: str, audit: list[AuditRecord]) -> None:
        self._cursor = cursor
        self.name = name
        self._audit = audit  # the transaction's pending audit records
        self._audit_mark = len(audit)

    def rollback(self) -> None:
        self._cursor.execute(f"ROLLBACK TO SAVEPOINT {self.name}")
        del self._audit[self._audit_mark :]  # audit records appended since go with it


def _lock_number(key: str) -> int:
    """The bigint of an advisory lock named ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


class SqlTransaction:
    def __init__(self, store: SqlStore, conn: Connection) -> None:
        self.store = store
        self.conn = conn
        self.sql = STATEMENTS[store.dialect]
        self._cursor: Any = None
        self._savepoints = 0
        self._audit: list[AuditRecord] = []

    @property
    def cursor(self) -> Any:
        """The DBAPI cursor of this transaction's connection (see :mod:`.driver_sql`)."""
        if self._cursor is None:
            self._cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        return self._cursor

    def current(self, res_type: str, res_id: str, *, for_update: bool = True) -> StoredResource | None:
        return self._ask(("current", res_type, res_id, for_update))  # type: ignore[no-any-return]

    def answers(self, questions: Sequence[Question]) -> list[Any]:
        """The reads ``questions`` name, asked again in order: ``("current", type, id,
        for_update)`` -> StoredResource or None, ``("match", type, param, system, code, limit, tag)``
        -> ids, ``("search", query, limit)`` -> ids. On PostgreSQL they go in one pipeline, one
        round trip instead of one each (~104 µs apiece here; a staged message has ~10)."""
        if self.store.dialect != "postgresql" or any(q[0] == "search" for q in questions):
            return [self._ask(q) for q in questions]
        connection = self.cursor.connection
        cursors = []
        with connection.pipeline():
            for question in questions:
                cursor = connection.cursor()
                cursor.execute(*self._statement(question))
                cursors.append(cursor)
        found = []
        for question, cursor in zip(questions, cursors, strict=True):
            found.append(_decode(question, cursor.fetchall()))
            cursor.close()
        return found

    def _ask(self, question: Question) -> Any:
        if question[0] == "search":
            return self.search_ids(question[1], question[2])
        cursor = self.cursor
        cursor.execute(*self._statement(question))
        return _decode(question, cursor.fetchall())

    def _statement(self, question: Question) -> tuple[str, tuple[Any, ...]]:
        if question[0] == "current":
            _, res_type, res_id, for_update = question
            return (self.sql.current if for_update else self.sql.read), (res_type, res_id)
        _, res_type, param, system, code, limit, tag = question
        deleted = self.sql.boolean(False)
        if tag is None:
            return self.sql.match_token, (res_type, deleted, res_type, param, system, code, limit)
        return self.sql.match_token_tagged, (res_type, deleted, res_type, param, system, code, res_type, *tag, limit)

    def put(self, stored: StoredResource, index: IndexRows | None, *, expected_version: int | None) -> None:
        """Write one version: body, history, index rows and outbox event, in this transaction.

        A concurrent create is detected by ``ON CONFLICT DO NOTHING`` and a concurrent update by
        the version check, both without a savepoint.
        """
        sql, cursor = self.sql, self.cursor
        key = (stored.res_type, stored.res_id)
        deleted = sql.boolean(stored.deleted)
        if expected_version is None:
            cursor.execute(
                sql.insert_new.sql,
                (*key, stored.version, stored.last_updated, deleted, stored.body),
            )
            if cursor.fetchone() is None:
                raise VersionConflict(f"{stored.res_type}/{stored.res_id} was created concurrently")
        else:
            cursor.execute(
                sql.update_current,
                (stored.version, stored.last_updated, deleted, stored.body, *key, expected_version),
            )
            if cursor.rowcount != 1:
                raise VersionConflict(f"{stored.res_type}/{stored.res_id} changed concurrently")
        with self._pipelined():
            if expected_version is not None:
                for statement in sql.delete_index:
                    cursor.execute(statement, key)
            if index is not None:
                self._insert_index(stored.res_type, stored.res_id, index)
            cursor.execute(
                sql.insert_history.sql, (*key, stored.version, stored.last_updated, deleted, stored.body, stored.method)
            )
            event = "delete" if stored.deleted else ("create" if stored.version == 1 else "update")
            cursor.execute(
                sql.insert_outbox.sql,
                (stored.last_updated, event, *key, stored.version, sql.boolean(False)),
            )

    def _pipelined(self) -> AbstractContextManager[Any]:
        """Statements whose results nobody reads, sent together: on PostgreSQL one round trip
        (psycopg pipeline mode) instead of one each (~200 µs apiece on this machine's loopback);
        errors still surface when the block ends. SQLite runs in process: nothing to save."""
        if self.store.dialect == "postgresql":
            return self.cursor.connection.pipeline()  # type: ignore[no-any-return]
        return nullcontext()

    def replace_index(self, res_type: str, res_id: str, index: IndexRows) -> None:
        """Swap a stored resource's index rows for freshly extracted ones (``yaolian reindex``)."""
        for statement in self.sql.delete_index:
            self.cursor.execute(statement, (res_type, res_id))
        self._insert_index(res_type, res_id, index)

    def _insert_index(self, res_type: str, res_id: str, index: IndexRows) -> None:
        for name, rows in index.tables():
            if rows:
                statement = self.sql.insert_index[name]
                self.cursor.executemany(statement.sql, [statement.params((res_type, res_id, *r)) for r in rows])

    def match_token(
        self, res_type: str, param: str, system: str, code: str, *, limit: int, tag: tuple[str, str] | None = None
    ) -> list[str]:
        """Ids of current resources with ``param=system|code`` (conditional create/update)."""
        return self._ask(("match", res_type, param, system, code, limit, tag))  # type: ignore[no-any-return]

    def search_ids(self, query: SearchQuery, limit: int) -> list[str]:
        return [r[0] for r in self.conn.execute(search_select(query).limit(limit))]

    def reader(self) -> SqlStore:
        """The store's reads inside this transaction: they see its own uncommitted writes."""
        return _TransactionReader(self.store, self.conn)

    def defer(self, action: Callable[[StoreTransaction], None]) -> None:
        action(self)

    @contextmanager
    def savepoint(self) -> Iterator[_SqlSavepoint]:
        """``SAVEPOINT`` on the transaction's own cursor (one per message of an MLLP group)."""
        savepoint = _SqlSavepoint(self.cursor, f"yl_sp{self._savepoints}", self._audit)
        self._savepoints += 1
        self.cursor.execute(f"SAVEPOINT {savepoint.name}")
        try:
            yield savepoint
        except BaseException:
            savepoint.rollback()
            self.cursor.execute(f"RELEASE SAVEPOINT {savepoint.name}")
            raise
        else:
            self.cursor.execute(f"RELEASE SAVEPOINT {savepoint.name}")
        finally:
            self._savepoints -= 1

    def journal_find(self, adapter: str, control_id: str | None) -> JournalEntry | None:
        cursor = self.cursor
        cursor.execute(self.sql.journal_find, (adapter, control_id))
        row = cursor.fetchone()
        return sql_journal.journal_entry(row) if row else None

    def journal_save(
        self,
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
        sql, cursor = self.sql, self.cursor
        if previous is not None:
            cursor.execute(sql.journal_update, (status, outcome, reply, previous.seq))
            return previous.seq
        statement = sql.journal_insert
        values = (adapter, channel, control_id, now_instant(), status, raw, outcome, reply, 1)
        try:
            cursor.execute(statement.sql, statement.params(values))
        except self.store.engine.dialect.loaded_dbapi.IntegrityError:
            raise DuplicateMessage(adapter, control_id) from None
        return int(cursor.fetchone()[0])

    # -- audit trail (delegated to .sql_audit) -------------------------------------------
    def audit_append(self, records: Sequence[AuditRecord]) -> None:
        """Kept until the commit (:meth:`flush_audit`): the audit lock is then the last lock
        the transaction takes and is held only for the commit (no lock-order deadlock with the
        row and advisory locks of the writes, and writers queue on it as briefly as possible)."""
        self._audit.extend(records)

    def flush_audit(self) -> list[int]:
        """Chain the pending audit records (just before the commit); their ``seq``."""
        if not self._audit:
            return []
        if self.store.dialect == "postgresql":
            seqs = sql_audit.append_pipelined(self.cursor.connection, _lock_number(sql_audit.AUDIT_LOCK), self._audit)
        else:
            seqs = sql_audit.append(self.cursor, self._audit)
        self._audit.clear()
        return seqs

    def lock(self, key: str) -> None:
        self.lock_all([key])

    def lock_all(self, keys: Sequence[str]) -> None:
        """Advisory locks in the order given, in one statement (a select list is evaluated left
        to right). SQLite: BEGIN IMMEDIATE already serialises all writers."""
        if self.store.dialect == "postgresql" and keys:
            numbers = [_lock_number(k) for k in keys]
            self.cursor.execute("SELECT " + ", ".join(["pg_advisory_xact_lock(%s)"] * len(numbers)), numbers)


class SqlStore:
    dialect = "generic"
    statement_timeout_ms = 0  # reads outside a write transaction stop after this long (0: never)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        """Create what is missing, safely when several processes start at once (issue 12: two
        workers on an empty database): one at a time, under the write lock (SQLite's
        ``BEGIN IMMEDIATE`` and writer lock; a transaction advisory lock on PostgreSQL, whose
        DDL is transactional, so the second sees the tables the first committed)."""
        with self.write_connection() as conn, conn.begin():
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7231912)")
            metadata.create_all(conn)

    @contextmanager
    def bounded(self) -> Iterator[Connection]:
        """A connection in a transaction of its own whose statements are cancelled after
        :attr:`statement_timeout_ms`, or when the request's :class:`Cancellation` (its client
        left) says so - raising :class:`QueryTimeout`: PostgreSQL's ``SET LOCAL
        statement_timeout`` and ``cancel``, SQLite's progress handler with a deadline and
        ``interrupt``. Every read of search, history, ``_include`` and the journal runs on one."""
        limit = self.statement_timeout_ms
        token = READS.get()
        deadline = _deadline(limit, token)
        with self.engine.connect() as conn, conn.begin():
            driver: Any = conn.connection.driver_connection
            postgres = self.dialect == "postgresql"
            if deadline is not None:
                conn.info["yaolian_deadline"] = deadline
                if postgres:
                    self.renew(conn)
                else:
                    driver.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            watched = token.running(driver.cancel if postgres else driver.interrupt) if token else nullcontext()
            try:
                with watched:
                    yield conn
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) == "57014" or "interrupted" in str(exc.orig):
                    raise QueryTimeout(limit) from None  # query_canceled / SQLITE_INTERRUPT
                raise
            finally:
                conn.info.pop("yaolian_deadline", None)
                if not postgres and deadline is not None:
                    driver.set_progress_handler(None, 0)

    def renew(self, conn: Connection) -> None:
        """Before the next statement of a :meth:`bounded` block: what is left of its time (the
        whole block, page and count alike, stays within the limit). SQLite's progress handler
        already counts down the block's deadline."""
        deadline = conn.info.get("yaolian_deadline")
        if deadline is None or self.dialect != "postgresql":
            return
        left = int((deadline - time.monotonic()) * 1000)
        if left <= 0:
            raise QueryTimeout(self.statement_timeout_ms)
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {left}")

    @contextmanager
    def staging(self) -> Iterator[StagedTransaction]:
        """A :class:`~gateway.store.staging.StagedTransaction` whose snapshot connection is
        opened on its first read (a plain create reads nothing) and returned on exit."""
        with ExitStack() as stack:

            def open_snapshot() -> SqlTransaction:
                return SqlTransaction(self, stack.enter_context(self._snapshot_connection()))

            yield StagedTransaction(open_snapshot)

    @contextmanager
    def _snapshot_connection(self) -> Iterator[Connection]:
        """Staging's reads are asked again under the lock, so they need no transaction of their
        own: on PostgreSQL they run in autocommit (no BEGIN and ROLLBACK round trips)."""
        with self.engine.connect() as conn:
            if self.dialect != "postgresql":
                yield conn
                return
            driver = conn.connection.driver_connection
            driver.autocommit = True  # type: ignore[union-attr]
            try:
                yield conn
            finally:
                driver.autocommit = False  # type: ignore[union-attr]

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        with self.write_connection() as conn, conn.begin():
            tx = SqlTransaction(self, conn)
            yield tx
            tx.flush_audit()

    def audit_commit(self, records: Sequence[AuditRecord], *, durable: bool) -> None:
        with self.write_connection() as conn:
            relaxed = not durable
            if relaxed and self.dialect == "sqlite":  # per connection; WAL: commits without fsync
                conn.connection.dbapi_connection.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    tx = SqlTransaction(self, conn)
                    if relaxed and self.dialect == "postgresql":
                        tx.cursor.execute("SET LOCAL synchronous_commit TO off")
                    tx.audit_append(records)
                    tx.flush_audit()
            finally:
                if relaxed and self.dialect == "sqlite":
                    conn.connection.dbapi_connection.execute("PRAGMA synchronous=FULL")  # type: ignore[union-attr]

    def audit_chain_spool(self, name: str, take: Callable[[int], tuple[Sequence[AuditRecord], int]]) -> int:
        with self.write_connection() as conn, conn.begin():
            tx = SqlTransaction(self, conn)
            tx.lock_all([sql_audit.AUDIT_LOCK])  # SQLite: the writer lock already serialises
            mark = sql_audit.spool_chained(conn, name)
            records, end = take(mark)
            if records:
                tx.audit_append(records)
                tx.flush_audit()
            if end != mark:
                sql_audit.mark_spool(conn, name, end)
            return end

    def audit_spool_chained(self, name: str) -> int:
        with self.engine.connect() as conn:
            return sql_audit.spool_chained(conn, name)

    def audit_spool_forget(self, name: str) -> None:
        with self.write_connection() as conn, conn.begin():
            sql_audit.forget_spool(conn, name)

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """The connection reads run on (a transaction's own, for :meth:`SqlTransaction.reader`)."""
        with self.bounded() as conn:
            yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """Several reads that must agree (a page and its total) in one transaction."""
        with self.bounded() as conn:
            yield conn

    def read(self, res_type: str, res_id: str) -> StoredResource | None:
        """Read by primary key on a pooled DBAPI connection, outside any transaction.

        The hot path of the gateway: through SQLAlchemy a one-row read cost 240 µs on SQLite and
        770 µs on PostgreSQL (BEGIN, SELECT, ROLLBACK, pool ping) against 11 µs and 137 µs for
        the bare statement. A single-statement read needs no transaction, so it runs in
        autocommit mode and returns the connection untouched.
        """
        raw = self.engine.raw_connection()
        try:
            driver = raw.driver_connection
            autocommit = self.dialect == "postgresql"
            if autocommit:
                driver.autocommit = True  # type: ignore[union-attr]
            try:
                cursor = raw.cursor()
                cursor.execute(STATEMENTS[self.dialect].read, (res_type, res_id))
                row = cursor.fetchone()
                cursor.close()
            finally:
                if autocommit:
                    driver.autocommit = False  # type: ignore[union-attr]
        finally:
            raw.close()
        return _row(row) if row else None

    def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredResource]:
        if not keys:
            return []
        found: dict[tuple[str, str], StoredResource] = {}
        by_type: dict[str, list[str]] = {}
        for res_type, res_id in keys:
            by_type.setdefault(res_type, []).append(res_id)
        # ``res_type = ? AND res_id IN (...)`` uses the primary key; a row-value
        # ``(res_type, res_id) IN (VALUES ...)`` makes SQLite scan the whole table.
        with self._reading() as conn:
            for res_type, ids in by_type.items():
                for chunk_start in range(0, len(ids), 500):
                    chunk = ids[chunk_start : chunk_start + 500]
                    rows = conn.execute(
                        select(*_COLUMNS).where(resources.c.res_type == res_type, resources.c.res_id.in_(chunk))
                    )
                    for row in rows:
                        found[(row[0], row[1])] = _row(row)
        return [found[k] for k in keys if k in found]

    def vread(self, res_type: str, res_id: str, version: int) -> StoredResource | None:
        h = resource_history.c
        with self._reading() as conn:
            row = conn.execute(
                select(h.res_type, h.res_id, h.version, h.last_updated, h.deleted, h.body, h.method).where(
                    h.res_type == res_type, h.res_id == res_id, h.version == version
                )
            ).first()
        return _row(row, row[6]) if row else None

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        *,
        since: str | None,
        at: tuple[str, str] | None,
        count: int,
        offset: int,
    ) -> tuple[list[StoredResource], int]:
        h = resource_history.c
        clauses = []
        if res_type:
            clauses.append(h.res_type == res_type)
        if res_id:
            clauses.append(h.res_id == res_id)
        if since:
            clauses.append(h.last_updated >= since)
        if at:
            later = resource_history.alias("later")
            replaced_before = (
                select(later.c.seq)
                .where(
                    later.c.res_type == h.res_type,
                    later.c.res_id == h.res_id,
                    later.c.version == h.version + 1,
                    later.c.last_updated <= at[0],
                )
                .exists()
            )
            clauses.extend([h.last_updated <= at[1], ~replaced_before])
        with self._reading() as conn:
            total = conn.execute(select(func.count()).select_from(resource_history).where(*clauses)).scalar_one()
            self.renew(conn)
            rows = conn.execute(
                select(h.res_type, h.res_id, h.version, h.last_updated, h.deleted, h.body, h.method)
                .where(*clauses)
                .order_by(h.seq.desc())
                .limit(count)
                .offset(offset)
            ).all()
        return [_row(r, r[6]) for r in rows], int(total)

    def search(
        self,
        query: SearchQuery,
        *,
        count: int,
        offset: int,
        total: bool,
        base_url: str | None = None,
    ) -> SearchPage:
        with self._snapshot() as conn:
            ids = (
                [r[0] for r in conn.execute(search_select(query, base_url).limit(count).offset(offset))]
                if count
                else []
            )
            number = None
            if total:
                if offset == 0 and query.after is None and len(ids) < count:
                    number = len(ids)
                else:
                    self.renew(conn)
                    number = int(conn.execute(count_select(query, base_url)).scalar_one())
        return SearchPage(ids, number)

    def references_from(
        self, res_type: str, res_ids: Sequence[str], param: str | None, target_type: str | None
    ) -> list[tuple[str, str]]:
        ref = INDEX_TABLES["reference"]
        clauses = [
            ref.c.res_type == res_type,
            ref.c.res_id.in_(list(res_ids)),
            ref.c.target_id.is_not(None),
            ref.c.grp.is_(None),
        ]
        if param:
            clauses.append(ref.c.param == param)
        if target_type:
            clauses.append(ref.c.target_type == target_type)
        with self._reading() as conn:
            rows = conn.execute(select(ref.c.target_type, ref.c.target_id).where(*clauses).distinct()).all()
        return [(r[0], r[1]) for r in rows if r[0]]

    def references_to(self, source_type: str, param: str | None, targets: Sequence[tuple[str, str]]) -> list[str]:
        ref = INDEX_TABLES["reference"]
        clauses = [
            ref.c.res_type == source_type,
            tuple_(ref.c.target_type, ref.c.target_id).in_(list(targets)),
        ]
        if param:
            clauses.append(ref.c.param == param)
        with self._reading() as conn:
            rows = conn.execute(
                select(ref.c.res_id)
                .where(*clauses)
                .where(
                    ref.c.res_id.in_(
                        select(resources.c.res_id).where(
                            resources.c.res_type == source_type, resources.c.deleted == false()
                        )
                    )
                )
                .distinct()
            ).all()
        return [r[0] for r in rows]

    def drain_outbox(self, publish: Callable[[list[ChangeEvent]], None], batch: int) -> int:
        """The rows are locked while ``publish`` runs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
        the write lock on SQLite), so relays in several processes never hand out the same row
        at once; a crash between publish and commit publishes again (at-least-once)."""
        o = outbox.c
        with self.write_connection() as conn, conn.begin():
            stmt = (
                select(o.seq, o.event, o.res_type, o.res_id, o.version)
                .where(o.delivered == false())
                .order_by(o.seq)
                .limit(batch)
            )
            if self.dialect == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            events = [ChangeEvent(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in conn.execute(stmt)]
            if not events:
                return 0
            publish(events)
            conn.execute(update(outbox).where(o.seq.in_([e.seq for e in events])).values(delivered=True))
            return len(events)

    # --- Subscriptions (issue 16): delegated to gateway.store.sql_subscriptions -----------

    def outbox_pending(
        self, limit: int, seqs: Sequence[int] | None = None, after: int | None = None
    ) -> list[ChangeEvent]:
        with self._reading() as conn:
            return sql_subscriptions.pending(conn, limit, seqs, after)

    def outbox_fan_out(self, plans: Sequence[FanOut], now: str) -> list[int]:
        with self.write_connection() as conn, conn.begin():
            return sql_subscriptions.fan_out(conn, plans, now)

    def subscription_states(self) -> list[SubscriptionState]:
        with self._reading() as conn:
            return sql_subscriptions.states(conn)

    def subscription_state(self, sub_id: str) -> SubscriptionState | None:
        with self._reading() as conn:
            return sql_subscriptions.state(conn, sub_id)

    def subscription_set_status(self, sub_id: str, status: str, error: str | None, sent: float | None) -> None:
        with self.write_connection() as conn, conn.begin():
            sql_subscriptions.set_status(conn, sub_id, status, error, sent)

    def deliveries_claim(
        self, owner: str, now: float, lease_seconds: float, limit: int, sub_ids: Sequence[str] | None = None
    ) -> list[str]:
        candidates = list(sub_ids) if sub_ids is not None else []
        if sub_ids is None:
            with self._reading() as conn:
                candidates = sql_subscriptions.due(conn, now, limit)
        if not candidates:
            return []
        with self.write_connection() as conn, conn.begin():
            return sql_subscriptions.claim(conn, owner, now, lease_seconds, candidates)

    def deliveries_release(self, sub_id: str, owner: str, until: float = 0.0) -> None:
        with self.write_connection() as conn, conn.begin():
            sql_subscriptions.release(conn, sub_id, owner, until)

    def deliveries_pending(self, sub_id: str, limit: int) -> list[Delivery]:
        with self._reading() as conn:
            return sql_subscriptions.pending_of(conn, sub_id, limit)

    def deliveries_record(
        self, sub_id: str, owner: str, outcomes: Sequence[DeliveryOutcome], now: float, lease_seconds: float = 30.0
    ) -> bool:
        with self.write_connection() as conn, conn.begin():
            return sql_subscriptions.record(conn, sub_id, owner, outcomes, now, lease_seconds)

    def deliveries_list(
        self, sub_id: str | None, status: str | None, limit: int, *, since: int = 0, until: int | None = None
    ) -> list[Delivery]:
        with self._reading() as conn:
            return sql_subscriptions.listing(conn, sub_id, status, limit, since, until)

    def deliveries_retry(self, sub_id: str | None, event_numbers: Sequence[int] | None, now: float) -> int:
        with self.write_connection() as conn, conn.begin():
            return sql_subscriptions.retry(conn, sub_id, event_numbers, now)

    def deliveries_counts(self) -> dict[str, int]:
        with self._reading() as conn:
            return sql_subscriptions.counts(conn)

    def deliveries_prune(self, before: str) -> tuple[int, int]:
        with self.write_connection() as conn, conn.begin():
            return sql_subscriptions.prune(conn, before)

    # --- end subscriptions ----------------------------------------------------------------

    def journal_find(self, adapter: str, control_id: str | None) -> JournalEntry | None:
        with self._reading() as conn:
            return sql_journal.find(conn, adapter, control_id)

    def journal_get(self, seq: int) -> JournalEntry | None:
        with self._reading() as conn:
            return sql_journal.get(conn, seq)

    def journal_dead_letters(self, adapter: str | None, limit: int) -> list[JournalEntry]:
        with self._reading() as conn:
            return sql_journal.dead_letters(conn, adapter, limit)

    def journal_counts(self) -> dict[str, int]:
        with self._reading() as conn:
            return sql_journal.counts(conn)

    # --- Authentication (issue 11): delegated to gateway.store.sql_clients -----------------

    def client_add(self, client: ClientRecord) -> None:
        with self.write_connection() as conn, conn.begin():
            sql_clients.add(conn, client)

    def client_get(self, client_id: str) -> ClientRecord | None:
        with self._reading() as conn:
            return sql_clients.get(conn, client_id)

    def clients_list(self) -> list[ClientRecord]:
        with self._reading() as conn:
            return sql_clients.list_all(conn)

    def client_revoke(self, client_id: str, when: str) -> bool:
        with self.write_connection() as conn, conn.begin():
            return sql_clients.revoke(conn, client_id, when)

    def client_set_jwks(self, client_id: str, jwks: str) -> bool:
        with self.write_connection() as conn, conn.begin():
            return sql_clients.set_jwks(conn, client_id, jwks)

    def jti_use(self, client_id: str, jti: str, expires: int) -> bool:
        with self.write_connection() as conn, conn.begin():
            return sql_clients.use_jti(conn, client_id, jti, expires)

    def server_key(self, name: str, make: Callable[[], str]) -> str:
        with self._reading() as conn:
            found = sql_clients.read_key(conn, name)
        if found is not None:
            return found
        with self.write_connection() as conn, conn.begin():
            sql_clients.create_key(conn, name, make)
            created = sql_clients.read_key(conn, name)
        assert created is not None
        return created

    # --- end authentication ---------------------------------------------------------------

    # -- audit trail (delegated to .sql_audit) -------------------------------------------
    def audit_rows(self, after: int, limit: int) -> list[AuditRow]:
        with self._reading() as conn:
            return sql_audit.rows_after(conn, after, limit)

    def audit_anchor(self) -> AuditAnchor | None:
        with self._reading() as conn:
            return sql_audit.get_anchor(conn)

    def audit_search(self, criteria: AuditCriteria, *, count: int, offset: int) -> tuple[list[AuditRow], int]:
        with self._snapshot() as conn:
            return sql_audit.search(conn, criteria, count, offset)

    def audit_prune(self, before: str) -> AuditAnchor | None:
        with self.transaction() as tx:
            tx.lock_all([sql_audit.AUDIT_LOCK])
            return sql_audit.prune(tx.conn, before)

    def dispose(self) -> None:
        self.engine.dispose()


class _TransactionReader(SqlStore):
    """Read methods of a store bound to one open write transaction (GET entries of a Bundle)."""

    def __init__(self, store: SqlStore, conn: Connection) -> None:
        super().__init__(store.engine)
        self.dialect = store.dialect
        self._conn = conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        yield self._conn

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        yield self._conn

    def read(self, res_type: str, res_id: str) -> StoredResource | None:
        row = self._conn.execute(_READ_CURRENT, {"res_type": res_type, "res_id": res_id}).first()
        return _row(row) if row else None

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        yield SqlTransaction(self, self._conn)


class WriterLock:
    """Writers of one SQLite file take turns here before ``BEGIN IMMEDIATE``.

    SQLite makes a second writer poll: its busy handler sleeps 1, 2, 5, 10 … 100 ms between
    tries, so with two gateway processes a writer slept through most of the other's short
    transactions (2 workers ingested less than 1). A thread lock plus ``flock`` on a file
    beside the database wakes the next writer the moment the lock is free, in this process or
    another. Without ``fcntl`` (Windows) only the thread lock applies and SQLite's own
    locking still keeps writers correct.
    """

    def __init__(self, path: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        if path is not None and fcntl is not None:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(self, *_exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(self, engine: Engine, writer_lock: Path | None = None) -> None:
        super().__init__(engine)
        self._writers = WriterLock(writer_lock)

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            # owner-only (issue 12): a new data folder 0700, a new database 0600 - SQLite gives
            # its -wal and -shm files the database's mode
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        # A pool as large as the thread pool (40): a smaller one reconnected under load and
        # re-ran the PRAGMAs on every new connection.
        pool_args: dict[str, Any] = {"pool_size": 20, "max_overflow": 20} if path else {"poolclass": NullPool}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool_args)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = "IMMEDIATE" if conn.get_execution_options().get("yaolian_write") else "DEFERRED"
            conn.exec_driver_sql(f"BEGIN {mode}")

        return cls(engine, Path(path + "-writer.lock") if path and path != ":memory:" else None)

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        with self._writers, self.engine.connect() as conn:
            yield conn.execution_options(yaolian_write=True)

    def dispose(self) -> None:
        self._writers.close()
        super().dispose()


class PostgresStore(SqlStore):
    dialect = "postgresql"

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        # No pre-ping: it cost a round trip per request. A connection the server dropped fails
        # one request, SQLAlchemy then invalidates it, and pool_recycle bounds their age.
        engine = create_engine(url, pool_size=20, max_overflow=20, pool_recycle=600)
        return cls(engine)


def _deadline(limit_ms: int, token: Cancellation | None) -> float | None:
    """When a bounded read must end: its statement timeout, or sooner what is left of its
    request's (``Cancellation.deadline``: one budget for all the reads of a search)."""
    now = time.monotonic()
    ends = [now + limit_ms / 1000] if limit_ms > 0 else []
    if token is not None and token.deadline is not None:
        if token.deadline <= now:
            raise QueryTimeout(limit_ms)
        ends.append(token.deadline)
    return min(ends) if ends else None


def open_store(url: str, *, statement_timeout_ms: int = 0) -> SqlStore:
    """A store for a database URL: ``sqlite:///path`` or ``postgresql://…``; reads outside
    write transactions stop after ``statement_timeout_ms`` (0: never)."""
    store: SqlStore
    if url.startswith("sqlite"):
        store = SqliteStore.from_url(url)
    elif url.startswith("postgres"):
        store = PostgresStore.from_url(url)
    else:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://HOST/DB")
    store.statement_timeout_ms = statement_timeout_ms
    return store
