"""Bulk loading: many new resources in few statements, for imports and benchmarks.

A bulk load is **not** a stream of client writes, and says so:

* it **skips validation** (structure and profiles) — load only data that was validated before
  (an export of a Yaolian gateway, or a generator that writes conforming resources);
* it writes **no outbox events** (subscribers are not told about an import);
* it only **creates**: every resource gets version 1; an id already stored fails its batch.

What it shares with the write path is everything a later read or search depends on: the server
assigns ``id`` (when missing) and ``meta.versionId``/``meta.lastUpdated``, the stored bytes come from
:meth:`ResourceText.render` (the client's member texts kept verbatim) and the index rows from
:func:`gateway.search.extract.extract`, exactly as :class:`gateway.service.writes.Writer` does.
Rows go in with ``COPY`` on PostgreSQL and ``executemany`` elsewhere, one transaction per batch;
``workers > 1`` renders and extracts in a process pool (extraction is the expensive part).
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import Connection, insert

from gateway.clock import now_instant
from gateway.fhir.json_text import ResourceText
from gateway.search.extract import extract
from gateway.store.schema import INDEX_COLUMNS, INDEX_TABLES, resource_history, resources
from gateway.store.sql import SqlStore

RawResource = bytes | str | dict[str, Any]


@dataclass
class PreparedBatch:
    """Rows of one batch, ready to insert: ``(res_type, res_id, version, last_updated, deleted, body)``
    for ``resources`` (history rows add ``method``) and ``(res_type, res_id, *INDEX_COLUMNS[t])``
    per index table."""

    resources: list[tuple[Any, ...]] = field(default_factory=list)
    index: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {name: [] for name in INDEX_TABLES})


def prepare(items: list[RawResource]) -> PreparedBatch:
    """Assign id/meta, render and extract index rows for a batch (runs in pool workers too)."""
    batch = PreparedBatch()
    for item in items:
        body = ResourceText.from_data(item) if isinstance(item, dict) else ResourceText.parse(item)
        rtype = body.resource_type
        if rtype is None:
            raise ValueError("a resource without resourceType")
        rid = str(body.data.get("id") or uuid.uuid4())
        last_updated = now_instant()
        meta = {k: v for k, v in (body.data.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
        meta = {"versionId": "1", "lastUpdated": last_updated, **meta}
        raw = body.render(resource_id=rid, meta=meta)
        data = dict(body.data)
        data["id"] = rid
        data["meta"] = meta
        batch.resources.append((rtype, rid, 1, last_updated, False, raw))
        for name, rows in extract(data).tables():
            batch.index[name].extend((rtype, rid, *r) for r in rows)
    return batch


def _chunks(items: Iterable[RawResource], size: int) -> Iterator[list[RawResource]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


_RES_COLS = ("res_type", "res_id", "version", "last_updated", "deleted", "body")


def _copy(conn: Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _insert(conn: Connection, batch: PreparedBatch) -> None:
    history = [(*r, "POST") for r in batch.resources]
    index_cols = {name: ("res_type", "res_id", *cols) for name, cols in INDEX_COLUMNS.items()}
    if conn.dialect.name == "postgresql":
        _copy(conn, "resources", _RES_COLS, batch.resources)
        _copy(conn, "resource_history", (*_RES_COLS, "method"), history)
        for name, rows in batch.index.items():
            if rows:
                _copy(conn, INDEX_TABLES[name].name, index_cols[name], rows)
        return
    conn.execute(insert(resources), [dict(zip(_RES_COLS, r, strict=True)) for r in batch.resources])
    conn.execute(insert(resource_history), [dict(zip((*_RES_COLS, "method"), r, strict=True)) for r in history])
    for name, rows in batch.index.items():
        if rows:
            conn.execute(insert(INDEX_TABLES[name]), [dict(zip(index_cols[name], r, strict=True)) for r in rows])


def bulk_load(store: SqlStore, items: Iterable[RawResource], *, batch: int = 1000, workers: int = 1) -> int:
    """Create every resource of ``items`` (dicts, or JSON texts whose member texts are kept);
    returns how many were stored."""
    count = 0
    chunks = _chunks(items, batch)
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for prepared in pool.imap(prepare, chunks):
                with store.transaction() as tx:
                    _insert(tx.conn, prepared)
                count += len(prepared.resources)
    else:
        for chunk in chunks:
            prepared = prepare(chunk)
            with store.transaction() as tx:
                _insert(tx.conn, prepared)
            count += len(prepared.resources)
    _analyze(store)
    return count


def _analyze(store: SqlStore) -> None:
    """Statistics for the planner at once: before autovacuum's first ANALYZE, PostgreSQL
    planned searches on freshly loaded tables badly enough to reach the statement timeout
    (issue 12). The gateway's own tables only (never the whole database)."""
    if store.dialect != "postgresql":
        return
    with store.engine.connect() as conn:
        names = ", ".join(table.name for table in (resources, *INDEX_TABLES.values()))
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f"ANALYZE {names}")


__all__ = ["PreparedBatch", "bulk_load", "prepare"]
