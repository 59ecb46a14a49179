"""``Patient/$match`` across the gateway's patient index and the members' live servers, on
loopback (POL-09: a prescription is recognised at another member only once its patient is
found there, and many members hold the patient without the resident ID number)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.federation.endpoints import endpoint_resource
from gateway.federation.match import MEMBER_CANDIDATES, member_searches
from tests.federation.conftest import (
    RESIDENT_ID,
    TinyServer,
    UvicornMember,
    dead_address,
    organization,
    patient,
    put,
    write_as_operator,
)
from tests.security.conftest import add_jwt_client, bearer, new_keys, secure_client

ID_NUMBER = "140423195603071234"
PHONE = "13903551234"


def _register(client: TestClient, code: str, address: str, kind: str = "fhir-r5") -> None:
    put(client, endpoint_resource(f"{code}-ep", kind, address, name=code, organization=f"Organization/{code}"))
    org = organization(code, f"{code} 卫生院", "township")
    org["endpoint"] = [{"reference": f"Endpoint/{code}-ep"}]
    put(client, org)


def _person(
    pid: str, *, id_number: str | None = None, given: str = "建国", gender: str = "male", phone: str | None = None
) -> dict[str, Any]:
    found = patient(pid, id_number or "", given=given)
    found["gender"] = gender
    if id_number is None:
        del found["identifier"]
    if phone is not None:
        found["telecom"] = [{"system": "phone", "value": phone}]
    return found


def _wanted(**changes: Any) -> dict[str, Any]:
    """The patient at the desk: ID number, name, birth date, gender and phone."""
    wanted = _person("q", id_number=ID_NUMBER, phone=PHONE)
    del wanted["id"]
    wanted.update(changes)
    return wanted


def _match(client: TestClient, wanted: dict[str, Any], headers: dict[str, str] | None = None, **params: Any) -> Any:
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": wanted}]}
    body["parameter"] += [{"name": k, **v} for k, v in params.items()]
    return client.post("/fhir/Patient/$match", json=body, headers=headers or {})


def _bundle(client: TestClient, wanted: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = _match(client, wanted, **params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _found(bundle: dict[str, Any]) -> list[tuple[str, str, float, str]]:
    """(id, meta.source or "", score, grade) of each candidate, in the answer's order."""
    return [
        (
            e["resource"]["id"],
            e["resource"].get("meta", {}).get("source", ""),
            e["search"]["score"],
            e["search"]["extension"][0]["valueCode"],
        )
        for e in bundle["entry"]
        if e["search"]["mode"] == "match"
    ]


def _outcome(bundle: dict[str, Any]) -> dict[str, str]:
    """Outcome issues: the member their diagnostics name -> YL code."""
    issues = [i for e in bundle["entry"] if e["search"]["mode"] == "outcome" for i in e["resource"]["issue"]]
    return {i["diagnostics"].split("Member ", 1)[1].split(" ", 1)[0]: i["details"]["coding"][0]["code"] for i in issues}


@pytest.fixture
def alliance(
    gateway: TestClient,
    yaolian_member: Callable[..., UvicornMember],
    tiny_member: Callable[..., TinyServer],
) -> tuple[TestClient, UvicornMember, TinyServer]:
    """The gateway holds the patient with the ID number; a township's live Yaolian holds the
    same person without it, a namesake born the same day and another person with the same
    name, birth date and another ID number; a village's R4 server holds the patient with the
    ID number and, without one, a man of the same name and birth date with another phone."""
    put(gateway, _person("cp", id_number=ID_NUMBER))
    township = yaolian_member("township")
    with httpx.Client() as member:
        put(member, _person("tp", phone=PHONE), township.base)  # the same person, no ID number
        put(member, _person("tq", given="秀英", gender="female"), township.base)
        put(member, _person("tz", id_number="140423195603079999"), township.base)  # another person
    village = tiny_member(
        resources=[_person("vp", id_number=ID_NUMBER), _person("vx", phone="13500000000")],
    )
    _register(gateway, "township", township.base)
    _register(gateway, "village", village.base, kind="fhir-r4")
    return gateway, township, village


def test_what_members_are_asked_keeps_recall_with_few_candidates() -> None:
    """The ID number, birth date with family name, the phone; each with a cap."""
    count = ("_count", str(MEMBER_CANDIDATES))
    assert member_searches(_wanted()) == [
        [("identifier", f"{RESIDENT_ID}|{ID_NUMBER}"), count],
        [("birthdate", "1956-03-07"), ("name", "王"), count],
        [("phone", PHONE), count],
    ]
    only_text = {"name": [{"text": "王建国"}], "birthDate": "1956-03-07"}
    assert member_searches(only_text) == [[("birthdate", "1956-03-07"), ("name", "王建国"), count]]
    assert member_searches({"birthDate": "1956-03-07", "gender": "male"}) == [[("birthdate", "1956-03-07"), count]]
    assert member_searches({"gender": "male"}) == []  # nothing a member could be asked by


def test_pol09_match_finds_the_patient_at_members_without_the_id_number_and_merges_nothing(alliance) -> None:  # type: ignore[no-untyped-def]
    gateway, township, village = alliance
    bundle = _bundle(gateway, _wanted())
    assert _found(bundle) == [
        ("cp", "", 1.0, "certain"),  # the gateway's own, same ID number
        ("vp", "urn:yaolian:member:village", 1.0, "certain"),  # R4 member, same ID number
        ("tp", "urn:yaolian:member:township", 1.0, "probable"),  # no ID: name, birth, phone, gender agree
        ("vx", "urn:yaolian:member:village", 0.75, "possible"),  # another phone: below the threshold
        ("tq", "urn:yaolian:member:township", 0.2, "possible"),  # a namesake born the same day, a woman
    ]  # tz (another ID number) is certainly not the patient: left out
    urls = {e["resource"]["id"]: e["fullUrl"] for e in bundle["entry"]}
    assert urls["tp"] == f"{township.base}/Patient/tp" and urls["vp"] == f"{village.base}/Patient/vp"
    assert urls["cp"].endswith("/fhir/Patient/cp") and bundle["total"] == 5 and bundle["type"] == "searchset"
    assert _outcome(bundle) == {}
    # the village was asked plain searches only, each capped, and asked nothing else
    asked = sorted(parse_qsl(urlsplit(r).query) for r in village.fhir.requests)
    assert all(r.startswith("/fhir/Patient?") for r in village.fhir.requests)
    assert asked == sorted(member_searches(_wanted()))
    # nothing merged or linked anywhere: $match proposes
    assert all("link" not in e["resource"] for e in bundle["entry"])
    assert gateway.get("/fhir/Patient", params={"_summary": "count"}).json()["total"] == 1
    with httpx.Client() as member:
        held = member.get(f"{township.base}/Patient", params={"_summary": "count"}).json()["total"]
        tp = member.get(f"{township.base}/Patient/tp").json()
    assert held == 3 and "link" not in tp and tp["meta"]["versionId"] == "1"


def test_only_certain_matches_and_count_as_the_r5_spec_says(alliance) -> None:  # type: ignore[no-untyped-def]
    gateway, _, _ = alliance
    put(gateway, _person("ca", phone=PHONE))  # the gateway's own record of them without the ID number
    certain = _bundle(gateway, _wanted(), onlyCertainMatches={"valueBoolean": True})
    assert [(i, g) for i, _, _, g in _found(certain)] == [("cp", "certain"), ("vp", "certain")]
    one = _bundle(gateway, _wanted(), onlyCertainMatches={"valueBoolean": True}, count={"valueInteger": 1})
    assert [i for i, *_ in _found(one)] == ["cp"]  # not lost behind "ca", of equal score and a smaller id
    top = _found(_bundle(gateway, _wanted(), count={"valueInteger": 4}))
    assert [i for i, *_ in top] == ["cp", "vp", "ca", "tp"]  # equal scores: certain first, then the gateway's
    without_id = _wanted()
    del without_id["identifier"]
    found = _found(_bundle(gateway, without_id))
    assert ("tp", "urn:yaolian:member:township", 1.0, "probable") in found and "tz" in {f[0] for f in found}
    assert _found(_bundle(gateway, without_id, onlyCertainMatches={"valueBoolean": True})) == []


def test_members_that_fail_are_named_and_the_answer_keeps_to_the_deadline(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    """Dead, slow, garbage: partial results, never silent loss, never past the timeout (1 s)."""
    good = tiny_member(resources=[_person("vp", id_number=ID_NUMBER)])
    _register(gateway, "good", good.base, kind="fhir-r4")
    _register(gateway, "dead", dead_address(), kind="fhir-r4")
    _register(gateway, "slow", tiny_member(resources=[_person("sp")], delay=3.0).base, kind="fhir-r4")
    _register(gateway, "html", tiny_member(behaviour="garbage").base)
    started = time.monotonic()
    bundle = _bundle(gateway, _wanted())
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 0.8, elapsed
    assert _found(bundle) == [("vp", "urn:yaolian:member:good", 1.0, "certain")]
    assert _outcome(bundle) == {"dead": "YL-1001", "slow": "YL-1000", "html": "YL-1002"}
    outcome = next(e for e in bundle["entry"] if e["search"]["mode"] == "outcome")
    assert "fullUrl" not in outcome and "127.0.0.1" not in str(outcome)  # named, never addressed


def test_breaker_and_cache_apply_to_match_as_to_prescriptions(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    village = tiny_member(resources=[_person("vp", id_number=ID_NUMBER)])
    _register(gateway, "village", village.base, kind="fhir-r4")
    failing = tiny_member(behaviour="500")
    _register(gateway, "err500", failing.base, kind="fhir-r4")
    for _ in range(3):  # federation_breaker_failures
        assert _outcome(_bundle(gateway, _wanted())) == {"err500": "YL-1003"}
    asked = len(failing.fhir.requests)
    assert _outcome(_bundle(gateway, _wanted())) == {"err500": "YL-1004"}
    assert len(failing.fhir.requests) == asked  # not asked while its breaker is open
    assert len(village.fhir.requests) == 3  # asked once (three searches), then from the cache
    fresh = _match(gateway, _wanted(), headers={"Cache-Control": "no-cache"})
    assert fresh.status_code == 200 and len(village.fhir.requests) == 6


def test_the_callers_rights_apply_before_any_member_is_asked(tmp_path: Path, tiny_member) -> None:  # type: ignore[no-untyped-def]
    village = tiny_member(resources=[_person("vp", id_number=ID_NUMBER)])
    database = f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    org = organization("village", "村卫生室", "village")
    org["endpoint"] = [{"reference": "Endpoint/village-ep"}]
    ep = endpoint_resource("village-ep", "fhir-r4", village.base, name="v", organization="Organization/village")
    write_as_operator(database, ep, org)
    keys = new_keys("ES384")
    insurer = add_jwt_client(database, tmp_path, keys, role="insurance")
    member = add_jwt_client(database, tmp_path, keys, role="member", extra=("--member", "xy-nanhan"))
    for client in secure_client(database, audit=False):
        refused = _match(client, _wanted(), headers=bearer(client, keys, insurer, "system/*.rs"))
        assert refused.status_code == 403 and "YL-0270" in refused.text
        assert village.fhir.requests == []  # refused before any member was asked
        assert _match(client, _wanted()).status_code == 401
        allowed = _match(client, _wanted(), headers=bearer(client, keys, member, "system/Patient.rs"))
        assert allowed.status_code == 200, allowed.text
        assert _found(allowed.json()) == [("vp", "urn:yaolian:member:village", 1.0, "certain")]
