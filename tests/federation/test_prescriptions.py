"""``Patient/$prescriptions`` across the store and live members on loopback (POL-08)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.federation.endpoints import endpoint_resource
from gateway.settings import Settings
from tests.federation.conftest import (
    RESIDENT_ID,
    medication,
    organization,
    patient,
    put,
    r4_request,
    r5_request,
)

ID_NUMBER = "140423195603071234"
IDENT = f"{RESIDENT_ID}|{ID_NUMBER}"


def register(client: TestClient, code: str, tier: str, address: str | None = None, kind: str = "fhir-r5") -> None:
    org = organization(code, f"{code} 卫生院", tier)
    if address is not None:
        put(client, endpoint_resource(f"{code}-ep", kind, address, name=code, organization=f"Organization/{code}"))
        org["endpoint"] = [{"reference": f"Endpoint/{code}-ep"}]
    put(client, org)


def search(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/fhir/Patient/$prescriptions", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def outcome(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for e in bundle.get("entry", []) if e["search"]["mode"] == "outcome" for i in e["resource"]["issue"]]


def test_pol08_one_query_finds_local_r5_and_r4_records_each_with_its_source(
    gateway, yaolian_member, tiny_member
) -> None:  # type: ignore[no-untyped-def]
    township = yaolian_member("township")
    with httpx.Client() as member:
        put(member, patient("tp1", ID_NUMBER), township.base)
        put(member, medication("amlo", "氨氯地平片"), township.base)
        put(member, r5_request("t-rx1", "T-001", "tp1", "2026-11-02T09:00:00+08:00", "amlo"), township.base)
    village = tiny_member(
        resources=[
            patient("vp9", ID_NUMBER),
            medication("met", "二甲双胍片"),
            r4_request("v-rx1", "V-001", "vp9", "2026-11-20T10:00:00+08:00", "met"),
        ]
    )
    register(gateway, "county", "county")
    register(gateway, "township", "township", township.base)
    register(gateway, "village", "village", village.base, kind="fhir-r4")
    put(gateway, patient("cp", ID_NUMBER))
    put(gateway, medication("nif", "硝苯地平缓释片"))
    local = r5_request("c-rx1", "C-001", "cp", "2026-10-01T08:00:00+08:00", "nif")
    local["meta"] = {"tag": [{"system": "http://yaolian.org/fhir/sid/member", "code": "county"}]}
    put(gateway, local)

    bundle = search(gateway, identifier=IDENT)
    found = matches(bundle)
    assert [r["identifier"][0]["value"] for r in found] == ["V-001", "T-001", "C-001"]  # newest first
    assert [r["meta"]["source"] for r in found] == [
        "urn:yaolian:member:village",
        "urn:yaolian:member:township",
        "urn:yaolian:member:county",
    ]
    r4 = found[0]
    assert r4["medication"] == {"reference": {"reference": "Medication/met"}}
    assert r4["reason"] == [{"concept": {"text": "高血压"}}] and "reasonCode" not in r4
    included = {
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in bundle["entry"]
        if e["search"]["mode"] == "include"
    }
    assert {("Medication", "met"), ("Medication", "amlo"), ("Medication", "nif")} <= included
    assert {("Organization", "county"), ("Organization", "township"), ("Organization", "village")} <= included
    provenances = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"]
    targets = {t["reference"] for p in provenances for t in p["target"]}
    assert {e["fullUrl"] for e in bundle["entry"] if e["search"]["mode"] == "match"} <= targets
    assert outcome(bundle) == [] and bundle["total"] == 3


def _r4_village(tiny_member, rx: str = "V-001", **kwargs: Any):  # type: ignore[no-untyped-def]
    return tiny_member(
        resources=[
            patient("vp9", ID_NUMBER),
            medication("met", "二甲双胍片"),
            r4_request("v-rx1", rx, "vp9", "2026-11-20T10:00:00+08:00", "met"),
        ],
        **kwargs,
    )


def codes(bundle: dict[str, Any]) -> dict[str, str]:
    """Outcome issues by the member their diagnostics name -> YL code."""
    found = {}
    for i in outcome(bundle):
        member = i["diagnostics"].split("Member ", 1)[1].split(" ", 1)[0] if "Member " in i["diagnostics"] else ""
        found[member] = i["details"]["coding"][0]["code"]
    return found


def test_members_that_fail_are_named_in_the_outcome_and_the_rest_still_answer(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    """Slow, dead, 500, garbage and wrong-Bundle members: partial results, never silent loss."""
    import time

    from tests.federation.conftest import dead_address

    good = _r4_village(tiny_member)
    register(gateway, "good", "village", good.base, kind="fhir-r4")
    register(gateway, "slow", "village", _r4_village(tiny_member, delay=3.0).base, kind="fhir-r4")
    register(gateway, "dead", "village", dead_address(), kind="fhir-r4")
    register(gateway, "err500", "village", _r4_village(tiny_member, behaviour="500").base, kind="fhir-r4")
    register(gateway, "html", "village", _r4_village(tiny_member, behaviour="garbage").base, kind="fhir-r4")
    register(gateway, "wrong", "village", _r4_village(tiny_member, behaviour="wrong-bundle").base)
    started = time.monotonic()
    bundle = search(gateway, identifier=IDENT)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 0.8, elapsed  # federation_timeout is 1 s in this gateway
    assert [r["meta"]["source"] for r in matches(bundle)] == ["urn:yaolian:member:good"]
    assert codes(bundle) == {
        "slow": "YL-1000",
        "dead": "YL-1001",
        "err500": "YL-1003",
        "html": "YL-1002",
        "wrong": "YL-1002",
    }
    assert all(i["severity"] == "warning" for i in outcome(bundle))
    text = str(outcome(bundle))
    assert "127.0.0.1" not in text  # members are named, their addresses are not


def test_a_member_sending_an_endless_answer_is_cut_off_not_read_into_memory(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    """An answer past 32 MiB ends that member's part (named in the outcome), long before the
    member's timeout and without the gateway holding what it sent."""
    register(gateway, "flood", "village", _r4_village(tiny_member, behaviour="endless").base, kind="fhir-r4")
    bundle = search(gateway, identifier=IDENT)
    assert codes(bundle) == {"flood": "YL-1001"}
    assert "larger than 32 MiB" in str(outcome(bundle))


def test_breaker_stops_asking_a_member_that_keeps_failing(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    failing = _r4_village(tiny_member, behaviour="500")
    register(gateway, "err500", "village", failing.base, kind="fhir-r4")
    for _ in range(3):  # federation_breaker_failures
        assert codes(search(gateway, identifier=IDENT)) == {"err500": "YL-1003"}
    asked = len(failing.fhir.requests)
    assert codes(search(gateway, identifier=IDENT)) == {"err500": "YL-1004"}
    assert len(failing.fhir.requests) == asked  # not asked while the breaker is open


def _lenient_village(tiny_member, **kwargs: Any):  # type: ignore[no-untyped-def]
    """An R4 server that does not know ``patient.identifier`` and, lenient, ignores it: asked
    for one patient, it answers every patient's prescriptions."""
    return tiny_member(
        resources=[
            patient("vp9", ID_NUMBER),
            patient("other", "140423198001010000", family="李"),
            medication("met", "二甲双胍片"),
            r4_request("v-rx1", "V-001", "vp9", "2026-11-20T10:00:00+08:00", "met"),
            r4_request("v-rx2", "V-002", "other", "2026-11-21T10:00:00+08:00", "met"),
        ],
        understood=frozenset({"_include", "_count"}),
        **kwargs,
    )


def test_pol08_a_member_ignoring_the_patient_shows_no_other_patients_records(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    """The subjects come along (``_include=…:subject``): a record whose subject carries another
    resident ID number is left out and named, never shown as this patient's."""
    lenient = _lenient_village(tiny_member)
    register(gateway, "lenient", "village", lenient.base, kind="fhir-r4")
    bundle = search(gateway, identifier=IDENT)
    assert [r["identifier"][0]["value"] for r in matches(bundle)] == ["V-001"]
    [left_out] = outcome(bundle)
    assert left_out["details"]["coding"][0]["code"] == "YL-1005"
    assert "member lenient" in left_out["diagnostics"] and "another patient's record" in left_out["diagnostics"]
    assert "140423198001010000" not in str(bundle) and "李" not in str(bundle)  # nothing of the other patient
    assert not [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]


def test_pol08_a_member_whose_self_link_drops_the_patient_criterion_is_not_used(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    """A searchset's ``self`` link lists the parameters the server used: one naming ``_include``
    and ``_count`` but not ``patient.identifier`` ignored the patient, so none of it is shown."""
    lenient = _lenient_village(tiny_member, self_link=True)
    register(gateway, "lenient", "village", lenient.base, kind="fhir-r4")
    bundle = search(gateway, identifier=IDENT)
    assert matches(bundle) == []
    assert codes(bundle) == {"lenient": "YL-1002"}
    assert "ignored the search criterion patient.identifier" in str(outcome(bundle))


def test_a_self_link_naming_the_criterion_is_trusted(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    register(gateway, "village", "village", _r4_village(tiny_member, self_link=True).base, kind="fhir-r4")
    bundle = search(gateway, identifier=IDENT)
    assert [r["identifier"][0]["value"] for r in matches(bundle)] == ["V-001"] and not outcome(bundle)


@pytest.mark.redis
def test_a_breaker_opened_by_one_gateway_process_is_heeded_by_another(tmp_path, tiny_member, redis_url) -> None:  # type: ignore[no-untyped-def]
    """Behind a load balancer: the second process does not spend its own three timeouts on a
    member the first has given up on (it reads the board within a second)."""
    failing = _r4_village(tiny_member, behaviour="500")
    code = f"err{uuid.uuid4().hex[:8]}"  # the board is shared by every test using this Redis
    database = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    settings = Settings(database=database, insecure_dev=True, audit=False, redis=redis_url, federation_timeout=1.0)
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        register(first, code, "village", failing.base, kind="fhir-r4")
        assert codes(search(second, identifier=IDENT)) == {code: "YL-1003"}  # second reads the (empty) board
        for _ in range(3):
            assert codes(search(first, identifier=IDENT)) == {code: "YL-1003"}
        time.sleep(1.1)  # the board is read at most once a second
        search(second, identifier=IDENT)  # starts the read in the background (and asks: two failures here)
        asked = len(failing.fhir.requests)
        assert codes(search(second, identifier=IDENT)) == {code: "YL-1004"}
        assert len(failing.fhir.requests) == asked  # not asked: first's breaker holds here too


def test_duplicates_by_prescription_number_newest_wins(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    """The county pushed C-001 (stored here) and the village holds the same number live."""
    put(gateway, patient("cp", ID_NUMBER))
    put(gateway, medication("nif", "硝苯地平缓释片"))
    put(gateway, r5_request("c-rx1", "DUP-1", "cp", "2026-10-01T08:00:00+08:00", "nif"))
    newer = r4_request("v-rx1", "DUP-1", "vp9", "2026-10-01T08:00:00+08:00", "met")
    newer["meta"] = {"lastUpdated": "2099-01-01T00:00:00Z"}
    older = r4_request("o-rx1", "DUP-1", "vp9", "2026-10-01T08:00:00+08:00", "met")
    older["meta"] = {"lastUpdated": "2000-01-01T00:00:00Z"}
    fresh = tiny_member(resources=[patient("vp9", ID_NUMBER), medication("met", "二甲双胍片"), newer])
    stale = tiny_member(resources=[patient("vp9", ID_NUMBER), medication("met", "二甲双胍片"), older])
    register(gateway, "fresh", "village", fresh.base, kind="fhir-r4")
    register(gateway, "stale", "village", stale.base, kind="fhir-r4")
    bundle = search(gateway, identifier=IDENT)
    assert [(r["id"], r["meta"]["source"]) for r in matches(bundle)] == [("v-rx1", "urn:yaolian:member:fresh")]
    assert bundle["total"] == 1


def test_cache_reuses_answers_no_cache_bypasses_and_a_member_push_invalidates(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    village = _r4_village(tiny_member)
    register(gateway, "village", "village", village.base, kind="fhir-r4")
    search(gateway, identifier=IDENT)
    asked = len(village.fhir.requests)
    assert asked == 2  # MedicationRequest and MedicationDispense
    search(gateway, identifier=IDENT)
    assert len(village.fhir.requests) == asked  # from the cache
    response = gateway.get(
        "/fhir/Patient/$prescriptions", params={"identifier": IDENT}, headers={"Cache-Control": "no-cache"}
    )
    assert response.status_code == 200 and len(village.fhir.requests) == asked + 2
    # the village pushes a change to the gateway (any commit by its client): its answers are stale
    from gateway.hooks import RequestContext
    from gateway.principal import Principal, Role

    member = Principal("c1", "village HIS", Role.MEMBER, "village")
    gateway.app.state.service.after_commit(RequestContext(base_url="http://x/fhir", principal=member))  # type: ignore[attr-defined]
    search(gateway, identifier=IDENT)
    assert len(village.fhir.requests) == asked + 4


def test_pages_across_members_never_repeat_or_skip(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    put(gateway, patient("cp", ID_NUMBER))
    put(gateway, medication("nif", "硝苯地平缓释片"))
    for n in range(7):
        put(gateway, r5_request(f"c{n}", f"C-{n}", "cp", f"2026-0{1 + n % 9}-1{n}T08:00:00+08:00", "nif"))
    servers = []
    for m in range(3):
        resources = [patient("vp9", ID_NUMBER), medication("met", "二甲双胍片")]
        # same instants across members: the tie-break keeps the order total
        resources += [
            r4_request(f"v{m}-{n}", f"V{m}-{n}", "vp9", f"2026-0{1 + n}-15T08:00:00Z", "met") for n in range(6)
        ]
        servers.append(tiny_member(resources=resources))
        register(gateway, f"v{m}", "village", servers[-1].base, kind="fhir-r4")
    whole = search(gateway, identifier=IDENT, _count="100")
    expected = [e["fullUrl"] for e in whole["entry"] if e["search"]["mode"] == "match"]
    assert len(expected) == 7 + 18 == whole["total"]
    seen: list[str] = []
    url: str | None = f"/fhir/Patient/$prescriptions?identifier={IDENT}&_count=4&_sort=-authoredon"
    while url:
        page = gateway.get(url).json()
        seen += [e["fullUrl"] for e in page["entry"] if e["search"]["mode"] == "match"]
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "127.0.0.1" not in links.get("next", "")  # opaque: no member address
        url = links.get("next", "").replace("http://testserver", "") or None
    assert seen == expected


def test_bad_page_token_and_missing_patient_are_400(gateway) -> None:  # type: ignore[no-untyped-def]
    response = gateway.get("/fhir/Patient/$prescriptions", params={"identifier": IDENT, "_page": "!!"})
    assert response.status_code == 400 and "YL-1011" in response.text
    response = gateway.get("/fhir/Patient/$prescriptions")
    assert response.status_code == 400 and "YL-1010" in response.text


def test_by_patient_id_members_are_asked_by_the_resident_id(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    village = _r4_village(tiny_member)
    register(gateway, "village", "village", village.base, kind="fhir-r4")
    local = patient("cp", ID_NUMBER)
    local["identifier"].insert(0, {"system": "urn:oid:2.16.156.10011.1.11", "value": "MZ-1"})
    put(gateway, local)
    bundle = search(gateway, patient="cp")
    assert [r["id"] for r in matches(bundle)] == ["v-rx1"]
    assert ID_NUMBER in village.fhir.requests[0]


def test_type_search_on_patient_identifier_federates_only_with_live_members(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    put(gateway, patient("cp", ID_NUMBER))
    put(gateway, medication("nif", "硝苯地平缓释片"))
    put(gateway, r5_request("c-rx1", "C-001", "cp", "2026-10-01T08:00:00+08:00", "nif"))
    params = {"patient.identifier": IDENT}
    local_only = gateway.get("/fhir/MedicationRequest", params=params).json()
    assert [e["resource"]["id"] for e in local_only["entry"]] == ["c-rx1"]  # the plain local searchset
    register(gateway, "village", "village", _r4_village(tiny_member).base, kind="fhir-r4")
    federated = gateway.get("/fhir/MedicationRequest", params=params).json()
    assert [r["id"] for r in matches(federated)] == ["v-rx1", "c-rx1"]
    dispenses = gateway.get("/fhir/MedicationDispense", params=params).json()
    assert matches(dispenses) == [] and dispenses["total"] == 0


def test_post_search_and_oldest_first_federate_too(gateway, tiny_member) -> None:  # type: ignore[no-untyped-def]
    put(gateway, patient("cp", ID_NUMBER))
    put(gateway, medication("nif", "硝苯地平缓释片"))
    put(gateway, r5_request("c-rx1", "C-001", "cp", "2026-10-01T08:00:00+08:00", "nif"))
    register(gateway, "village", "village", _r4_village(tiny_member).base, kind="fhir-r4")
    posted = gateway.post(
        "/fhir/MedicationRequest/_search",
        content=f"patient.identifier={IDENT}&_sort=authoredon",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200, posted.text
    assert [r["id"] for r in matches(posted.json())] == ["c-rx1", "v-rx1"]  # oldest first
    other_order = gateway.get("/fhir/MedicationRequest", params={"patient.identifier": IDENT, "_sort": "status"})
    assert [e["resource"]["id"] for e in other_order.json()["entry"]] == ["c-rx1"]  # stays local


def test_a_patient_without_identifiers_is_found_locally_and_the_outcome_says_why_members_were_not_asked(
    gateway, tiny_member
) -> None:  # type: ignore[no-untyped-def]
    village = _r4_village(tiny_member)
    register(gateway, "village", "village", village.base, kind="fhir-r4")
    anonymous = patient("anon", "x")
    del anonymous["identifier"]
    put(gateway, anonymous)
    put(gateway, medication("nif", "硝苯地平缓释片"))
    put(gateway, r5_request("c-rx1", "C-001", "anon", "2026-10-01T08:00:00+08:00", "nif"))
    bundle = search(gateway, patient="anon")
    assert [r["id"] for r in matches(bundle)] == ["c-rx1"] and village.fhir.requests == []
    assert [(i["severity"], i["details"]["coding"][0]["code"]) for i in outcome(bundle)] == [("information", "YL-1006")]
