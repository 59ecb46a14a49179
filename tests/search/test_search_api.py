"""Search over HTTP against the dataset of search_dataset.py, each query with its expected matches,
on both store backends (FHIR R5 search page: parameter types, modifiers, prefixes, result
parameters, includes, paging)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from search_dataset import DRUG, FORM, MRN, OTHER_TAGS, PRACTITIONER_CODE, TAGS, UCUM, YL_PATIENT, Dataset

STRICT = {"Prefer": "handling=strict"}
LENIENT = {"Prefer": "handling=lenient"}


def bundle_of(dataset: Dataset, query: str, **headers: str) -> dict[str, Any]:
    response = dataset.client.get(f"/fhir/{query}", headers=headers)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


def matches(bundle: dict[str, Any]) -> list[str]:
    found = [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    assert len(found) == len(set(found)), found
    return found


def included(bundle: dict[str, Any]) -> list[str]:
    return sorted(
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == "include"
    )


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


PATIENTS = {"pat-wang", "pat-muller", "pat-zhao", "pat-chen", "pat-lin"}

CASES: list[tuple[str, set[str]]] = [
    # -- token ------------------------------------------------------------------------------
    (f"Patient?identifier={MRN}|M001", {"pat-wang"}),
    ("Patient?identifier=M001", {"pat-wang", "pat-chen"}),
    ("Patient?identifier=|M003", {"pat-zhao"}),
    ("Patient?identifier=|M001", set()),
    (f"Patient?identifier={MRN}|", {"pat-wang", "pat-muller", "pat-lin"}),
    ("Patient?gender=female", {"pat-wang", "pat-zhao"}),
    ("Patient?gender:not=male", {"pat-wang", "pat-zhao", "pat-lin"}),
    ("Patient?active=false", {"pat-lin"}),
    ("Patient?active:not=false", PATIENTS - {"pat-lin"}),
    ("Patient?phone=13800000001", {"pat-wang"}),
    ("Patient?email=lin@example.org", {"pat-lin"}),
    (f"Medication?code={DRUG}|XC08CAA001", {"med-amlo"}),
    ("Medication?code:text=amlodipine", {"med-amlo"}),
    ("Medication?code:text=besylate", {"med-amlo"}),
    ("Medication?code:text=AMLO", {"med-amlo"}),
    ("Medication?code:text=苯磺酸", {"med-amlo"}),
    ("Medication?code:text=lodipine", set()),
    (f"Medication?standard-code={DRUG}|XA10BAA001", {"med-metf"}),
    (f"MedicationRequest?code={DRUG}|XA10BAA001", {"mr4"}),
    ("MedicationRequest?status=active", {"mr1", "mr3", "mr4"}),
    (f"Organization?identifier={quote('http://yaolian.org/fhir/sid/institution')}|H003", {"org-village"}),
    # -- string -----------------------------------------------------------------------------
    ("Patient?name=wang", {"pat-wang", "pat-lin"}),
    ("Patient?name=WANG", {"pat-wang", "pat-lin"}),
    ("Patient?name:exact=Wang", {"pat-wang"}),
    ("Patient?name:exact=wang", set()),
    ("Patient?name:contains=ing", {"pat-lin", "pat-chen"}),
    ("Patient?name:contains=ANG", {"pat-wang", "pat-lin"}),
    ("Patient?family=muller", {"pat-muller"}),
    ("Patient?family=MÜLLER", {"pat-muller"}),
    ("Patient?given=jose", {"pat-muller"}),
    ("Patient?family:exact=Müller", {"pat-muller"}),
    ("Patient?family:exact=Muller", set()),
    ("Patient?name=赵", {"pat-zhao"}),
    ("Patient?name=王芳", {"pat-wang"}),
    ("Patient?name=ang", set()),
    ("Organization?name=县人民", {"org-county"}),
    ("Medication?generic-name=盐酸", {"med-metf"}),
    # -- date -------------------------------------------------------------------------------
    ("Patient?birthdate=1950", {"pat-wang", "pat-muller"}),
    ("Patient?birthdate=1950-03", {"pat-wang", "pat-muller"}),
    ("Patient?birthdate=1950-03-15", {"pat-wang"}),
    ("Patient?birthdate=eq1950-03-15", {"pat-wang"}),
    ("Patient?birthdate=ne1950", {"pat-zhao", "pat-chen", "pat-lin"}),
    ("Patient?birthdate=gt1988", {"pat-chen"}),
    ("Patient?birthdate=ge1988", {"pat-zhao", "pat-chen"}),
    ("Patient?birthdate=lt1951", {"pat-wang", "pat-muller"}),
    ("Patient?birthdate=le1975-07-04", {"pat-wang", "pat-muller", "pat-lin"}),
    ("Patient?birthdate=sa1975", {"pat-zhao", "pat-chen"}),
    ("Patient?birthdate=eb1975", {"pat-wang", "pat-muller"}),
    ("Patient?birthdate=ap1988", {"pat-zhao"}),
    ("Patient?birthdate=gt1950-03-10", {"pat-wang", "pat-muller", "pat-zhao", "pat-chen", "pat-lin"}),
    ("Patient?birthdate=lt1950-03-10", {"pat-muller"}),
    ("MedicationRequest?authoredon=2024-03-01", {"mr1", "mr6"}),
    ("MedicationRequest?authoredon=2024-03-01T09:00:00%2B08:00", {"mr1"}),
    ("MedicationRequest?authoredon=2024-03-01T01:00:00Z", {"mr1"}),
    ("MedicationRequest?authoredon=2024-03-01T23:59:59Z", {"mr6"}),
    ("MedicationRequest?authoredon=2024-04-02", {"mr3"}),
    ("MedicationRequest?authoredon=2024-04-03", set()),
    ("MedicationRequest?authoredon=ge2024-04-03T07:00:00%2B08:00", {"mr3"}),
    ("MedicationRequest?authoredon=2023", set()),
    ("MedicationRequest?authoredon=2024-01-01", {"mr4"}),
    ("MedicationRequest?authoredon=2022-05", {"mr5"}),
    ("MedicationRequest?authoredon=2022-05-10", set()),
    ("MedicationRequest?authoredon=lt2024-03-01", {"mr4", "mr5"}),
    ("MedicationRequest?authoredon=ge2024-03-01&authoredon=lt2024-04", {"mr1", "mr2", "mr6"}),
    ("Patient?death-date=2023-06-01", {"pat-chen"}),
    ("Patient?death-date=2023-05-31", set()),
    ("Patient?death-date=2023-06-01T08:30:00%2B08:00", {"pat-chen"}),
    # -- reference --------------------------------------------------------------------------
    ("MedicationRequest?subject=Patient/pat-wang", {"mr1", "mr2"}),
    ("MedicationRequest?subject=pat-wang", {"mr1", "mr2"}),
    ("MedicationRequest?subject=http://testserver/fhir/Patient/pat-wang", {"mr1", "mr2"}),
    ("MedicationRequest?subject:Patient=pat-wang", {"mr1", "mr2"}),
    ("MedicationRequest?subject:Group=pat-wang", set()),
    ("MedicationRequest?patient=pat-muller", {"mr3"}),
    ("MedicationRequest?medication=Medication/med-amlo", {"mr1", "mr3"}),
    ("MedicationRequest?requester=prac-li", {"mr1", "mr3", "mr6"}),
    (f"MedicationRequest?requester:identifier={PRACTITIONER_CODE}|D001", {"mr6"}),
    (f"MedicationRequest?patient.identifier={MRN}|M001", {"mr1", "mr2"}),
    ("MedicationRequest?subject:Patient.name=muller", {"mr3"}),
    ("MedicationRequest?subject:Patient.birthdate=lt1960", {"mr1", "mr2", "mr3"}),
    ("MedicationRequest?requester.family=zhang", {"mr2", "mr4"}),
    ("MedicationRequest?subject.gender=female", {"mr1", "mr2", "mr4"}),
    ("Organization?partof=org-county", {"org-township"}),
    ("Patient?organization:Organization=org-village", {"pat-zhao"}),
    ("Patient?general-practitioner=Practitioner/prac-li", {"pat-wang"}),
    ("Patient?organization.name=qingshan", {"pat-muller"}),
    # -- quantity ---------------------------------------------------------------------------
    ("MedicationRequest?dispense-quantity=28", {"mr1"}),
    ("MedicationRequest?dispense-quantity=28.0", {"mr1"}),
    ("MedicationRequest?dispense-quantity=14.5", {"mr3"}),
    ("MedicationRequest?dispense-quantity=gt50", {"mr2", "mr4"}),
    ("MedicationRequest?dispense-quantity=lt20", {"mr3"}),
    ("MedicationRequest?dispense-quantity=le30", {"mr1", "mr3", "mr6"}),
    ("MedicationRequest?dispense-quantity=ne28", {"mr2", "mr3", "mr4", "mr6"}),
    ("MedicationRequest?dispense-quantity=ap100", {"mr4"}),
    (f"MedicationRequest?dispense-quantity=ge60|{FORM}|TAB", {"mr2"}),
    (f"MedicationRequest?dispense-quantity=100|{UCUM}|mg", {"mr4"}),
    ("MedicationRequest?dispense-quantity=100||mg", {"mr4"}),
    ("MedicationRequest?dispense-quantity=100||TAB", set()),
    # -- uri and canonical ------------------------------------------------------------------
    ("Organization?_source=http://his.county.example/fhir", {"org-township"}),
    ("Organization?_source:below=http://his.county.example/fhir", {"org-township", "org-county"}),
    ("Organization?_source:below=http://his.county.example", {"org-township", "org-county", "org-village"}),
    (f"Patient?_profile={YL_PATIENT}", {"pat-wang"}),
    ("Patient?_profile:below=http://yaolian.org/fhir/StructureDefinition", {"pat-wang"}),
    ("Patient?_profile:below=http://yaolian.org/fhir/Structure", set()),
    (f"Patient?_profile:above={YL_PATIENT}/sub", {"pat-wang"}),
    ("Organization?_source:above=http://his.county.example/fhir/v2/x", {"org-township", "org-county"}),
    # -- composite --------------------------------------------------------------------------
    (f"InventoryReport?item-code-quantity={DRUG}|XC08CAA001$gt100", {"inv1"}),
    (f"InventoryReport?item-code-quantity={DRUG}|XC08CAA001$lt50", {"inv2"}),
    (f"InventoryReport?item-code-quantity={DRUG}|XA10BAA001$ge500", {"inv2"}),
    (f"InventoryReport?item-code-quantity={DRUG}|XA10BAA001$lt100", {"inv1"}),
    ("InventoryReport?item-code-quantity=XC08CAA001$120", {"inv1"}),
    (f"InventoryReport?item-code-quantity={DRUG}|XC08CAA001$120|{FORM}|TAB", {"inv1"}),
    (f"InventoryReport?item-code-quantity={DRUG}|XC08CAA001$gt100,{DRUG}|XA10BAA001$ge500", {"inv1", "inv2"}),
    (f"InventoryReport?item-code={DRUG}|XC08CAA001&item-quantity=lt50", {"inv1", "inv2"}),
    ("InventoryReport?item-quantity=100", {"inv3"}),
    # -- special parameters -----------------------------------------------------------------
    ("Patient?_id=pat-wang,pat-zhao", {"pat-wang", "pat-zhao"}),
    ("Patient?_id=nobody", set()),
    (f"Patient?_tag={TAGS}|chronic", {"pat-wang", "pat-zhao"}),
    ("Patient?_tag=vip", {"pat-zhao"}),
    (f"Patient?_tag={OTHER_TAGS}|chronic", set()),
    (f"Patient?_tag:not={TAGS}|chronic", {"pat-muller", "pat-chen", "pat-lin"}),
    ("Patient?gender:missing=true", {"pat-lin"}),
    ("Patient?gender:missing=false", PATIENTS - {"pat-lin"}),
    ("Patient?death-date:missing=false", {"pat-chen"}),
    # -- OR by comma, AND by repetition -----------------------------------------------------
    ("Patient?gender=male,female", PATIENTS - {"pat-lin"}),
    ("Patient?family=wang,chen,nobody", {"pat-wang", "pat-chen"}),
    ("Patient?name=wang&name=fang", {"pat-wang"}),
    ("Patient?name=wang&gender=female", {"pat-wang"}),
    ("Patient?birthdate=ge1950&birthdate=lt1980", {"pat-wang", "pat-muller", "pat-lin"}),
    ("MedicationRequest?subject=pat-wang,pat-muller&status=active", {"mr1", "mr3"}),
    ("Patient?identifier=M001,M002&identifier=M002,M005", {"pat-muller"}),
    ("Patient?identifier=L\\,7\\|x", {"pat-lin"}),  # escaped separators are part of the value
    ("Patient?identifier=http://example.org/legacy|L\\,7\\|x", {"pat-lin"}),
    ("Patient?identifier=L,7", set()),  # an OR of L and 7
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_search_matches(dataset: Dataset, query: str, expected: set[str]) -> None:
    bundle = bundle_of(dataset, query)
    assert set(matches(bundle)) == expected
    assert bundle["total"] == len(expected)


def test_last_updated(dataset: Dataset) -> None:
    mark = quote(dataset.before_update)
    assert matches(bundle_of(dataset, f"Patient?_lastUpdated=gt{mark}")) == ["pat-lin"]
    assert set(matches(bundle_of(dataset, f"Patient?_lastUpdated=le{mark}"))) == PATIENTS - {"pat-lin"}
    assert set(matches(bundle_of(dataset, "Patient?_lastUpdated=ge2000-01-01"))) == PATIENTS
    assert matches(bundle_of(dataset, "Patient?_lastUpdated=lt2000-01-01")) == []


# -- sorting and paging -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("birthdate", ["pat-muller", "pat-wang", "pat-lin", "pat-zhao", "pat-chen"]),
        ("-birthdate", ["pat-chen", "pat-zhao", "pat-lin", "pat-muller", "pat-wang"]),
        ("gender,-birthdate", ["pat-zhao", "pat-wang", "pat-chen", "pat-muller", "pat-lin"]),
        ("-gender,birthdate", ["pat-muller", "pat-chen", "pat-wang", "pat-zhao", "pat-lin"]),
        ("family", ["pat-chen", "pat-lin", "pat-muller", "pat-wang", "pat-zhao"]),
        ("_id", ["pat-chen", "pat-lin", "pat-muller", "pat-wang", "pat-zhao"]),
        ("-_lastUpdated", ["pat-lin", "pat-chen", "pat-zhao", "pat-muller", "pat-wang"]),
    ],
)
def test_sort(dataset: Dataset, sort: str, expected: list[str]) -> None:
    assert matches(bundle_of(dataset, f"Patient?_sort={sort}")) == expected


def test_sort_quantity_and_date_across_time_zones(dataset: Dataset) -> None:
    by_date = matches(bundle_of(dataset, "MedicationRequest?_sort=authoredon"))
    assert by_date == ["mr5", "mr4", "mr1", "mr6", "mr2", "mr3"]
    assert matches(bundle_of(dataset, "MedicationRequest?_sort=-dispense-quantity")) == [
        "mr4",
        "mr2",
        "mr6",
        "mr1",
        "mr3",
        "mr5",
    ]


@pytest.mark.parametrize("sort", ["", "&_sort=birthdate", "&_sort=-gender,family"])
def test_paging_follows_next_until_done(dataset: Dataset, sort: str) -> None:
    everything = matches(bundle_of(dataset, f"Patient?_count=100{sort}"))
    url: str | None = f"/fhir/Patient?_count=2{sort}"
    seen: list[str] = []
    pages = 0
    while url:
        bundle = bundle_of(dataset, url.split("/fhir/", 1)[1])
        assert bundle["total"] == 5
        page = matches(bundle)
        assert len(page) <= 2
        seen.extend(page)
        pages += 1
        assert link(bundle, "self") is not None
        assert link(bundle, "first") is not None
        url = link(bundle, "next")
    assert pages == 3
    assert seen == everything
    assert len(set(seen)) == 5


def test_paging_links(dataset: Dataset) -> None:
    bundle = bundle_of(dataset, "Patient?_count=2&_offset=2&_sort=birthdate&gender:missing=false")
    assert matches(bundle) == ["pat-zhao", "pat-chen"]
    links = {x["relation"]: dict(parse_qsl(urlsplit(x["url"]).query)) for x in bundle["link"]}
    assert links["self"] == {"_sort": "birthdate", "gender:missing": "false", "_count": "2", "_offset": "2"}
    assert links["previous"]["_offset"] == "0"
    assert links["first"]["_offset"] == "0"
    assert links["last"]["_offset"] == "2"
    assert "next" not in links
    assert all(urlsplit(x["url"]).path == "/fhir/Patient" for x in bundle["link"])


def test_total_modes(dataset: Dataset) -> None:
    assert "total" not in bundle_of(dataset, "Patient?_total=none")
    assert bundle_of(dataset, "Patient?_total=accurate&_count=1")["total"] == 5
    assert bundle_of(dataset, "Patient?_total=estimate&_count=1")["total"] == 5
    assert dataset.client.get("/fhir/Patient?_total=maybe").status_code == 400


# -- _summary and _elements -----------------------------------------------------------------

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


def test_summary_count(dataset: Dataset) -> None:
    bundle = bundle_of(dataset, "Patient?gender=female&_summary=count")
    assert bundle["total"] == 2
    assert bundle.get("entry", []) == []
    assert [link["relation"] for link in bundle["link"]] == ["self"]  # a count has no pages


def test_summary_true(dataset: Dataset) -> None:
    (entry,) = bundle_of(dataset, "Patient?_id=pat-wang&_summary=true")["entry"]
    resource = entry["resource"]
    assert set(resource) == {
        "resourceType",
        "id",
        "meta",
        "identifier",
        "name",
        "telecom",
        "gender",
        "birthDate",
        "managingOrganization",
    }
    assert SUBSETTED in resource["meta"]["tag"]
    assert {"system": TAGS, "code": "chronic"} in resource["meta"]["tag"]


def test_summary_text_and_data(dataset: Dataset) -> None:
    text = bundle_of(dataset, "Patient?_id=pat-wang&_summary=text")["entry"][0]["resource"]
    assert set(text) == {"resourceType", "id", "meta", "text"}
    data = bundle_of(dataset, "Patient?_id=pat-wang&_summary=data")["entry"][0]["resource"]
    assert "text" not in data
    assert data["generalPractitioner"] == [{"reference": "Practitioner/prac-li"}]
    required = bundle_of(dataset, "MedicationRequest?_id=mr1&_summary=text")["entry"][0]["resource"]
    assert set(required) == {"resourceType", "id", "meta", "status", "intent", "medication", "subject"}


def test_elements(dataset: Dataset) -> None:
    (entry,) = bundle_of(dataset, "Patient?_id=pat-wang&_elements=name,gender")["entry"]
    resource = entry["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "name", "gender"}
    assert resource["name"] == [{"text": "王芳", "family": "Wang", "given": ["Fang"]}]
    assert SUBSETTED in resource["meta"]["tag"]
    read = dataset.client.get("/fhir/Patient/pat-wang?_elements=birthDate").json()
    assert set(read) == {"resourceType", "id", "meta", "birthDate"}


# -- _include / _revinclude -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected_matches", "expected_included"),
    [
        ("MedicationRequest?_id=mr1&_include=MedicationRequest:subject", ["mr1"], ["Patient/pat-wang"]),
        ("MedicationRequest?_id=mr1&_include=MedicationRequest:medication", ["mr1"], ["Medication/med-amlo"]),
        (
            "MedicationRequest?_id=mr1&_include=MedicationRequest:*",
            ["mr1"],
            ["Medication/med-amlo", "Patient/pat-wang", "Practitioner/prac-li"],
        ),
        (
            "MedicationRequest?_id=mr1,mr3&_include=MedicationRequest:subject:Patient",
            ["mr1", "mr3"],
            ["Patient/pat-muller", "Patient/pat-wang"],
        ),
        ("MedicationRequest?_id=mr1&_include=MedicationRequest:subject:Group", ["mr1"], []),
        (
            "Patient?_id=pat-wang&_revinclude=MedicationRequest:subject",
            ["pat-wang"],
            ["MedicationRequest/mr1", "MedicationRequest/mr2"],
        ),
        (
            "Patient?_id=pat-wang&_revinclude=MedicationRequest:subject&_include:iterate=MedicationRequest:medication",
            ["pat-wang"],
            ["Medication/med-amlo", "Medication/med-metf", "MedicationRequest/mr1", "MedicationRequest/mr2"],
        ),
        (
            "Patient?_id=pat-wang&_revinclude=MedicationRequest:subject&_include=MedicationRequest:medication",
            ["pat-wang"],
            ["MedicationRequest/mr1", "MedicationRequest/mr2"],
        ),
        ("Organization?_id=org-village&_include=Organization:partof", ["org-village"], ["Organization/org-township"]),
        (
            "Organization?_id=org-village&_include:iterate=Organization:partof",
            ["org-village"],
            ["Organization/org-county", "Organization/org-township"],
        ),
        (
            "MedicationRequest?_id=mr1&_include=MedicationRequest:subject&_include:iterate=Patient:organization",
            ["mr1"],
            ["Organization/org-county", "Patient/pat-wang"],
        ),
        (
            "Organization?_id=org-county&_revinclude=Patient:organization&_revinclude:iterate=MedicationRequest:subject",
            ["org-county"],
            ["MedicationRequest/mr1", "MedicationRequest/mr2", "Patient/pat-wang"],
        ),
        (
            "MedicationRequest?subject=pat-wang&_include=MedicationRequest:requester",
            ["mr1", "mr2"],
            ["Practitioner/prac-li", "Practitioner/prac-zhang"],
        ),
    ],
)
def test_include_and_revinclude(
    dataset: Dataset, query: str, expected_matches: list[str], expected_included: list[str]
) -> None:
    bundle = bundle_of(dataset, query)
    assert sorted(matches(bundle)) == expected_matches
    assert included(bundle) == expected_included
    assert bundle["total"] == len(expected_matches)  # included resources are not counted


def test_include_of_unknown_parameter_is_400(dataset: Dataset) -> None:
    response = dataset.client.get("/fhir/MedicationRequest?_include=MedicationRequest:colour")
    assert response.status_code == 400
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "YL-0404"


# -- POST _search and parameter handling -----------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"identifier={MRN}|M001",
        "name=wang&gender=female",
        "birthdate=ge1950&birthdate=lt1980&_sort=-birthdate",
        "_id=pat-wang&_revinclude=MedicationRequest:subject",
    ],
)
def test_post_search_agrees_with_get(dataset: Dataset, query: str) -> None:
    got = bundle_of(dataset, f"Patient?{query}")
    posted = dataset.client.post(
        "/fhir/Patient/_search",
        content=query.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert matches(body) == matches(got)
    assert included(body) == included(got)
    assert body["total"] == got["total"]


def test_post_search_combines_url_and_body(dataset: Dataset) -> None:
    posted = dataset.client.post(
        "/fhir/Patient/_search?gender=female",
        content=b"name=wang",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert matches(posted.json()) == ["pat-wang"]
    wrong = dataset.client.post("/fhir/Patient/_search", content=b"name=wang", headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 400


def test_unknown_parameter_lenient_is_ignored_and_reported(dataset: Dataset) -> None:
    bundle = bundle_of(dataset, "Patient?colour=red&gender=male", **LENIENT)
    assert sorted(matches(bundle)) == ["pat-chen", "pat-muller"]
    assert bundle["total"] == 2
    (outcome,) = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    issue = outcome["resource"]["issue"][0]
    assert outcome["resource"]["resourceType"] == "OperationOutcome"
    assert issue["severity"] == "warning"
    assert issue["details"]["coding"][0]["code"] == "YL-0400"
    assert issue["expression"] == ["colour"]
    # the self link states the search as performed: without the ignored parameter
    assert dict(parse_qsl(urlsplit(link(bundle, "self") or "").query)) == {
        "gender": "male",
        "_count": "20",
        "_offset": "0",
    }


def test_unknown_parameter_strict_is_400(dataset: Dataset) -> None:
    response = dataset.client.get("/fhir/Patient?colour=red&gender=male", headers=STRICT)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "YL-0400"
    assert issue["expression"] == ["colour"]


@pytest.mark.parametrize(
    "query",
    [
        "Patient?birthdate=at1950",
        "Patient?birthdate=1950-13",
        "MedicationRequest?dispense-quantity=lots",
        "InventoryReport?item-code-quantity=XC08CAA001",
        "Patient?gender:missing=maybe",
        "Patient?gender.name=x",
        "Patient?_count=-1",
        "Patient?_sort=item-code-quantity",
        "Patient?_summary=everything",
    ],
)
def test_invalid_search_values_are_400(dataset: Dataset, query: str) -> None:
    response = dataset.client.get(f"/fhir/{query}")
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_deleted_resources_are_not_found_and_come_back_when_recreated(module_client: Any, dataset: Dataset) -> None:
    import json

    client = dataset.client
    body = {"resourceType": "Practitioner", "id": "prac-temp", "name": [{"family": "Temporary"}]}
    headers = {"Content-Type": "application/fhir+json"}
    assert client.put("/fhir/Practitioner/prac-temp", content=json.dumps(body), headers=headers).status_code == 201
    assert matches(bundle_of(dataset, "Practitioner?family=temporary")) == ["prac-temp"]
    assert client.delete("/fhir/Practitioner/prac-temp").status_code == 204
    assert matches(bundle_of(dataset, "Practitioner?family=temporary")) == []
    assert matches(bundle_of(dataset, "Practitioner?_id=prac-temp")) == []
    assert client.put("/fhir/Practitioner/prac-temp", content=json.dumps(body), headers=headers).status_code == 201
    assert matches(bundle_of(dataset, "Practitioner?family=temporary")) == ["prac-temp"]
