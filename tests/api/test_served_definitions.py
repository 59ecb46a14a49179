"""The conformance resources of profiles/ over REST (gateway/service/served.py): read, searched
by url, version, name, _id and status with _summary and paging, merged with stored ones (a
served file wins by id), never written; they pass the read hook points like stored resources;
and every yaolian.org URL the CapabilityStatement names resolves on the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.hooks import Hidden, Hooks, Pointcut, RequestContext, SearchResults
from gateway.service.fhir_service import FhirService
from gateway.service.served import DEFINITION_TYPES
from gateway.settings import Settings
from gateway.store.base import StoredResource
from gateway.store.sql import open_store

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
FILES = {
    (data["resourceType"], data["id"]): data
    for data in (json.loads(p.read_text(encoding="utf-8")) for p in sorted(PROFILES.glob("*-*.json")))
    if data["resourceType"] in DEFINITION_TYPES
}
KINDS = sorted({t for t, _ in FILES})


def codes(response: Any) -> list[str]:
    return [c["code"] for i in response.json()["issue"] for c in i.get("details", {}).get("coding", [])]


def ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]


def test_every_kind_of_profiles_is_served() -> None:
    """Guards the tests below: the kinds the brief names are all among the files."""
    assert {
        "StructureDefinition", "CodeSystem", "ValueSet", "NamingSystem", "SearchParameter", "SubscriptionTopic",
        "OperationDefinition", "CapabilityStatement",
    } <= set(KINDS)  # fmt: skip


def test_each_file_is_read_by_type_and_id(module_client: TestClient) -> None:
    for (rtype, rid), data in FILES.items():
        response = module_client.get(f"/fhir/{rtype}/{rid}")
        assert response.status_code == 200, (rtype, rid, response.text[:300])
        body = response.json()
        assert body["meta"]["versionId"] == "1" and response.headers["etag"] == 'W/"1"'
        assert {k: v for k, v in body.items() if k != "meta"} == {k: v for k, v in data.items() if k != "meta"}
    assert module_client.get("/fhir/StructureDefinition/yl-patient/_history/1").status_code == 200
    assert module_client.get("/fhir/StructureDefinition/yl-patient/_history/2").status_code == 404
    assert module_client.get("/fhir/StructureDefinition/no-such-profile").status_code == 404


@pytest.mark.parametrize("kind", KINDS)
def test_a_search_of_each_kind_finds_every_file_of_it_page_by_page(module_client: TestClient, kind: str) -> None:
    expected = sorted(rid for t, rid in FILES if t == kind)
    found: list[str] = []
    url: str | None = f"/fhir/{kind}?_count=4"
    while url:
        bundle = module_client.get(url).json()
        assert bundle["total"] == len(expected)
        found += ids(bundle)
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert found == expected
    count = module_client.get(f"/fhir/{kind}?_summary=count").json()
    assert count["total"] == len(expected) and not count.get("entry")


def test_searches_by_url_version_name_id_and_status(module_client: TestClient) -> None:
    sd = FILES[("StructureDefinition", "yl-prescription")]
    for query in (
        f"url={sd['url']}",
        f"url={sd['url']}&version={sd['version']}",
        f"name:exact={sd['name']}",
        "_id=yl-prescription",
    ):
        bundle = module_client.get(f"/fhir/StructureDefinition?{query}").json()
        assert ids(bundle) == ["yl-prescription"], query
    assert module_client.get(f"/fhir/StructureDefinition?url={sd['url']}&version=9.9.9").json()["total"] == 0
    active = sorted(rid for (t, rid), d in FILES.items() if t == "CodeSystem" and d["status"] == "active")
    assert ids(module_client.get("/fhir/CodeSystem?status=active&_count=100").json()) == active
    assert module_client.get("/fhir/CodeSystem?status=retired").json()["total"] == 0
    summary = module_client.get("/fhir/OperationDefinition?_id=continue&_summary=true").json()
    resource = summary["entry"][0]["resource"]
    assert "parameter" not in resource and resource["url"].endswith("/continue")  # _summary drops non-summary


def test_stored_ones_are_found_with_the_served_ones_in_one_paged_list(client: TestClient) -> None:
    served = sorted(rid for t, rid in FILES if t == "CodeSystem")
    mine = []
    for n in range(3):
        body = {
            "resourceType": "CodeSystem",
            "id": f"local-{n}",
            "url": f"http://example.org/cs/local-{n}",
            "name": f"Local{n}",
            "status": "draft",
            "content": "complete",
        }
        assert client.put(f"/fhir/CodeSystem/local-{n}", json=body).status_code == 201
        mine.append(f"local-{n}")
    found: list[str] = []
    url: str | None = "/fhir/CodeSystem?_count=3"
    while url:
        bundle = client.get(url).json()
        assert bundle["total"] == len(served) + 3
        found += ids(bundle)
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert found == sorted(served + mine)
    assert ids(client.get("/fhir/CodeSystem?status=draft").json()) == mine
    assert ids(client.get("/fhir/CodeSystem?url=http://example.org/cs/local-1").json()) == ["local-1"]
    offset = client.get("/fhir/CodeSystem?_count=2&_offset=3&_sort=-_lastUpdated").json()
    assert len(ids(offset)) == 2
    # stored ones stay writable; served ones do not
    assert client.delete("/fhir/CodeSystem/local-0").status_code in (200, 204)


def test_a_served_file_wins_over_a_stored_resource_of_its_id(database_url: str) -> None:
    """A row stored before the file existed (written here without the served files, as an old
    gateway would have): the file is what a read and a search show."""
    store = open_store(database_url)
    store.create_schema()
    old = FhirService(store, Settings(database=database_url))
    ctx = RequestContext("http://test/fhir", "update")
    stale = json.dumps(
        {"resourceType": "CodeSystem", "id": "alliance-tier", "status": "retired", "content": "complete"}
    )
    from gateway.fhir.json_text import ResourceText

    old.write(ctx, lambda tx: old.writer.update(tx, ctx, "CodeSystem", "alliance-tier", ResourceText.parse(stale)))
    store.dispose()
    app = create_app(Settings(database=database_url, validation_mode="lenient"))
    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.get("/fhir/CodeSystem/alliance-tier").json()["status"] == "active"
        bundle = http.get("/fhir/CodeSystem?_id=alliance-tier").json()
        assert [e["resource"]["status"] for e in bundle["entry"]] == ["active"] and bundle["total"] == 1
        retired = http.get("/fhir/CodeSystem?status=retired").json()
        assert ids(retired) == [] and retired["total"] == 0  # the stale row is not counted either


def test_writes_to_served_files_are_refused_in_english_and_chinese(client: TestClient) -> None:
    sd = FILES[("StructureDefinition", "yl-patient")]
    refused = [
        client.put("/fhir/StructureDefinition/yl-patient", json={**sd, "status": "retired"}),
        client.delete("/fhir/StructureDefinition/yl-patient"),
        client.patch(
            "/fhir/StructureDefinition/yl-patient",
            content=b'[{"op": "replace", "path": "/status", "value": "retired"}]',
            headers={"Content-Type": "application/json-patch+json"},
        ),
        client.put(f"/fhir/OperationDefinition?url={FILES[('OperationDefinition', 'continue')]['url']}",
                   json={**FILES[("OperationDefinition", "continue")], "status": "retired"}),
    ]  # fmt: skip
    for response in refused:
        assert response.status_code == 405, response.text
        assert codes(response) == ["YL-0304"]
        issue = response.json()["issue"][0]
        assert "read-only" in issue["diagnostics"] and "只读" in issue["details"]["text"]
    # a conditional delete naming a file is refused too, not answered "nothing to delete"
    gone = client.delete("/fhir/CodeSystem", params={"url": FILES[("CodeSystem", "alliance-tier")]["url"]})
    assert gone.status_code == 405 and codes(gone) == ["YL-0304"]
    assert client.delete("/fhir/CodeSystem", params={"url": "http://example.org/none"}).status_code in (200, 204)
    # a stored resource may not claim a served canonical URL (another id, the same url)
    claimed = client.post("/fhir/StructureDefinition", json={**sd, "id": None, "name": "Copy"})
    assert claimed.status_code == 422 and codes(claimed) == ["YL-0305"]
    # nor through a transaction
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "CodeSystem/alliance-tier"}}],
    }
    assert client.post("/fhir", json=bundle).status_code == 405
    assert client.get("/fhir/StructureDefinition/yl-patient").json()["status"] == sd["status"]
    assert client.get("/fhir/StructureDefinition?name=Copy").json()["total"] == 0


def test_served_resources_pass_the_read_hook_points(database_url: str) -> None:
    """Access control hangs on these points: a hook hiding a served read answers 404, and one
    thinning a search sees the served matches."""
    hooks = Hooks()
    seen: list[str] = []

    def hide(_ctx: RequestContext, stored: StoredResource) -> None:
        if stored.res_id == "yl-patient":
            raise Hidden

    def thin(_ctx: RequestContext, results: SearchResults) -> None:
        seen.extend(r.res_id for r in results.matches)
        results.matches[:] = [r for r in results.matches if r.res_id != "yl-drug"]

    hooks.register(Pointcut.BEFORE_READ_RESPONSE, hide)
    hooks.register(Pointcut.BEFORE_SEARCH_RESPONSE, thin)
    app = create_app(Settings(database=database_url), hooks=hooks)
    with TestClient(app, raise_server_exceptions=False) as http:
        assert http.get("/fhir/StructureDefinition/yl-patient").status_code == 404
        assert http.get("/fhir/StructureDefinition/yl-drug").status_code == 200
        bundle = http.get("/fhir/StructureDefinition?_id=yl-drug,yl-organization").json()
        assert sorted(seen) == ["yl-drug", "yl-organization"] and ids(bundle) == ["yl-organization"]


def canonicals(statement: dict[str, Any]) -> set[str]:
    """The URLs a CapabilityStatement points at: instantiates, supported profiles, operation
    and search parameter definitions, subscription topics."""
    urls = set(statement.get("instantiates", []))
    for rest in statement["rest"]:
        urls |= {op["definition"] for op in rest.get("operation", [])}
        for resource in rest["resource"]:
            urls |= set(resource.get("supportedProfile", []))
            urls |= {op["definition"] for op in resource.get("operation", [])}
            urls |= {p["definition"] for p in resource.get("searchParam", [])}
            urls |= {e["valueCanonical"] for e in resource.get("extension", []) if "valueCanonical" in e}
    return urls


def test_every_yaolian_url_of_the_capability_statement_resolves_here(module_client: TestClient) -> None:
    statement = module_client.get("/fhir/metadata").json()
    urls = canonicals(statement)
    ours = sorted(u for u in urls if u.startswith("http://yaolian.org/"))
    assert len(ours) >= 50  # profiles, OperationDefinitions, SearchParameters, topics, alliance-server
    assert "http://yaolian.org/fhir/CapabilityStatement/alliance-server" in statement["instantiates"]
    for url in ours:
        kind = url.split("/")[-2]
        bundle = module_client.get(f"/fhir/{kind}", params={"url": url}).json()
        assert bundle.get("total") == 1, f"{url} does not resolve: {bundle}"
        assert bundle["entry"][0]["resource"]["url"] == url
    # the rest are HL7's own (core R5 definitions), resolved at hl7.org, not served here
    assert all(u.startswith("http://hl7.org/fhir/") for u in urls - set(ours)), sorted(urls - set(ours))
