"""The bulk loader stores what the write path stores: same bytes (but meta), same index rows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.app import create_app
from gateway.demo import synthetic_prescriptions
from gateway.settings import Settings
from gateway.store.bulk import bulk_load
from gateway.store.schema import INDEX_TABLES
from gateway.store.sql import open_store

ITEMS = list(synthetic_prescriptions(30, seed=3))


def _index(url: str) -> set[tuple]:
    store = open_store(url)
    rows = set()
    with store.engine.connect() as conn:
        for name, table in INDEX_TABLES.items():
            for row in conn.execute(select(table)):
                values = tuple(row)
                if name == "date" and values[2] == "_lastUpdated":
                    continue
                rows.add((name, *values))
    store.dispose()
    return rows


def _without_meta_times(body: dict) -> dict:
    body["meta"].pop("lastUpdated")
    return body


@pytest.fixture
def loaded(database_url: str) -> Iterator[tuple[str, TestClient]]:
    store = open_store(database_url)
    store.create_schema()
    texts = [json.dumps(r, ensure_ascii=False, indent=1) if i % 2 else r for i, r in enumerate(ITEMS)]
    assert bulk_load(store, texts, batch=7) == len(ITEMS)
    store.dispose()
    with TestClient(create_app(Settings(database=database_url))) as client:
        yield database_url, client


def test_bulk_load_matches_the_write_path(loaded: tuple[str, TestClient], tmp_path) -> None:
    url, client = loaded
    reference = f"sqlite:///{tmp_path / 'via-http.sqlite'}"
    with TestClient(create_app(Settings(database=reference, validation_mode="off"))) as other:
        for r in ITEMS:
            assert other.put(f"/fhir/{r['resourceType']}/{r['id']}", json=r).status_code == 201
        for r in ITEMS[:5]:
            path = f"/fhir/{r['resourceType']}/{r['id']}"
            assert _without_meta_times(client.get(path).json()) == _without_meta_times(other.get(path).json())
    assert _index(url) == _index(reference)


def test_bulk_loaded_data_is_searchable(loaded: tuple[str, TestClient]) -> None:
    _, client = loaded
    patient = ITEMS[0]["id"]
    bundle = client.get("/fhir/MedicationRequest", params={"patient": f"Patient/{patient}"}).json()
    assert bundle["total"] == sum(1 for r in ITEMS if r.get("subject", {}).get("reference") == f"Patient/{patient}")
    history = client.get(f"/fhir/Patient/{patient}/_history").json()
    assert history["total"] == 1
    raw = client.get(f"/fhir/Patient/{patient}").content
    assert orjson.loads(raw)["meta"]["versionId"] == "1"
