"""Run a write against committed data first, apply it under the write lock afterwards.

A write spends most of its time on work that needs no lock: reference rewriting, validation,
index extraction, rendering. :class:`StagedTransaction` lets that work run while another
writer holds the lock: its reads go to a snapshot connection (SQLite WAL readers do not wait
for the writer) and are remembered with their answers; its writes, and the actions deferred
with them (the write hooks), are only recorded. Inside the real write transaction
:meth:`StagedTransaction.holds` asks every remembered question again and, only if every answer
is unchanged, :meth:`StagedTransaction.apply` performs the recorded steps in order. When an
answer changed (a concurrent writer, or an earlier message of the same group), the service
runs the work again inside the transaction (:mod:`gateway.service.write_path`), so staging
never changes what is stored, only where the time is spent.

What cannot be staged raises :class:`~gateway.store.base.NotStaged`: a read inside the
transaction (``reader()``), a reindex, a savepoint or the journal, or a read of something this
same transaction already wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

from gateway.search.extract import IndexRows
from gateway.search.query import SearchQuery
from gateway.store.base import (
    AuditRecord,
    JournalEntry,
    NotStaged,
    Savepoint,
    Store,
    StoredResource,
    StoreTransaction,
)

__all__ = ["NotStaged", "Question", "SqlReads", "StagedTransaction"]

#: A read to ask again under the write lock (see :meth:`SqlReads.answers`).
Question = tuple[Any, ...]


class SqlReads(Protocol):
    """What staging needs of an SQL transaction (:class:`gateway.store.sql.SqlTransaction`)."""

    def current(self, res_type: str, res_id: str, *, for_update: bool = True) -> StoredResource | None: ...

    def match_token(
        self, res_type: str, param: str, system: str, code: str, *, limit: int, tag: tuple[str, str] | None = None
    ) -> list[str]: ...

    def search_ids(self, query: SearchQuery, limit: int) -> list[str]: ...

    def lock_all(self, keys: Sequence[str]) -> None: ...

    def answers(self, questions: Sequence[Question]) -> list[Any]: ...


def _answer(found: StoredResource | None) -> tuple[int, bool] | None:
    return None if found is None else (found.version, found.deleted)


@dataclass
class _Write:
    stored: StoredResource
    index: IndexRows | None
    expected_version: int | None


Step = _Write | Callable[[StoreTransaction], None]


class StagedTransaction:
    """A :class:`~gateway.store.base.StoreTransaction` that reads committed data and records."""

    def __init__(self, open_snapshot: Callable[[], SqlReads]) -> None:
        self._open_snapshot = open_snapshot
        self._snapshot: SqlReads | None = None
        self.checks: list[tuple[Question, Any]] = []  # (read, its answer then)
        self.locks: list[str] = []
        self.steps: list[Step] = []  # writes and deferred actions, in order
        self._written_types: set[str] = set()
        self._written: set[tuple[str, str]] = set()

    @property
    def writes(self) -> list[_Write]:
        return [step for step in self.steps if isinstance(step, _Write)]

    @property
    def snapshot(self) -> SqlReads:
        if self._snapshot is None:
            self._snapshot = self._open_snapshot()
        return self._snapshot

    # -- reads: answered from the snapshot, remembered with their answers
    def current(self, res_type: str, res_id: str, *, for_update: bool = True) -> StoredResource | None:
        if (res_type, res_id) in self._written:
            raise NotStaged(f"{res_type}/{res_id} is read after this transaction wrote it")
        found = self.snapshot.current(res_type, res_id, for_update=False)
        self.checks.append((("current", res_type, res_id, for_update), _answer(found)))
        return found

    def match_token(
        self, res_type: str, param: str, system: str, code: str, *, limit: int, tag: tuple[str, str] | None = None
    ) -> list[str]:
        self._searchable(res_type)
        found = self.snapshot.match_token(res_type, param, system, code, limit=limit, tag=tag)
        self.checks.append((("match", res_type, param, system, code, limit, tag), found))
        return found

    def search_ids(self, query: SearchQuery, limit: int) -> list[str]:
        self._searchable(query.resource_type)
        found = self.snapshot.search_ids(query, limit)
        self.checks.append((("search", query, limit), found))
        return found

    def _searchable(self, res_type: str) -> None:
        if res_type in self._written_types:
            raise NotStaged(f"a {res_type} search after this transaction wrote a {res_type}")

    def reader(self) -> Store:
        raise NotStaged("a read inside the transaction")

    def replace_index(self, res_type: str, res_id: str, index: IndexRows) -> None:
        raise NotStaged("reindex")

    @contextmanager
    def savepoint(self) -> Iterator[Savepoint]:
        raise NotStaged("a savepoint")
        yield  # pragma: no cover - a generator for contextmanager's sake

    def journal_find(self, adapter: str, control_id: str | None) -> JournalEntry | None:
        raise NotStaged("the ingest journal")

    def journal_save(self, **_fields: Any) -> int:
        raise NotStaged("the ingest journal")

    def audit_append(self, records: Sequence[AuditRecord]) -> None:
        raise NotStaged("the audit trail (appended by hooks deferred to the transaction)")

    # -- writes, deferred actions and locks: recorded
    def lock(self, key: str) -> None:
        self.locks.append(key)

    def put(self, stored: StoredResource, index: IndexRows | None, *, expected_version: int | None) -> None:
        self.steps.append(_Write(stored, index, expected_version))
        self._written.add((stored.res_type, stored.res_id))
        self._written_types.add(stored.res_type)

    def defer(self, action: Callable[[StoreTransaction], None]) -> None:
        self.steps.append(action)

    # -- under the write lock
    def holds(self, tx: StoreTransaction) -> bool:
        """Locks first, in the order staging took them, so a check sees what a run inside the
        transaction would have seen; then every read asked again (one round trip on PostgreSQL)."""
        sql_tx = cast(SqlReads, tx)  # staging is the SQL store's: its transactions answer these
        sql_tx.lock_all(self.locks)
        if not self.checks:
            return True
        answers = sql_tx.answers([question for question, _ in self.checks])
        return all(
            (_answer(now) if question[0] == "current" else now) == then
            for (question, then), now in zip(self.checks, answers, strict=True)
        )

    def apply(self, tx: StoreTransaction) -> None:
        """The recorded steps, in order. After :meth:`holds` the rows read are locked and the
        ids created were checked absent, so a write cannot conflict."""
        for step in self.steps:
            if isinstance(step, _Write):
                tx.put(step.stored, step.index, expected_version=step.expected_version)
            else:
                step(tx)
