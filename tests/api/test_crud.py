"""Instance and type interactions of the FHIR R5 http page, on both store backends:
create, read, vread, update (and create on update), conditional create/update/delete,
JSON Patch, delete, ``meta``, ETag and If-Match."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

FHIR_JSON = {"Content-Type": "application/fhir+json"}
INSTANT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
SYSTEM = "http://example.org/mrn"
ERROR_CODE_SYSTEM = "http://yaolian.org/fhir/CodeSystem/error-code"


def patient(mrn: str = "1", *, family: str = "Wang", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": mrn}],
        "name": [{"family": family, "given": ["Fang"]}],
        **extra,
    }


def send(client: TestClient, method: str, url: str, body: Any = None, **headers: str) -> Any:
    content = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    merged = {**FHIR_JSON, **headers} if content is not None else headers
    return client.request(method, url, content=content, headers=merged)


def create(client: TestClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = send(client, "POST", f"/fhir/{resource['resourceType']}", resource)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def error_code(response: Any) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    (coding,) = body["issue"][0]["details"]["coding"]
    assert coding["system"] == ERROR_CODE_SYSTEM
    return coding["code"]  # type: ignore[no-any-return]


def search_ids(client: TestClient, query: str) -> list[str]:
    bundle = client.get(f"/fhir/{query}").json()
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


# -- create / read -------------------------------------------------------------------------


def test_create_assigns_id_and_meta_and_answers_201_with_location_and_etag(client: TestClient) -> None:
    body = patient(
        id="client-chosen",
        meta={
            "versionId": "7",
            "lastUpdated": "2001-01-01T00:00:00Z",
            "tag": [{"system": "http://example.org/tags", "code": "demo"}],
        },
    )
    response = send(client, "POST", "/fhir/Patient", body)
    assert response.status_code == 201
    created = response.json()
    new_id = created["id"]
    assert new_id != "client-chosen"
    assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", new_id)
    assert response.headers["Location"] == f"http://testserver/fhir/Patient/{new_id}/_history/1"
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Content-Type"] == "application/fhir+json;charset=utf-8"
    assert created["meta"]["versionId"] == "1"
    assert INSTANT_RE.match(created["meta"]["lastUpdated"])
    assert created["meta"]["lastUpdated"] != "2001-01-01T00:00:00Z"
    assert created["meta"]["tag"] == [{"system": "http://example.org/tags", "code": "demo"}]
    assert created["name"] == body["name"]
    assert created["identifier"] == body["identifier"]


def test_read_returns_the_stored_resource_with_etag_and_last_modified(client: TestClient) -> None:
    created = create(client, patient())
    response = client.get(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Last-Modified"].endswith(" GMT")


def test_read_with_matching_if_none_match_is_304(client: TestClient) -> None:
    created = create(client, patient())
    response = client.get(f"/fhir/Patient/{created['id']}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304
    assert response.content == b""
    again = client.get(f"/fhir/Patient/{created['id']}", headers={"If-None-Match": 'W/"0"'})
    assert again.status_code == 200


def test_read_of_unknown_id_is_404_outcome(client: TestClient) -> None:
    response = client.get("/fhir/Patient/nope")
    assert response.status_code == 404
    assert error_code(response) == "YL-0201"
    assert response.json()["issue"][0]["code"] == "not-found"


def test_prefer_return_minimal_and_operation_outcome(client: TestClient) -> None:
    minimal = send(client, "POST", "/fhir/Patient", patient(), Prefer="return=minimal")
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["Location"].startswith("http://testserver/fhir/Patient/")
    outcome = send(client, "POST", "/fhir/Patient", patient("2"), Prefer="return=OperationOutcome")
    assert outcome.status_code == 201
    assert outcome.json()["resourceType"] == "OperationOutcome"


def test_create_preserves_decimal_text_and_unknown_member_order(client: TestClient) -> None:
    raw = (
        b'{"resourceType":"Medication","code":{"text":"Amlodipine 5 mg"},'
        b'"ingredient":[{"item":{"concept":{"text":"amlodipine"}},'
        b'"strengthRatio":{"numerator":{"value":5.10,"unit":"mg"},"denominator":{"value":1.0,"unit":"tablet"}}}]}'
    )
    response = send(client, "POST", "/fhir/Medication", raw)
    assert response.status_code == 201
    read = client.get(f"/fhir/Medication/{response.json()['id']}")
    assert b'"numerator":{"value":5.10,"unit":"mg"}' in read.content
    assert b'"denominator":{"value":1.0,"unit":"tablet"}' in read.content


# -- update / vread ------------------------------------------------------------------------


def test_update_makes_a_new_version_and_vread_returns_each(client: TestClient) -> None:
    created = create(client, patient())
    rid = created["id"]
    changed = {**created, "name": [{"family": "Li"}]}
    response = send(client, "PUT", f"/fhir/Patient/{rid}", changed)
    assert response.status_code == 200
    updated = response.json()
    assert updated["meta"]["versionId"] == "2"
    assert updated["meta"]["lastUpdated"] > created["meta"]["lastUpdated"]
    assert response.headers["ETag"] == 'W/"2"'
    assert "Location" not in response.headers
    first = client.get(f"/fhir/Patient/{rid}/_history/1")
    assert first.status_code == 200
    assert first.json() == created
    assert first.headers["ETag"] == 'W/"1"'
    second = client.get(f"/fhir/Patient/{rid}/_history/2")
    assert second.json() == updated
    assert client.get(f"/fhir/Patient/{rid}").json()["name"] == [{"family": "Li"}]
    missing = client.get(f"/fhir/Patient/{rid}/_history/3")
    assert missing.status_code == 404
    assert error_code(missing) == "YL-0202"
    assert client.get(f"/fhir/Patient/{rid}/_history/x").status_code == 404


def test_update_of_a_new_id_creates_it(client: TestClient) -> None:
    response = send(client, "PUT", "/fhir/Patient/pat-new.1", patient(id="pat-new.1"))
    assert response.status_code == 201
    assert response.headers["Location"] == "http://testserver/fhir/Patient/pat-new.1/_history/1"
    assert response.json()["id"] == "pat-new.1"
    assert response.json()["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/pat-new.1").status_code == 200


@pytest.mark.parametrize(
    ("url", "body", "code"),
    [
        ("/fhir/Patient/a", patient(id="b"), "YL-0104"),
        ("/fhir/Patient/a", patient(), "YL-0105"),
        ("/fhir/Patient/" + "x" * 65, patient(id="x" * 65), "YL-0106"),
        ("/fhir/Patient/a", {"resourceType": "Practitioner", "id": "a"}, "YL-0103"),
    ],
    ids=["id-mismatch", "id-missing", "id-invalid", "type-mismatch"],
)
def test_update_rejects_bad_ids_and_types(client: TestClient, url: str, body: dict[str, Any], code: str) -> None:
    response = send(client, "PUT", url, body)
    assert response.status_code == 400
    assert error_code(response) == code


def test_if_match_current_version_updates_and_stale_is_412(client: TestClient) -> None:
    created = create(client, patient())
    rid = created["id"]
    ok = send(client, "PUT", f"/fhir/Patient/{rid}", {**created, "active": True}, **{"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = send(client, "PUT", f"/fhir/Patient/{rid}", {**created, "active": False}, **{"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert error_code(stale) == "YL-0300"
    assert stale.json()["issue"][0]["code"] == "conflict"
    assert client.get(f"/fhir/Patient/{rid}").json()["active"] is True
    malformed = send(client, "PUT", f"/fhir/Patient/{rid}", created, **{"If-Match": "yesterday"})
    assert malformed.status_code == 400
    assert error_code(malformed) == "YL-0301"
    absent = send(client, "PUT", "/fhir/Patient/absent", patient(id="absent"), **{"If-Match": 'W/"1"'})
    assert absent.status_code == 412
    assert client.get("/fhir/Patient/absent").status_code == 404


# -- conditional create / update / delete --------------------------------------------------


def test_conditional_create_0_1_2_matches(client: TestClient) -> None:
    criteria = {"If-None-Exist": f"identifier={SYSTEM}|c-1"}
    first = send(client, "POST", "/fhir/Patient", patient("c-1"), **criteria)
    assert first.status_code == 201
    again = send(client, "POST", "/fhir/Patient", patient("c-1", family="Other"), **criteria)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["name"][0]["family"] == "Wang"
    assert again.json()["meta"]["versionId"] == "1"
    create(client, patient("c-1"))  # a plain create makes a second match
    ambiguous = send(client, "POST", "/fhir/Patient", patient("c-1"), **criteria)
    assert ambiguous.status_code == 412
    assert error_code(ambiguous) == "YL-0302"
    assert ambiguous.json()["issue"][0]["code"] == "multiple-matches"
    assert len(search_ids(client, f"Patient?identifier={SYSTEM}|c-1")) == 2


def test_conditional_create_with_unknown_parameter_is_400(client: TestClient) -> None:
    response = send(client, "POST", "/fhir/Patient", patient(), **{"If-None-Exist": "nonsense=1"})
    assert response.status_code == 400
    assert error_code(response) == "YL-0400"


def test_conditional_update_creates_updates_or_refuses(client: TestClient) -> None:
    url = f"/fhir/Patient?identifier={SYSTEM}|u-1"
    created = send(client, "PUT", url, patient("u-1"))
    assert created.status_code == 201
    rid = created.json()["id"]
    updated = send(client, "PUT", url, patient("u-1", family="Zhao"))
    assert updated.status_code == 200
    assert updated.json()["id"] == rid
    assert updated.json()["meta"]["versionId"] == "2"
    assert client.get(f"/fhir/Patient/{rid}").json()["name"][0]["family"] == "Zhao"
    mismatch = send(client, "PUT", url, patient("u-1", id="someone-else"))
    assert mismatch.status_code == 400
    assert error_code(mismatch) == "YL-0104"
    create(client, patient("u-1"))
    ambiguous = send(client, "PUT", url, patient("u-1"))
    assert ambiguous.status_code == 412
    assert error_code(ambiguous) == "YL-0302"
    no_criteria = send(client, "PUT", "/fhir/Patient", patient())
    assert no_criteria.status_code == 400


def test_conditional_delete(client: TestClient) -> None:
    rid = create(client, patient("d-1"))["id"]
    response = client.delete(f"/fhir/Patient?identifier={SYSTEM}|d-1")
    assert response.status_code == 204
    assert client.get(f"/fhir/Patient/{rid}").status_code == 410
    create(client, patient("d-2"))
    create(client, patient("d-2"))
    ambiguous = client.delete(f"/fhir/Patient?identifier={SYSTEM}|d-2")
    assert ambiguous.status_code == 412
    assert len(search_ids(client, f"Patient?identifier={SYSTEM}|d-2")) == 2


# -- JSON Patch -----------------------------------------------------------------------------

PATCH = {"Content-Type": "application/json-patch+json"}


def patch(client: TestClient, url: str, operations: Any, **headers: str) -> Any:
    return client.patch(url, content=json.dumps(operations), headers={**PATCH, **headers})


def test_json_patch_applies_operations_as_a_new_version(client: TestClient) -> None:
    created = create(client, patient(birthDate="1980-02-03"))
    rid = created["id"]
    response = patch(
        client,
        f"/fhir/Patient/{rid}",
        [
            {"op": "test", "path": "/birthDate", "value": "1980-02-03"},
            {"op": "replace", "path": "/birthDate", "value": "1981-02-03"},
            {"op": "add", "path": "/name/-", "value": {"family": "Li"}},
            {"op": "remove", "path": "/identifier"},
            {"op": "add", "path": "/active", "value": True},
        ],
        **{"If-Match": 'W/"1"'},
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["birthDate"] == "1981-02-03"
    assert patched["name"] == [{"family": "Wang", "given": ["Fang"]}, {"family": "Li"}]
    assert "identifier" not in patched
    assert patched["active"] is True
    assert patched["meta"]["versionId"] == "2"
    assert response.headers["ETag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{rid}").json() == patched
    # the search index follows the patch
    assert search_ids(client, "Patient?birthdate=1981-02-03") == [rid]
    assert search_ids(client, "Patient?birthdate=1980-02-03") == []


def test_json_patch_keeps_number_text(client: TestClient) -> None:
    raw = b'{"resourceType":"Medication","code":{"text":"x"},"totalVolume":{"value":6.10,"unit":"mL"}}'
    rid = send(client, "POST", "/fhir/Medication", raw).json()["id"]
    response = patch(client, f"/fhir/Medication/{rid}", [{"op": "replace", "path": "/code/text", "value": "y"}])
    assert response.status_code == 200
    assert b'"totalVolume":{"value":6.10,"unit":"mL"}' in client.get(f"/fhir/Medication/{rid}").content


def test_json_patch_failures(client: TestClient) -> None:
    created = create(client, patient(birthDate="1980-02-03"))
    url = f"/fhir/Patient/{created['id']}"
    failed_test = patch(client, url, [{"op": "test", "path": "/birthDate", "value": "1999-01-01"}])
    assert failed_test.status_code == 422
    assert error_code(failed_test) == "YL-0600"
    assert failed_test.json()["resourceType"] == "OperationOutcome"
    missing_path = patch(client, url, [{"op": "remove", "path": "/telecom"}])
    assert missing_path.status_code == 422
    changes_id = patch(client, url, [{"op": "replace", "path": "/id", "value": "other"}])
    assert changes_id.status_code == 422
    not_a_list = patch(client, url, {"op": "remove", "path": "/birthDate"})
    assert not_a_list.status_code == 400
    not_json = client.patch(url, content=b"[{", headers=PATCH)
    assert not_json.status_code == 400
    assert error_code(not_json) == "YL-0100"
    wrong_type = client.patch(url, content=b"[]", headers=FHIR_JSON)
    assert wrong_type.status_code == 415
    assert error_code(wrong_type) == "YL-0601"
    stale = patch(client, url, [], **{"If-Match": 'W/"9"'})
    assert stale.status_code == 412
    unknown = patch(client, "/fhir/Patient/unknown", [])
    assert unknown.status_code == 404
    # nothing was changed by the failures
    assert client.get(url).json() == created


def test_json_patch_invalidating_the_resource_is_422(client: TestClient) -> None:
    created = create(client, patient())
    response = patch(client, f"/fhir/Patient/{created['id']}", [{"op": "add", "path": "/colour", "value": "red"}])
    assert response.status_code == 422
    # the base-structure finding: YL-0700 (core) or YL-3001 (gateway.validation, when installed)
    assert error_code(response) in ("YL-0700", "YL-3001")
    found = response.json()["issue"][0]
    assert found["code"] == "structure"
    assert found["expression"] == ["Patient.colour"]


# -- delete ---------------------------------------------------------------------------------


def test_delete_then_410_history_and_recreate_by_put(client: TestClient) -> None:
    created = create(client, patient())
    rid = created["id"]
    deleted = client.delete(f"/fhir/Patient/{rid}")
    assert deleted.status_code == 204
    assert deleted.headers["ETag"] == 'W/"2"'
    gone = client.get(f"/fhir/Patient/{rid}")
    assert gone.status_code == 410
    assert error_code(gone) == "YL-0203"
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get(f"/fhir/Patient/{rid}/_history/1").json() == created
    assert client.get(f"/fhir/Patient/{rid}/_history/2").status_code == 410
    assert search_ids(client, f"Patient?identifier={SYSTEM}|1") == []
    assert client.delete(f"/fhir/Patient/{rid}").status_code == 204  # idempotent
    history = client.get(f"/fhir/Patient/{rid}/_history").json()
    assert history["type"] == "history"
    assert history["total"] == 2
    latest, first = history["entry"]
    assert latest["request"] == {"method": "DELETE", "url": f"Patient/{rid}"}
    assert latest["response"]["status"] == "204 No Content"
    assert latest["response"]["etag"] == 'W/"2"'
    assert "resource" not in latest
    assert first["request"] == {"method": "POST", "url": "Patient"}
    assert first["resource"] == created
    recreated = send(client, "PUT", f"/fhir/Patient/{rid}", {**created, "active": True})
    assert recreated.status_code == 201
    assert recreated.json()["meta"]["versionId"] == "3"
    assert client.get(f"/fhir/Patient/{rid}").json()["active"] is True
    assert search_ids(client, f"Patient?identifier={SYSTEM}|1") == [rid]


def test_delete_with_if_match(client: TestClient) -> None:
    created = create(client, patient())
    rid = created["id"]
    send(client, "PUT", f"/fhir/Patient/{rid}", {**created, "active": True})
    stale = client.delete(f"/fhir/Patient/{rid}", headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert error_code(stale) == "YL-0300"
    assert client.get(f"/fhir/Patient/{rid}").status_code == 200
    assert client.delete(f"/fhir/Patient/{rid}", headers={"If-Match": 'W/"2"'}).status_code == 204
    assert client.get(f"/fhir/Patient/{rid}").status_code == 410
    assert client.delete(f"/fhir/Patient/{rid}", headers={"If-Match": 'W/"2"'}).status_code == 412


def test_patch_and_if_match_update_of_a_deleted_resource(client: TestClient) -> None:
    rid = create(client, patient())["id"]
    client.delete(f"/fhir/Patient/{rid}")
    assert patch(client, f"/fhir/Patient/{rid}", []).status_code == 410
    stale = send(client, "PUT", f"/fhir/Patient/{rid}", patient(id=rid), **{"If-Match": 'W/"1"'})
    assert stale.status_code == 412


# -- FHIR JSON primitive kinds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        ({"resourceType": "Patient", "active": "yes"}, "Patient.active"),
        ({"resourceType": "Patient", "multipleBirthInteger": "3"}, "Patient.multipleBirthInteger"),
        ({"resourceType": "Patient", "multipleBirthInteger": 3.5}, "Patient.multipleBirthInteger"),
        ({"resourceType": "Patient", "birthDate": 1980}, "Patient.birthDate"),
        (
            {"resourceType": "Patient", "_birthDate": {"extension": [{"url": "urn:x", "valueBoolean": "no"}]}},
            "Patient._birthDate.extension[0].valueBoolean",
        ),
        (
            {"resourceType": "Medication", "contained": [{"resourceType": "Patient", "id": "p", "active": 1}]},
            "Medication.contained[0].active",
        ),
        ({"resourceType": "Medication", "totalVolume": {"value": "6.10"}}, "Medication.totalVolume.value"),
    ],
    ids=["boolean-string", "integer-string", "integer-decimal", "date-number", "extension", "contained", "decimal"],
)
def test_primitives_of_the_wrong_json_kind_are_400_and_not_stored(
    client: TestClient, resource: dict[str, Any], expression: str
) -> None:
    """fhir.resources coerces these; the gateway stores the client's text, so it must refuse them."""
    response = send(client, "POST", f"/fhir/{resource['resourceType']}", resource)
    assert response.status_code == 400, response.text
    assert error_code(response) == "YL-0108"
    found = response.json()["issue"][0]
    assert found["code"] == "structure"
    assert found["expression"] == [expression]
    assert client.get(f"/fhir/{resource['resourceType']}").json()["total"] == 0


def test_null_is_allowed_only_to_align_primitive_arrays_with_their_extensions(client: TestClient) -> None:
    aligned = {
        "resourceType": "Patient",
        "name": [{"given": ["Li", None], "_given": [None, {"extension": [{"url": "urn:x", "valueString": "y"}]}]}],
    }
    response = send(client, "POST", "/fhir/Patient", aligned)
    assert response.status_code == 201, response.text
    as_xml = client.get(f"/fhir/Patient/{response.json()['id']}", params={"_format": "xml"})
    assert as_xml.status_code == 200
    assert b'<given value="Li"/>' in as_xml.content
    both_null = {"resourceType": "Patient", "name": [{"given": ["Li", None], "_given": [None, None]}]}
    refused = send(client, "POST", "/fhir/Patient", both_null)
    assert refused.status_code == 400
    assert [i["expression"] for i in refused.json()["issue"]] == [
        ["Patient.name[0].given[1]"],
        ["Patient.name[0]._given[1]"],
    ]


def test_patch_to_a_wrong_json_kind_is_400(client: TestClient) -> None:
    created = create(client, patient())
    response = patch(client, f"/fhir/Patient/{created['id']}", [{"op": "add", "path": "/active", "value": "true"}])
    assert response.status_code == 400
    assert error_code(response) == "YL-0108"
    assert client.get(f"/fhir/Patient/{created['id']}", params={"_format": "xml"}).status_code == 200
