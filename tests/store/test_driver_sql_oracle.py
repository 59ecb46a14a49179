"""Oracle: the write path's raw SQL (gateway/store/driver_sql.py, run by ``SqlTransaction.put`` on
the DBAPI cursor) stores exactly what the same writes as SQLAlchemy Core statements built from
gateway/store/schema.py store. Every official example is created, some updated, deleted and
created again, once through ``put`` into one fresh database and once through ``insert()`` /
``update()`` / ``delete()`` into another; then every table's rows are compared as the database
renders them (type and text of each value), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, and_, create_engine, delete, insert, text, update

from gateway.search.extract import IndexRows, extract
from gateway.store.base import StoredResource
from gateway.store.schema import INDEX_COLUMNS, INDEX_TABLES, metadata, outbox, resource_history, resources
from gateway.store.sql import SqlStore, open_store

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "r5-examples"

# (stored, index rows or None, expected_version) in the order the write path would make them
Write = tuple[StoredResource, IndexRows | None, int | None]


def _writes() -> list[Write]:
    """Creates of every example, then updates (every 3rd), deletes (every 5th) and creates
    after a delete (every 10th), with the index rows the write path would extract."""
    writes: list[Write] = []
    current: dict[tuple[str, str], StoredResource] = {}
    clock = iter(f"2025-01-01T00:{n // 60:02d}:{n % 60:02d}.{n:06d}Z" for n in range(100_000))

    def write(rtype: str, rid: str, data: dict[str, Any] | None, method: str) -> None:
        before = current.get((rtype, rid))
        version = before.version + 1 if before else 1
        body = orjson.dumps(data) if data is not None else None
        stored = StoredResource(rtype, rid, version, next(clock), data is None, body, method)
        index = extract(data) if data is not None else None
        writes.append((stored, index, before.version if before else None))
        current[(rtype, rid)] = stored

    examples = []
    for path in sorted(EXAMPLES.glob("*.json")):
        data = orjson.loads(path.read_bytes())
        if isinstance(data, dict) and isinstance(data.get("resourceType"), str) and data.get("id"):
            examples.append(data)
    assert len(examples) > 100
    # numbers the examples lack (no number index rows otherwise), with awkward precisions
    for n, value in enumerate([0.1, 1.5, 1e-7, 123456789.123456, 1 / 3, -0.0, 0, 99999999999.5]):
        examples.append(
            {
                "resourceType": "RiskAssessment",
                "id": f"oracle-risk-{n}",
                "status": "final",
                "subject": {"reference": "Patient/example"},
                "prediction": [{"probabilityDecimal": value}],
            }
        )
    for n, data in enumerate(examples):
        write(data["resourceType"], data["id"], data, "POST" if n % 2 else "PUT")
    for n, data in enumerate(examples):
        if n % 3 == 0:
            write(data["resourceType"], data["id"], {**data, "language": "zh-CN"}, "PUT")
    for n, data in enumerate(examples):
        if n % 5 == 0:
            write(data["resourceType"], data["id"], None, "DELETE")
    for n, data in enumerate(examples):
        if n % 10 == 0:
            write(data["resourceType"], data["id"], data, "PUT")
    return writes


def _core_put(conn: Connection, stored: StoredResource, index: IndexRows | None, expected: int | None) -> None:
    """What ``SqlTransaction.put`` does, as SQLAlchemy Core statements."""
    key = {"res_type": stored.res_type, "res_id": stored.res_id}
    row = {**key, "version": stored.version, "last_updated": stored.last_updated, "deleted": stored.deleted}
    if expected is None:
        conn.execute(insert(resources).values(**row, body=stored.body))
    else:
        owner = and_(resources.c.res_type == stored.res_type, resources.c.res_id == stored.res_id)
        changed = conn.execute(
            update(resources).where(owner, resources.c.version == expected).values(**row, body=stored.body)
        )
        assert changed.rowcount == 1
        for table in INDEX_TABLES.values():
            conn.execute(delete(table).where(table.c.res_type == stored.res_type, table.c.res_id == stored.res_id))
    if index is not None:
        for name, rows in index.tables():
            if rows:
                columns = ("res_type", "res_id", *INDEX_COLUMNS[name])
                values = [dict(zip(columns, (stored.res_type, stored.res_id, *r), strict=True)) for r in rows]
                conn.execute(insert(INDEX_TABLES[name]), values)
    conn.execute(insert(resource_history).values(**row, body=stored.body, method=stored.method))
    event = "delete" if stored.deleted else ("create" if stored.version == 1 else "update")
    conn.execute(
        insert(outbox).values(created=stored.last_updated, event=event, **key, version=stored.version, delivered=False)
    )


def _rendered(store: SqlStore) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table, each value as the database renders it, with its type."""
    tables: dict[str, list[tuple[str, ...]]] = {}
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if store.dialect == "sqlite":
                columns = [f"typeof({c.name}) || ':' || quote({c.name})" for c in table.columns]
            else:
                columns = [
                    f"pg_typeof({c.name})::text || ':' || coalesce({c.name}::text, 'NULL')" for c in table.columns
                ]
            rows = conn.exec_driver_sql(f"SELECT {', '.join(columns)} FROM {table.name}").all()
            tables[table.name] = sorted(tuple(r) for r in rows)
    return tables


@contextmanager
def _fresh_databases(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'raw.sqlite'}", f"sqlite:///{tmp_path / 'core.sqlite'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    schemas = [f"t_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    engine = create_engine(url)
    with engine.begin() as conn:
        for schema in schemas:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield tuple(f"{url}?options=-csearch_path%3D{s}" for s in schemas)  # type: ignore[misc]
    finally:
        with engine.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_raw_write_statements_store_what_sqlalchemy_core_stores(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    writes = _writes()
    with _fresh_databases(dialect, tmp_path, request) as (raw_url, core_url):
        raw, core = open_store(raw_url), open_store(core_url)
        try:
            raw.create_schema()
            core.create_schema()
            for stored, index, expected in writes:
                with raw.transaction() as tx:
                    tx.put(stored, index, expected_version=expected)
            with core.engine.begin() as conn:
                for stored, index, expected in writes:
                    _core_put(conn, stored, index, expected)
            by_raw, by_core = _rendered(raw), _rendered(core)
        finally:
            raw.dispose()
            core.dispose()
    assert sum(len(rows) for rows in by_raw.values()) > 1000  # the examples really were written
    assert {"number", "quantity", "date", "token"} <= {n for n, r in INDEX_TABLES.items() if by_raw[r.name]}
    for name in by_core:
        assert by_raw[name] == by_core[name], f"table {name} differs between raw SQL and SQLAlchemy Core"
