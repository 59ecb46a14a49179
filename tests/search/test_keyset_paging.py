"""Paging in id order by keyset: writes between two pages neither repeat nor skip a match."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings

FHIR_JSON = {"content-type": "application/fhir+json"}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database=database_url)), raise_server_exceptions=False) as test_client:
        yield test_client


def _put(client: TestClient, rid: str, family: str) -> None:
    body = {"resourceType": "Patient", "id": rid, "name": [{"family": family}]}
    assert client.put(f"/fhir/Patient/{rid}", content=json.dumps(body), headers=FHIR_JSON).status_code in (200, 201)


def _link(bundle: dict, relation: str) -> str | None:
    return next((link["url"] for link in bundle.get("link", []) if link["relation"] == relation), None)


def test_inserts_and_deletes_between_pages_do_not_shift_results(client: TestClient) -> None:
    for n in range(10):
        _put(client, f"kp-{n:02d}", "Keyset")
    first = client.get("/fhir/Patient?family=Keyset&_count=3").json()
    seen = [e["resource"]["id"] for e in first["entry"]]
    assert seen == ["kp-00", "kp-01", "kp-02"] and first["total"] == 10
    assert "_after" in parse_qs(urlsplit(_link(first, "next") or "").query)
    # between pages: two matches land before the cursor, one already seen is deleted (offsets
    # would now repeat kp-02 on the second page)
    _put(client, "kp-00a", "Keyset")
    _put(client, "kp-00b", "Keyset")
    assert client.delete("/fhir/Patient/kp-01").status_code == 204
    url = _link(first, "next")
    while url:
        page = client.get(url).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
        url = _link(page, "next")
    assert seen == [f"kp-{n:02d}" for n in range(10)]  # none repeated, none skipped


def test_sorted_results_page_by_offset(client: TestClient) -> None:
    for n in range(4):
        _put(client, f"ks-{n}", f"Sorted{n}")
    page = client.get("/fhir/Patient?family=Sorted&_sort=-family&_count=2").json()
    assert [e["resource"]["id"] for e in page["entry"]] == ["ks-3", "ks-2"]
    query = parse_qs(urlsplit(_link(page, "next") or "").query)
    assert query["_offset"] == ["2"] and "_after" not in query
