"""A search value the index cannot compare is the client's error: the query parser reports it as
YL-0401 (inside a batch too, per entry), and the store, handed such a value some other way,
raises its own :class:`InvalidSearchValue`, never a REST error; the api maps that to 400."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.errors import BadRequest, FhirError
from gateway.search.parameters import parameters_for
from gateway.search.query import Criterion, SearchQuery, parse_criterion
from gateway.settings import Settings
from gateway.store.errors import InvalidSearchValue
from gateway.store.sql_search import search_select


@pytest.mark.parametrize(
    ("rtype", "key", "value"),
    [
        ("Patient", "birthdate", "yesterday"),
        ("Patient", "_lastUpdated", "ge2024-13"),
        ("RiskAssessment", "probability", "gtmany"),
        ("Observation", "value-quantity", "lots|http://unitsofmeasure.org|mg"),
        ("Observation", "code-value-quantity", "http://loinc.org|8480-6"),
        ("Observation", "code-value-quantity", "http://loinc.org|8480-6$gtmany"),
    ],
)
def test_the_parser_reports_values_the_index_cannot_compare(rtype: str, key: str, value: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_criterion(rtype, key, value)
    assert raised.value.issues[0].error_code == "YL-0401"


@pytest.mark.parametrize(
    ("rtype", "key", "value"),
    [
        ("Patient", "birthdate", "ge2024-02-03"),
        ("Patient", "birthdate:missing", "true"),
        ("RiskAssessment", "probability", "gt0.5"),
        ("Observation", "value-quantity", "le5.4|http://unitsofmeasure.org|mg"),
        ("Observation", "code-value-quantity", "http://loinc.org|8480-6$gt100"),
    ],
)
def test_the_parser_takes_comparable_values(rtype: str, key: str, value: str) -> None:
    assert parse_criterion(rtype, key, value) is not None


def test_the_store_raises_its_own_error_for_a_value_it_cannot_compare() -> None:
    criterion = Criterion(parameters_for("Patient")["birthdate"], ["yesterday"], name="birthdate")
    with pytest.raises(InvalidSearchValue) as raised:
        search_select(SearchQuery("Patient", criteria=[criterion]))
    assert not isinstance(raised.value, FhirError)
    assert (raised.value.name, raised.value.value) == ("birthdate", "yesterday")


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database=database_url, validation_mode="lenient"))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_a_bad_value_in_a_batch_fails_its_entry_only(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Patient?birthdate=yesterday"}},
            {"request": {"method": "GET", "url": "Patient?birthdate=2020"}},
        ],
    }
    response = client.post("/fhir", content=orjson.dumps(bundle), headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("400") and statuses[1].startswith("200"), statuses


def test_the_api_maps_the_store_error_to_an_operation_outcome(client: TestClient) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]

    def search(*_args: object, **_kwargs: object) -> object:
        raise InvalidSearchValue("birthdate", "yesterday", "not a FHIR date/dateTime")

    store.search = search
    response = client.get("/fhir/Patient?birthdate=2020")
    assert response.status_code == 400, response.text
    codes = [c["code"] for i in response.json()["issue"] for c in i["details"]["coding"]]
    assert codes == ["YL-0401"]
