"""Run a write against a read snapshot first, apply it under the write lock afterwards.

A transaction Bundle from an adapter spends most of its time on work that needs no lock:
reference rewriting, validation, index extraction, rendering. :class:`StagedTransaction` lets
that work run while another writer holds the lock: its reads go to a read connection (SQLite
WAL readers do not wait for the writer) and are remembered with their answers, its writes are
only recorded. :meth:`StagedTransaction.apply` then, inside the real write transaction, asks
every remembered question again and, only if every answer is unchanged, performs the recorded
writes. A changed answer (a concurrent writer, or an earlier message of the same group) makes
``apply`` return False, and the caller rolls back and runs the Bundle again the ordinary way -
so staging never changes what is stored, only where the time is spent.

What cannot be staged raises :class:`NotStaged` while staging: a read inside the transaction
(``reader()``), a reindex, or a read of something this same transaction already wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.search.extract import IndexRows
from gateway.search.query import SearchQuery
from gateway.store.base import Store, StoredResource, VersionConflict
from gateway.store.sql import Question, SqlTransaction

__all__ = ["NotStaged", "StagedTransaction"]


class NotStaged(Exception):
    """This write cannot be prepared outside the lock; run it the ordinary way."""


def _answer(found: StoredResource | None) -> tuple[int, bool] | None:
    return None if found is None else (found.version, found.deleted)


@dataclass
class _Write:
    stored: StoredResource
    index: IndexRows | None
    expected_version: int | None


@dataclass
class StagedTransaction:
    """A :class:`~gateway.store.base.StoreTransaction` that reads from ``snapshot`` and records."""

    snapshot: SqlTransaction
    checks: list[tuple[Question, Any]] = field(default_factory=list)  # (read, its answer then)
    locks: list[str] = field(default_factory=list)
    writes: list[_Write] = field(default_factory=list)
    _written_types: set[str] = field(default_factory=set)
    _written: set[tuple[str, str]] = field(default_factory=set)

    # -- reads: answered from the snapshot, remembered with their answers
    def current(self, res_type: str, res_id: str, *, for_update: bool = True) -> StoredResource | None:
        if (res_type, res_id) in self._written:
            raise NotStaged(f"{res_type}/{res_id} is read after this transaction wrote it")
        found = self.snapshot.current(res_type, res_id, for_update=False)
        self.checks.append((("current", res_type, res_id, for_update), _answer(found)))
        return found

    def match_token(self, res_type: str, param: str, system: str, code: str, *, limit: int) -> list[str]:
        self._searchable(res_type)
        found = self.snapshot.match_token(res_type, param, system, code, limit=limit)
        self.checks.append((("match", res_type, param, system, code, limit), found))
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

    # -- writes and locks: recorded
    def lock(self, key: str) -> None:
        self.locks.append(key)

    def put(self, stored: StoredResource, index: IndexRows | None, *, expected_version: int | None) -> None:
        self.writes.append(_Write(stored, index, expected_version))
        self._written.add((stored.res_type, stored.res_id))
        self._written_types.add(stored.res_type)

    # -- under the write lock
    def apply(self, tx: SqlTransaction) -> bool:
        """Re-check every read on ``tx`` and, if all answers stand, write; False if any changed
        (the caller rolls ``tx`` back to before this call). Locks are taken first, in the order
        staging took them, so a check sees what the ordinary run would have seen."""
        tx.lock_all(self.locks)
        answers = tx.answers([question for question, _ in self.checks])
        for (question, then), now in zip(self.checks, answers, strict=True):
            if (_answer(now) if question[0] == "current" else now) != then:
                return False
        try:
            for w in self.writes:
                tx.put(w.stored, w.index, expected_version=w.expected_version)
        except VersionConflict:
            return False
        return True
