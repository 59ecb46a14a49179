"""`yaolian reindex` rebuilds index rows from the stored bodies, on both backends."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.search.query import parse_search
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings, get_settings
from gateway.store.reindex import reindex
from gateway.store.schema import INDEX_TABLES
from gateway.store.sql import open_store

CTX = RequestContext(base_url="http://test/fhir")


def _index_rows(store: object) -> int:
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        return sum(int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in INDEX_TABLES.values())


def _find(store: object, family: str) -> list[str]:
    query = parse_search("Patient", [("family", family)], strict=True, default_count=10, max_count=10)
    return store.search(query, count=10, offset=0, total=False).ids  # type: ignore[attr-defined, no-any-return]


def test_reindex_restores_lost_index_rows(database_url: str) -> None:
    store = open_store(database_url)
    store.create_schema()
    service = FhirService(store, Settings(database=database_url))
    ids = []
    for family in ("王", "李", "张"):
        body = ResourceText.parse(orjson.dumps({"resourceType": "Patient", "name": [{"family": family}]}))
        ids.append(
            service.write(CTX, lambda tx, body=body: service.writer.create(tx, CTX, "Patient", body)).stored.res_id
        )
    with store.transaction() as tx:
        service.writer.delete(tx, CTX, "Patient", ids[2])
    before = _index_rows(store)
    with store.engine.begin() as conn:
        for table in INDEX_TABLES.values():
            conn.execute(delete(table))
    assert _find(store, "王") == []
    seen: list[int] = []
    assert reindex(store, batch=1, progress=seen.append) == 2  # the deleted one is not indexed
    assert seen == [1, 1]
    assert _find(store, "王") == [ids[0]]
    assert _find(store, "张") == []
    assert _index_rows(store) == before
    store.dispose()


def test_reindex_command(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/r.sqlite"
    monkeypatch.setenv("YAOLIAN_DATABASE", url)  # restored after the test; the CLI writes it too
    store = open_store(url)
    store.create_schema()
    service = FhirService(store, Settings(database=url))
    body = ResourceText.parse(b'{"resourceType":"Patient","name":[{"family":"Zhao"}]}')
    service.write(CTX, lambda tx: service.writer.create(tx, CTX, "Patient", body))
    store.dispose()
    result = CliRunner().invoke(app, ["reindex", "--type", "Patient"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "reindexed 1 resources" in result.output
