"""``GET /fhir/SubscriptionTopic`` and ``GET /fhir/SubscriptionTopic/{id}`` from the topic files
of ``profiles/`` (POL-18: whoever subscribes to the alliance's events must be able to read what
they can subscribe to); the topics are read-only, over REST and in a Bundle. They are served like
every conformance resource of ``profiles/`` (gateway/service/served.py, through the service: any
search parameter of the type, paging); only topics are never stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.events.topics import topics
from gateway.search.parameters import parameters_for
from gateway.settings import Settings


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    from gateway.app import create_app

    with TestClient(create_app(Settings(database=database_url)), raise_server_exceptions=False) as test_client:
        yield test_client


def _code(outcome: dict[str, Any]) -> str:
    return str(outcome["issue"][0]["details"]["coding"][0]["code"])


def test_pol18_every_topic_the_dispatcher_matches_is_readable_and_searchable(client: TestClient) -> None:
    everything = client.get("/fhir/SubscriptionTopic")
    assert everything.status_code == 200, everything.text
    bundle = everything.json()
    assert bundle["type"] == "searchset" and bundle["total"] == len(topics()) == 11
    assert {e["resource"]["url"] for e in bundle["entry"]} == set(topics())
    assert all(e["fullUrl"].endswith(f"/SubscriptionTopic/{e['resource']['id']}") for e in bundle["entry"])

    one = client.get("/fhir/SubscriptionTopic/prescription-created")
    assert (
        one.status_code == 200 and one.json()["url"] == "http://yaolian.org/fhir/SubscriptionTopic/prescription-created"
    )
    missing = client.get("/fhir/SubscriptionTopic/nothing-here")
    assert missing.status_code == 404 and _code(missing.json()) == "YL-0201"

    by_url = client.get(
        "/fhir/SubscriptionTopic", params={"url": "http://yaolian.org/fhir/SubscriptionTopic/review-blocked"}
    )
    assert [e["resource"]["id"] for e in by_url.json()["entry"]] == ["review-blocked"]
    by_resource = client.post(
        "/fhir/SubscriptionTopic/_search",
        data={"resource": "http://hl7.org/fhir/StructureDefinition/MedicationRequest"},
    ).json()
    ids = {e["resource"]["id"] for e in by_resource["entry"]}
    assert {"prescription-created", "prescription-changed"} <= ids and "stock-alert-raised" not in ids
    counted = client.get("/fhir/SubscriptionTopic", params={"_count": "2"}).json()
    assert counted["total"] == 11 and len(counted["entry"]) == 2
    xml = client.get("/fhir/SubscriptionTopic/review-blocked", params={"_format": "xml"})
    assert xml.status_code == 200 and xml.text.lstrip().startswith("<")

    # an unknown parameter is what it is for every type: a warning, or 400 under handling=strict
    unknown = client.get("/fhir/SubscriptionTopic", params={"bogus": "x"}, headers={"Prefer": "handling=strict"})
    assert unknown.status_code == 400 and _code(unknown.json()) == "YL-0400"


def test_pol18_topics_cannot_be_written_and_the_capability_statement_says_so(client: TestClient) -> None:
    topic = client.get("/fhir/SubscriptionTopic/prescription-created").json()
    other = {**topic, "url": "http://example.org/SubscriptionTopic/mine"}
    for method, path, body, code in (
        ("POST", "/fhir/SubscriptionTopic", other, "YL-0205"),  # a new topic: never stored
        ("PUT", "/fhir/SubscriptionTopic/prescription-created", topic, "YL-0304"),  # a served file
        ("DELETE", "/fhir/SubscriptionTopic/prescription-created", topic, "YL-0304"),
        ("PUT", "/fhir/SubscriptionTopic?url=x", topic, "YL-0304"),
    ):
        answer = client.request(method, path, json=body)
        assert answer.status_code == 405, (method, path, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome" and _code(answer.json()) == code
        assert "GET" in answer.headers["allow"]
    copy = client.post("/fhir/SubscriptionTopic", json=topic)  # the URL of a served topic
    assert copy.status_code == 422 and _code(copy.json()) == "YL-0305"
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {k: v for k, v in other.items() if k != "id"},
                "request": {"method": "POST", "url": "SubscriptionTopic"},
            }
        ],
    }
    batch = client.post("/fhir", json=bundle).json()
    assert batch["entry"][0]["response"]["status"].startswith("405")
    assert client.get("/fhir/SubscriptionTopic").json()["total"] == 11

    capability = client.get("/fhir/metadata").json()
    entry = next(r for r in capability["rest"][0]["resource"] if r["type"] == "SubscriptionTopic")
    assert [i["code"] for i in entry["interaction"]] == ["read", "vread", "search-type"]
    assert {"_id", "url", "status", "resource"} <= {p["name"] for p in entry["searchParam"]}
    assert {p["name"] for p in entry["searchParam"]} <= set(parameters_for("SubscriptionTopic"))


def test_pol18_any_client_with_a_token_reads_the_topics_none_without(database_url: str) -> None:
    from tests.events.test_insurance_status import _bearer, _secure

    with _secure(database_url) as secure:
        assert secure.get("/fhir/SubscriptionTopic").status_code == 401
        for role in ("regulator", "insurance"):
            headers = _bearer(secure, database_url, role)
            assert secure.get("/fhir/SubscriptionTopic", headers=headers).json()["total"] == 11
            assert secure.get("/fhir/SubscriptionTopic/stock-alert-raised", headers=headers).status_code == 200
