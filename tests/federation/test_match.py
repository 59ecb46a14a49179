"""``Patient/$match``: the resident ID number first; otherwise a score, and never a merge."""

from __future__ import annotations

from typing import Any

from gateway.federation.match import score
from tests.federation.conftest import RESIDENT_ID, patient, put


def test_score_weights_and_the_id_number_decides() -> None:
    wanted = {"name": [{"family": "王", "given": ["建国"]}], "birthDate": "1956-03-07", "gender": "male"}
    same = {**wanted, "telecom": [{"system": "phone", "value": "13903551234"}]}
    assert score(wanted, same, 0.8).score == 0.75 and score(wanted, same, 0.8).grade == "possible"
    with_phone = {**wanted, "telecom": [{"system": "phone", "value": "+86 139-0355-1234"}]}
    assert score(with_phone, same, 0.8).score == 1.0 and score(with_phone, same, 0.8).grade == "probable"
    other_gender = {**same, "gender": "female"}
    assert score(with_phone, other_gender, 0.8).score == 0.8  # 0.9 agreed - 0.1 for the gender
    a = {**wanted, "identifier": [{"system": RESIDENT_ID, "value": "14042319560307123x"}]}
    b = {**wanted, "identifier": [{"system": RESIDENT_ID, "value": "14042319560307123X"}]}
    c = {**wanted, "identifier": [{"system": RESIDENT_ID, "value": "140423195603070000"}]}
    assert score(a, b, 0.8).grade == "certain" and score(a, c, 0.8).grade == "certainly-not"


def run(gateway: Any, resource: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": resource}]}
    body["parameter"] += [{"name": k, **v} for k, v in params.items()]
    response = gateway.post("/fhir/Patient/$match", json=body)
    assert response.status_code == 200, response.text
    return response.json()["entry"]  # type: ignore[no-any-return]


def test_match_over_rest_finds_by_id_number_then_by_score_and_merges_nothing(gateway) -> None:  # type: ignore[no-untyped-def]
    put(gateway, patient("a", "140423195603071234"))
    twin = patient("b", "140423195603079999")  # same name and birth date, another person
    put(gateway, twin)
    no_id = patient("c", "x")
    del no_id["identifier"]
    no_id["telecom"] = [{"system": "phone", "value": "13903551234"}]
    put(gateway, no_id)
    by_id = run(gateway, patient("q", "140423195603071234"))  # b: another ID number, left out
    assert [(e["resource"]["id"], e["search"]["score"]) for e in by_id] == [("a", 1.0), ("c", 0.75)]
    assert [e["search"]["extension"][0]["valueCode"] for e in by_id] == ["certain", "possible"]  # c: no ID number
    wanted = {"resourceType": "Patient", "name": [{"family": "王", "given": ["建国"]}], "birthDate": "1956-03-07",
              "gender": "male", "telecom": [{"system": "phone", "value": "13903551234"}]}  # fmt: skip
    found = run(gateway, wanted)
    assert (found[0]["resource"]["id"], found[0]["search"]["score"]) == ("c", 1.0)
    assert {e["resource"]["id"] for e in found} == {"a", "b", "c"}
    assert {e["search"]["extension"][0]["valueCode"] for e in found[1:]} == {"possible"}  # 0.75 < 0.8
    assert run(gateway, wanted, onlyCertainMatches={"valueBoolean": True}) == []
    assert gateway.get("/fhir/Patient", params={"_summary": "count"}).json()["total"] == 3  # nothing merged
    refused = gateway.post("/fhir/Patient/$match", json={"resourceType": "Parameters", "parameter": []})
    assert refused.status_code == 400 and "YL-1020" in refused.text
