"""StagedTransaction: reads answered from a snapshot and re-asked under the lock, writes
recorded and applied only if every answer stands; what cannot be staged says so."""

from __future__ import annotations

import pytest

from gateway.search.extract import IndexRows, extract
from gateway.store.base import NotStaged, StoredResource
from gateway.store.sql import SqlStore
from gateway.store.staging import StagedTransaction

BODY = b'{"resourceType":"Patient","id":"p1"}'


def patient(version: int) -> tuple[StoredResource, IndexRows]:
    data = {"resourceType": "Patient", "id": "p1", "meta": {"versionId": str(version)}}
    stored = StoredResource("Patient", "p1", version, f"2026-11-29T10:00:0{version}Z", False, BODY, "PUT")
    return stored, extract(data)


@pytest.fixture
def store(sql_store: SqlStore) -> SqlStore:
    return sql_store


def staged_update(store: SqlStore) -> StagedTransaction:
    """Stage 'read Patient/p1, write its next version' against what is committed now."""
    with store.staging() as staged:
        current = staged.current("Patient", "p1")
        version = current.version + 1 if current else 1
        stored, index = patient(version)
        staged.put(stored, index, expected_version=current.version if current else None)
    return staged


def version(store: SqlStore) -> int | None:
    found = store.read("Patient", "p1")
    return found.version if found else None


def test_writes_wait_for_apply(store: SqlStore) -> None:
    staged = staged_update(store)
    assert version(store) is None and len(staged.writes) == 1
    with store.transaction() as tx:
        assert staged.holds(tx)
        staged.apply(tx)
    assert version(store) == 1


def test_a_changed_answer_refuses_to_apply(store: SqlStore) -> None:
    staged = staged_update(store)  # planned as the create of version 1
    with store.transaction() as tx:
        stored, index = patient(1)
        tx.put(stored, index, expected_version=None)  # someone else created it meanwhile
    with store.transaction() as tx:
        assert not staged.holds(tx)
    assert version(store) == 1


def test_what_cannot_be_staged_says_so(store: SqlStore) -> None:
    with store.staging() as staged:
        stored, index = patient(1)
        staged.put(stored, index, expected_version=None)
        with pytest.raises(NotStaged):
            staged.current("Patient", "p1")  # read after its own write
        with pytest.raises(NotStaged):
            staged.match_token("Patient", "identifier", "urn:x", "1", limit=2)  # search after a write
        with pytest.raises(NotStaged):
            staged.reader()
        with pytest.raises(NotStaged), staged.savepoint():
            pass
        with pytest.raises(NotStaged):
            staged.journal_find("hl7v2", "1")


def test_a_write_that_reads_nothing_opens_no_snapshot(store: SqlStore) -> None:
    opened: list[bool] = []
    with store.staging() as staged:
        original = staged._open_snapshot
        staged._open_snapshot = lambda: opened.append(True) or original()  # type: ignore[method-assign,func-returns-value]
        stored, index = patient(1)
        staged.put(stored, index, expected_version=None)
        deferred: list[object] = []
        staged.defer(deferred.append)
        assert deferred == []  # recorded, not run
    with store.transaction() as tx:
        assert staged.holds(tx)
        staged.apply(tx)
        assert deferred == [tx]  # run with the real transaction, after the write
    assert opened == [] and version(store) == 1


def test_the_reads_asked_again_together_answer_as_asked_one_by_one(store: SqlStore) -> None:
    """``answers`` (one pipeline on PostgreSQL) and ``lock_all`` (one statement) under apply."""
    data = {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "urn:x", "value": "1"}]}
    with store.transaction() as tx:
        tx.put(
            StoredResource("Patient", "p1", 1, "2026-11-29T10:00:01Z", False, BODY, "PUT"),
            extract(data),
            expected_version=None,
        )
    questions = [
        ("current", "Patient", "p1", True),
        ("match", "Patient", "identifier", "urn:x", "1", 2, None),
        ("current", "Patient", "nobody", False),
        ("match", "Patient", "identifier", "urn:x", "2", 2, None),
    ]
    with store.transaction() as tx:
        tx.lock_all(["Patient?identifier=urn:x|1", "Patient?identifier=urn:x|2"])
        together = tx.answers(questions)
        one_by_one = [
            tx.current("Patient", "p1"),
            tx.match_token("Patient", "identifier", "urn:x", "1", limit=2),
            tx.current("Patient", "nobody", for_update=False),
            tx.match_token("Patient", "identifier", "urn:x", "2", limit=2),
        ]
    assert together == one_by_one
    assert together[1] == ["p1"] and together[0] is not None and together[0].version == 1
