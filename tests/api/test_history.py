"""History at instance, type and system level: order, entries, ``_count`` paging, ``_since``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def put(client: TestClient, rtype: str, rid: str, **members: Any) -> dict[str, Any]:
    body = {"resourceType": rtype, "id": rid, **members}
    response = client.put(f"/fhir/{rtype}/{rid}", content=json.dumps(body), headers=FHIR_JSON)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def write_sample(client: TestClient) -> list[dict[str, Any]]:
    """Seven versions in a known order: p1 v1, o1 v1, p1 v2, p2 v1, o1 v2, p1 v3, then delete p2."""
    written = [
        put(client, "Patient", "p1", active=True),
        put(client, "Organization", "o1", name="County Hospital"),
        put(client, "Patient", "p1", active=False),
        put(client, "Patient", "p2", gender="female"),
        put(client, "Organization", "o1", name="County People's Hospital"),
        put(client, "Patient", "p1", gender="male"),
    ]
    assert client.delete("/fhir/Patient/p2").status_code == 204
    return written


def keys(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    """(resource url, version) of each entry, from fullUrl and response.etag."""
    return [(e["fullUrl"].split("/fhir/", 1)[1], e["response"]["etag"]) for e in bundle.get("entry", [])]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


def test_instance_history_newest_first_with_entries(client: TestClient) -> None:
    written = write_sample(client)
    response = client.get("/fhir/Patient/p1/_history")
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    assert bundle["total"] == 3
    assert keys(bundle) == [("Patient/p1", 'W/"3"'), ("Patient/p1", 'W/"2"'), ("Patient/p1", 'W/"1"')]
    newest, middle, oldest = bundle["entry"]
    assert newest["resource"] == written[5]
    assert middle["resource"] == written[2]
    assert oldest["resource"] == written[0]
    assert oldest["request"] == {"method": "PUT", "url": "Patient/p1"}
    assert oldest["response"]["status"] == "201 Created"
    assert newest["response"]["status"] == "200 OK"
    assert newest["response"]["lastModified"] == written[5]["meta"]["lastUpdated"]
    assert newest["fullUrl"] == "http://testserver/fhir/Patient/p1"


def test_type_and_system_history(client: TestClient) -> None:
    write_sample(client)
    patients = client.get("/fhir/Patient/_history").json()
    assert patients["total"] == 5
    assert keys(patients) == [
        ("Patient/p2", 'W/"2"'),
        ("Patient/p1", 'W/"3"'),
        ("Patient/p2", 'W/"1"'),
        ("Patient/p1", 'W/"2"'),
        ("Patient/p1", 'W/"1"'),
    ]
    assert patients["entry"][0]["request"]["method"] == "DELETE"
    assert "resource" not in patients["entry"][0]
    system = client.get("/fhir/_history").json()
    assert system["total"] == 7
    assert keys(system) == [
        ("Patient/p2", 'W/"2"'),
        ("Patient/p1", 'W/"3"'),
        ("Organization/o1", 'W/"2"'),
        ("Patient/p2", 'W/"1"'),
        ("Patient/p1", 'W/"2"'),
        ("Organization/o1", 'W/"1"'),
        ("Patient/p1", 'W/"1"'),
    ]


def test_history_paging_follows_next_links_without_duplicates(client: TestClient) -> None:
    write_sample(client)
    everything = keys(client.get("/fhir/_history").json())
    url: str | None = "/fhir/_history?_count=3"
    pages = []
    while url:
        bundle = client.get(url).json()
        assert bundle["total"] == 7
        assert len(bundle["entry"]) <= 3
        pages.append(keys(bundle))
        url = link(bundle, "next")
        if url:
            assert parse_qs(urlsplit(url).query)["_count"] == ["3"]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [k for page in pages for k in page] == everything
    second = client.get("/fhir/_history?_count=3&_offset=3").json()
    assert link(second, "previous") is not None
    assert keys(client.get(link(second, "previous") or "").json()) == pages[0]


def test_history_since(client: TestClient) -> None:
    written = write_sample(client)
    since = written[3]["meta"]["lastUpdated"]  # p2 v1
    bundle = client.get("/fhir/_history", params={"_since": since}).json()
    assert keys(bundle) == [
        ("Patient/p2", 'W/"2"'),
        ("Patient/p1", 'W/"3"'),
        ("Organization/o1", 'W/"2"'),
        ("Patient/p2", 'W/"1"'),
    ]
    assert bundle["total"] == 4
    instance = client.get("/fhir/Patient/p1/_history", params={"_since": since}).json()
    assert keys(instance) == [("Patient/p1", 'W/"3"')]
    future = client.get("/fhir/Patient/_history", params={"_since": "2999-01-01T00:00:00Z"}).json()
    assert future["total"] == 0
    assert future.get("entry", []) == []
    bad = client.get("/fhir/_history", params={"_since": "last tuesday"})
    assert bad.status_code == 400
    assert bad.json()["resourceType"] == "OperationOutcome"


def test_history_of_unknown_instance_or_type_is_404(client: TestClient) -> None:
    assert client.get("/fhir/Patient/nobody/_history").status_code == 404
    response = client.get("/fhir/Unicorn/_history")
    assert response.status_code == 404
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "YL-0200"


def test_history_at_returns_the_versions_current_during_the_period(client: TestClient) -> None:
    v1 = put(client, "Patient", "p1", active=True)
    v2 = put(client, "Patient", "p1", active=False)
    o1 = put(client, "Organization", "o1", name="Clinic")
    v3 = put(client, "Patient", "p1", gender="male")

    def at(instant: str, level: str = "/fhir/_history") -> list[tuple[str, str]]:
        response = client.get(level, params={"_at": instant})
        assert response.status_code == 200, response.text
        return keys(response.json())

    # at the instant of v2: v2 is current, v1 no longer is
    assert at(v2["meta"]["lastUpdated"], "/fhir/Patient/p1/_history") == [("Patient/p1", 'W/"2"')]
    # at the instant of o1 (after v2, before v3): p1 v2 and o1 v1 are current
    assert at(o1["meta"]["lastUpdated"]) == [("Organization/o1", 'W/"1"'), ("Patient/p1", 'W/"2"')]
    assert at(v3["meta"]["lastUpdated"], "/fhir/Patient/_history") == [("Patient/p1", 'W/"3"')]
    # a whole day: every version that was current at some point of it
    day = v1["meta"]["lastUpdated"][:10]
    assert len(at(day)) == 4
    assert at("2000-01-01") == []
