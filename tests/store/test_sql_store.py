"""The storage interface, the same tests on SQLite (a WAL file) and PostgreSQL (a schema of its own):
current and historical versions, version conflicts, history order and windows, the index rows
and outbox events written in the write's own transaction and rolled back with it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from gateway.search.extract import extract
from gateway.search.query import parse_search
from gateway.store.base import ChangeEvent, StoredResource, VersionConflict
from gateway.store.schema import INDEX_TABLES, outbox, resource_history, resources
from gateway.store.sql import PostgresStore, SqliteStore, SqlStore, open_store


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    opened = open_store(database_url)
    opened.create_schema()
    opened.create_schema()  # idempotent: a restart does not fail on existing tables
    yield opened
    opened.dispose()


class Boom(Exception):
    pass


def version(rtype: str, rid: str, number: int, at: str, **members: Any) -> tuple[StoredResource, Any]:
    data = {"resourceType": rtype, "id": rid, "meta": {"versionId": str(number), "lastUpdated": at}, **members}
    body = orjson.dumps(data)
    method = "POST" if number == 1 else "PUT"
    return StoredResource(rtype, rid, number, at, False, body, method), extract(data)


def write(store: SqlStore, rtype: str, rid: str, number: int, at: str, **members: Any) -> StoredResource:
    stored, index = version(rtype, rid, number, at, **members)
    with store.transaction() as tx:
        tx.put(stored, index, expected_version=None if number == 1 else number - 1)
    return stored


def delete(store: SqlStore, rtype: str, rid: str, number: int, at: str) -> None:
    with store.transaction() as tx:
        tx.put(StoredResource(rtype, rid, number, at, True, None, "DELETE"), None, expected_version=number - 1)


def ids(store: SqlStore, rtype: str, query: str) -> list[str]:
    from urllib.parse import parse_qsl

    parsed = parse_search(rtype, parse_qsl(query), strict=True, default_count=100, max_count=100)
    return store.search(parsed, count=100, offset=0, total=False).ids


def count_rows(store: SqlStore, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_open_store_picks_the_backend(store: SqlStore, database_url: str) -> None:
    expected = SqliteStore if database_url.startswith("sqlite") else PostgresStore
    assert type(store) is expected
    assert store.dialect == ("sqlite" if expected is SqliteStore else "postgresql")
    with pytest.raises(ValueError, match="unsupported database URL"):
        open_store("mysql://localhost/db")


def test_put_then_read_current_and_vread(store: SqlStore) -> None:
    first = write(store, "Patient", "p1", 1, "2024-01-01T00:00:00.000001Z", gender="female")
    second = write(store, "Patient", "p1", 2, "2024-01-02T00:00:00.000001Z", gender="male")
    assert store.read("Patient", "p1") == StoredResource(
        "Patient", "p1", 2, "2024-01-02T00:00:00.000001Z", False, second.body, ""
    )
    assert store.vread("Patient", "p1", 1) == first
    assert store.vread("Patient", "p1", 2) == second
    assert store.vread("Patient", "p1", 3) is None
    assert store.read("Patient", "p2") is None
    assert store.read("Practitioner", "p1") is None
    with store.transaction() as tx:
        current = tx.current("Patient", "p1")
    assert current is not None
    assert current.version == 2
    assert current.etag == 'W/"2"'


def test_body_bytes_are_kept_exactly(store: SqlStore) -> None:
    body = '{"resourceType":"Medication","id":"m","totalVolume":{"value":6.10},"code":{"text":"氨氯地平"}}'.encode()
    stored = StoredResource("Medication", "m", 1, "2024-01-01T00:00:00.000000Z", False, body, "POST")
    with store.transaction() as tx:
        tx.put(stored, None, expected_version=None)
    read = store.read("Medication", "m")
    assert read is not None
    assert read.body == body


def test_version_conflicts(store: SqlStore) -> None:
    write(store, "Patient", "p1", 1, "2024-01-01T00:00:00.000000Z")
    again, index = version("Patient", "p1", 1, "2024-01-01T00:00:01.000000Z")
    with pytest.raises(VersionConflict), store.transaction() as tx:
        tx.put(again, index, expected_version=None)  # a second create of the same id
    stale, index = version("Patient", "p1", 3, "2024-01-01T00:00:02.000000Z")
    with pytest.raises(VersionConflict), store.transaction() as tx:
        tx.put(stale, index, expected_version=2)  # the row is at version 1
    current = store.read("Patient", "p1")
    assert current is not None
    assert current.version == 1
    assert count_rows(store, resource_history) == 1
    assert count_rows(store, outbox) == 1


def test_history_order_filters_and_paging(store: SqlStore) -> None:
    write(store, "Patient", "a", 1, "2024-01-01T00:00:00.000000Z")
    write(store, "Organization", "o", 1, "2024-01-02T00:00:00.000000Z")
    write(store, "Patient", "a", 2, "2024-01-03T00:00:00.000000Z")
    write(store, "Patient", "b", 1, "2024-01-04T00:00:00.000000Z")
    delete(store, "Patient", "a", 3, "2024-01-05T00:00:00.000000Z")

    def keys(rows: list[StoredResource]) -> list[tuple[str, str, int, bool, str]]:
        return [(r.res_type, r.res_id, r.version, r.deleted, r.method) for r in rows]

    rows, total = store.history(None, None, since=None, at=None, count=10, offset=0)
    assert total == 5
    assert keys(rows) == [
        ("Patient", "a", 3, True, "DELETE"),
        ("Patient", "b", 1, False, "POST"),
        ("Patient", "a", 2, False, "PUT"),
        ("Organization", "o", 1, False, "POST"),
        ("Patient", "a", 1, False, "POST"),
    ]
    assert rows[0].body is None
    rows, total = store.history("Patient", None, since=None, at=None, count=2, offset=1)
    assert total == 4
    assert keys(rows) == [("Patient", "b", 1, False, "POST"), ("Patient", "a", 2, False, "PUT")]
    rows, total = store.history("Patient", "a", since="2024-01-03T00:00:00.000000Z", at=None, count=10, offset=0)
    assert (total, [r.version for r in rows]) == (2, [3, 2])
    instant = ("2024-01-02T00:00:00.000000Z", "2024-01-02T00:00:00.000000Z")
    rows, total = store.history(None, None, since=None, at=instant, count=10, offset=0)
    assert (total, [(r.res_id, r.version) for r in rows]) == (2, [("o", 1), ("a", 1)])
    later = ("2024-01-04T12:00:00.000000Z", "2024-01-05T12:00:00.000000Z")
    rows, total = store.history(None, None, since=None, at=later, count=10, offset=0)
    assert [(r.res_id, r.version) for r in rows] == [("a", 3), ("b", 1), ("a", 2), ("o", 1)]


def test_index_rows_follow_the_current_version(store: SqlStore) -> None:
    write(store, "Patient", "p1", 1, "2024-01-01T00:00:00.000000Z", gender="female", birthDate="1950-03-15")
    assert ids(store, "Patient", "gender=female") == ["p1"]
    write(store, "Patient", "p1", 2, "2024-01-02T00:00:00.000000Z", gender="male")
    assert ids(store, "Patient", "gender=female") == []
    assert ids(store, "Patient", "gender=male") == ["p1"]
    assert ids(store, "Patient", "birthdate=1950") == []
    delete(store, "Patient", "p1", 3, "2024-01-03T00:00:00.000000Z")
    assert ids(store, "Patient", "gender=male") == []
    assert ids(store, "Patient", "_id=p1") == []
    with store.engine.connect() as conn:
        leftovers = sum(
            int(conn.execute(select(func.count()).select_from(t).where(t.c.res_id == "p1")).scalar_one())
            for t in INDEX_TABLES.values()
        )
    assert leftovers == 0


def test_outbox_events_are_written_with_the_change(store: SqlStore) -> None:
    write(store, "Patient", "p1", 1, "2024-01-01T00:00:00.000000Z")
    write(store, "Patient", "p1", 2, "2024-01-02T00:00:00.000000Z")
    delete(store, "Patient", "p1", 3, "2024-01-03T00:00:00.000000Z")
    first: list[ChangeEvent] = []
    assert store.drain_outbox(first.extend, 1) == 1
    assert [(e.event, e.resource_type, e.resource_id, e.version) for e in first] == [("create", "Patient", "p1", 1)]

    def refuse(_events: list[ChangeEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        store.drain_outbox(refuse, 10)  # a failed publish leaves the events pending
    events: list[ChangeEvent] = []
    assert store.drain_outbox(events.extend, 10) == 2
    assert [(e.event, e.version) for e in events] == [("update", 2), ("delete", 3)]
    assert [e.seq for e in first + events] == sorted(e.seq for e in first + events)
    assert store.drain_outbox(events.extend, 10) == 0


def test_a_failed_transaction_leaves_no_resource_history_index_or_event(store: SqlStore) -> None:
    write(store, "Patient", "kept", 1, "2024-01-01T00:00:00.000000Z", gender="female")
    before = {t.name: count_rows(store, t) for t in (resources, resource_history, outbox, *INDEX_TABLES.values())}
    first, first_index = version("Patient", "new", 1, "2024-01-02T00:00:00.000000Z", gender="male")
    update, update_index = version("Patient", "kept", 2, "2024-01-02T00:00:00.000000Z", gender="other")
    with pytest.raises(Boom), store.transaction() as tx:
        tx.put(first, first_index, expected_version=None)
        tx.put(update, update_index, expected_version=1)
        assert tx.current("Patient", "new") is not None  # visible inside the transaction
        raise Boom
    after = {t.name: count_rows(store, t) for t in (resources, resource_history, outbox, *INDEX_TABLES.values())}
    assert after == before
    assert store.read("Patient", "new") is None
    kept = store.read("Patient", "kept")
    assert kept is not None
    assert kept.version == 1
    assert ids(store, "Patient", "gender=female") == ["kept"]
    assert ids(store, "Patient", "gender=other") == []


def test_reader_sees_the_transactions_own_writes(store: SqlStore) -> None:
    stored, index = version("Patient", "p1", 1, "2024-01-01T00:00:00.000000Z", gender="female")
    with store.transaction() as tx:
        tx.put(stored, index, expected_version=None)
        reader = tx.reader()
        assert reader.read("Patient", "p1") == replace(stored, method="")
        assert [r.res_id for r in reader.read_many([("Patient", "p1")])] == ["p1"]
        assert ids(reader, "Patient", "gender=female") == ["p1"]
        assert store.read("Patient", "p1") is None  # other connections see it after the commit
    assert store.read("Patient", "p1") is not None


def test_read_many_keeps_the_order_asked_and_skips_missing(store: SqlStore) -> None:
    for n, rid in enumerate(["c", "a", "b"]):
        write(store, "Patient", rid, 1, f"2024-01-0{n + 1}T00:00:00.000000Z")
    write(store, "Organization", "a", 1, "2024-01-05T00:00:00.000000Z")
    keys = [("Patient", "b"), ("Organization", "a"), ("Patient", "zz"), ("Patient", "a"), ("Patient", "c")]
    assert [(r.res_type, r.res_id) for r in store.read_many(keys)] == [
        ("Patient", "b"),
        ("Organization", "a"),
        ("Patient", "a"),
        ("Patient", "c"),
    ]
    assert store.read_many([]) == []


def test_references_both_ways(store: SqlStore) -> None:
    county = {"reference": "Organization/o1"}
    write(store, "Patient", "p1", 1, "2024-01-01T00:00:00.000000Z", managingOrganization=county)
    write(store, "Patient", "p2", 1, "2024-01-01T00:00:01.000000Z", managingOrganization=county)
    doctor = [{"reference": "Practitioner/d"}]
    write(store, "Patient", "p3", 1, "2024-01-01T00:00:02.000000Z", generalPractitioner=doctor)
    delete(store, "Patient", "p2", 2, "2024-01-01T00:00:03.000000Z")
    everything = sorted(store.references_from("Patient", ["p1", "p3"], None, None))
    assert everything == [("Organization", "o1"), ("Practitioner", "d")]
    assert store.references_from("Patient", ["p1", "p3"], "organization", None) == [("Organization", "o1")]
    assert store.references_from("Patient", ["p1", "p3"], None, "Practitioner") == [("Practitioner", "d")]
    assert store.references_to("Patient", "organization", [("Organization", "o1")]) == ["p1"]  # p2 is deleted
    assert sorted(store.references_to("Patient", None, [("Organization", "o1"), ("Practitioner", "d")])) == ["p1", "p3"]


def test_search_pages_and_totals(store: SqlStore) -> None:
    for n in range(5):
        write(store, "Patient", f"p{n}", 1, f"2024-01-0{n + 1}T00:00:00.000000Z", gender="female")
    query = parse_search("Patient", [("gender", "female")], strict=True, default_count=2, max_count=10)
    first = store.search(query, count=2, offset=0, total=True)
    assert (first.ids, first.total) == (["p0", "p1"], 5)
    last = store.search(query, count=2, offset=4, total=True)
    assert (last.ids, last.total) == (["p4"], 5)
    assert store.search(query, count=0, offset=0, total=True).ids == []
    assert store.search(query, count=0, offset=0, total=True).total == 5
    assert store.search(query, count=10, offset=0, total=False).total is None


def test_lock_serialises_writers(store: SqlStore) -> None:
    """A second writer waits for the first one's transaction (advisory lock / BEGIN IMMEDIATE)."""
    entered = threading.Event()
    waited: list[float] = []

    def first() -> None:
        with store.transaction() as tx:
            tx.lock("Patient?identifier=x")
            entered.set()
            time.sleep(0.4)

    def second() -> None:
        assert entered.wait(5)
        start = time.monotonic()
        with store.transaction() as tx:
            tx.lock("Patient?identifier=x")
        waited.append(time.monotonic() - start)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert waited
    assert waited[0] > 0.25


def test_sqlite_is_durable_wal(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'db.sqlite'}")
    store.create_schema()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    store.dispose()
