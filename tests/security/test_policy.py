"""The access policy on the service (both backends): roles × resource types × interactions,
member isolation with mutual recognition in the context of a patient (POL-08, POL-09), and
nothing leaked through includes, counts, paging links, history, conditional writes or reads.

Every call runs as a principal on the service's own entry points (the ones REST, Bundles and
MLLP use); ``Seen`` counts the attempts and every resource a caller got that the scenario says
it may not see (a leak).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from gateway.errors import FhirError, Forbidden, NotFound
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.principal import Principal, Role, parse_scopes
from gateway.security.policy import MEMBER_SYSTEM, Policy, owner_tag
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.sql import SqlStore

A, B = "XHZXWSY", "XYXRMYY"
ALL = parse_scopes("system/*.cruds")


def who(role: Role, member: str | None = None, scopes: str = "system/*.cruds") -> Principal:
    return Principal(f"{role.value}-{member}", f"{role.value} {member}", role, member, parse_scopes(scopes))


MEMBER_A, MEMBER_B = who(Role.MEMBER, A), who(Role.MEMBER, B)
INSURANCE, REGULATOR = who(Role.INSURANCE), who(Role.REGULATOR)
PHARMACY, ADMIN = who(Role.COUNTY_PHARMACY), who(Role.ADMIN)


def ctx(principal: Principal | None, interaction: str = "") -> RequestContext:
    return RequestContext(base_url="http://gw/fhir", interaction=interaction, principal=principal)


def member_ref(code: str) -> dict[str, Any]:
    return {"identifier": {"system": MEMBER_SYSTEM, "value": code}}


@dataclass
class Alliance:
    svc: FhirService
    ids: dict[str, str] = field(default_factory=dict)

    def create(self, principal: Principal, name: str, data: dict[str, Any]) -> str:
        body = ResourceText.parse(orjson.dumps(data))
        c = ctx(principal, "create")
        result = self.svc.write(c, lambda tx: self.svc.writer.create(tx, c, data["resourceType"], body))
        self.ids[name] = result.stored.res_id
        return result.stored.res_id

    def ref(self, name: str) -> dict[str, str]:
        kind = {"p": "Patient", "e": "Encounter", "mr": "MedicationRequest", "med": "Medication"}
        prefix = next(k for k in sorted(kind, key=len, reverse=True) if name.startswith(k))
        return {"reference": f"{kind[prefix]}/{self.ids[name]}"}

    def search(self, principal: Principal, resource_type: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        return orjson.loads(self.svc.search(resource_type, params, ctx(principal, "search-type")))  # type: ignore[no-any-return]


def prescription(alliance: Alliance, member: str, patient: str, medication: str, number: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "identifier": [{"system": f"http://yaolian.org/fhir/sid/{member}/placer-order", "value": number}],
        "subject": alliance.ref(patient),
        "medication": {"reference": alliance.ref(medication)},
    }


def supply_request(member: str) -> dict[str, Any]:
    return {
        "resourceType": "SupplyRequest",
        "status": "active",
        "item": {"concept": {"text": "amlodipine 5 mg"}},
        "quantity": {"value": 5},
        "requester": member_ref(member),
    }


@pytest.fixture
def alliance(sql_store: SqlStore) -> Iterator[Alliance]:
    """Patient p1 is served by members A and B, p2 by B only."""
    svc = FhirService(sql_store, Settings(database="sqlite://", validation_mode="off"))
    Policy(sql_store).install(svc)
    world = Alliance(svc)
    for name in ("p1", "p2"):
        world.create(MEMBER_B, name, {"resourceType": "Patient", "name": [{"family": name}]})
    for member, principal in ((A, MEMBER_A), (B, MEMBER_B)):
        world.create(principal, f"med{member}", {"resourceType": "Medication", "code": {"text": f"drug of {member}"}})
        world.create(
            principal,
            f"e{member}",
            {
                "resourceType": "Encounter",
                "status": "completed",
                "subject": world.ref("p1"),
                "serviceProvider": member_ref(member),
            },
        )
        world.create(principal, f"mr{member}1", prescription(world, member, "p1", f"med{member}", f"{member}-1"))
    world.create(MEMBER_B, "mrB2", prescription(world, B, "p2", f"med{B}", f"{B}-2"))
    world.create(
        MEMBER_B,
        "eB2",
        {
            "resourceType": "Encounter",
            "status": "completed",
            "subject": world.ref("p2"),
            "serviceProvider": member_ref(B),
        },
    )
    yield world


def ids_of(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if "resource" in e
        and e["resource"].get("resourceType") != "OperationOutcome"
        and (mode is None or e.get("search", {}).get("mode") == mode)
    }


def test_writes_are_stamped_with_their_owner_and_claims_must_be_the_writers_own(alliance: Alliance) -> None:
    """POL-09: every member's records are its own, and say so."""
    stored = alliance.svc.store.read("MedicationRequest", alliance.ids[f"mr{A}1"])
    assert stored is not None and owner_tag(orjson.loads(stored.body or b"{}")) == A
    patient = alliance.svc.store.read("Patient", alliance.ids["p1"])
    assert patient is not None and owner_tag(orjson.loads(patient.body or b"{}")) is None  # shared master data
    with pytest.raises(Forbidden) as refused:
        alliance.create(
            MEMBER_A, "eX", {"resourceType": "Encounter", "status": "completed", "serviceProvider": member_ref(B)}
        )
    assert refused.value.issues[0].error_code == "YL-0271" and refused.value.issues[0].expression == (
        "Encounter.serviceProvider",
    )
    with pytest.raises(Forbidden):  # an order numbered in another member's namespace
        alliance.create(MEMBER_A, "mrX", prescription(alliance, B, "p1", f"med{A}", "X-1"))


def test_a_member_lists_only_its_own_without_a_patient_and_counts_only_those(alliance: Alliance) -> None:
    """POL-08: listing another member's data without a patient returns only its own."""
    found = alliance.search(MEMBER_A, "MedicationRequest", [])
    assert ids_of(found) == {alliance.ids[f"mr{A}1"]} and found["total"] == 1
    count = alliance.search(MEMBER_A, "MedicationRequest", [("_summary", "count")])
    assert count["total"] == 1 and ids_of(count) == set()
    encounters = alliance.search(MEMBER_A, "Encounter", [("subject", f"Patient/{alliance.ids['p1']}")])
    assert ids_of(encounters) == {alliance.ids[f"e{A}"]}  # visits are not mutually recognised


def test_in_the_context_of_a_patient_a_member_sees_every_members_prescriptions(alliance: Alliance) -> None:
    """POL-08/POL-09: 处方实时查阅、互认共享 - a search naming the patient (by reference or by a
    chain on the identifier) finds the other members' prescriptions and their medications."""
    p1, p2 = f"Patient/{alliance.ids['p1']}", f"Patient/{alliance.ids['p2']}"
    both = alliance.search(
        MEMBER_A, "MedicationRequest", [("subject", p1), ("_include", "MedicationRequest:medication")]
    )
    assert ids_of(both, "match") == {alliance.ids[f"mr{A}1"], alliance.ids[f"mr{B}1"]}
    assert ids_of(both, "include") == {alliance.ids[f"med{A}"], alliance.ids[f"med{B}"]}
    assert ids_of(alliance.search(MEMBER_A, "MedicationRequest", [("patient", p2)])) == {alliance.ids["mrB2"]}
    encounters = alliance.search(
        MEMBER_A, "MedicationRequest", [("subject", p1), ("_include", "MedicationRequest:encounter")]
    )
    assert ids_of(encounters, "include") == set()
    revinclude = alliance.search(
        MEMBER_A,
        "Patient",
        [
            ("_id", alliance.ids["p1"]),
            ("_revinclude", "MedicationRequest:subject"),
            ("_revinclude", "Encounter:subject"),
        ],
    )
    assert ids_of(revinclude, "include") == {alliance.ids[f"mr{A}1"], alliance.ids[f"mr{B}1"], alliance.ids[f"e{A}"]}
    everyone = alliance.search(MEMBER_A, "Patient", [("_revinclude", "MedicationRequest:subject")])
    assert ids_of(everyone, "include") == {alliance.ids[f"mr{A}1"]}  # no patient named: its own only


def test_a_read_by_id_answers_404_for_what_the_member_may_not_see(alliance: Alliance) -> None:
    """A member reads another member's prescription of a patient it serves; anything else of
    another member is the 404 of a record that does not exist."""
    svc, c = alliance.svc, ctx(MEMBER_A, "read")
    assert svc.read("MedicationRequest", alliance.ids[f"mr{B}1"], c).res_id == alliance.ids[f"mr{B}1"]
    for resource_type, name in (("MedicationRequest", "mrB2"), ("Encounter", f"e{B}"), ("Medication", f"med{B}")):
        with pytest.raises(NotFound) as hidden:
            svc.read(resource_type, alliance.ids[name], c)
        assert hidden.value.issues[0].error_code == "YL-0201"
        with pytest.raises(NotFound):
            svc.vread(resource_type, alliance.ids[name], "1", c)
    with pytest.raises(NotFound):
        svc.history("MedicationRequest", alliance.ids["mrB2"], [], ctx(MEMBER_A, "history-instance"))
    with pytest.raises(Forbidden):
        svc.history("MedicationRequest", None, [], ctx(MEMBER_A, "history-type"))
    with pytest.raises(Forbidden):
        svc.history(None, None, [], ctx(MEMBER_A, "history-system"))


def test_paging_links_restrict_every_page(alliance: Alliance) -> None:
    for n in range(3):
        alliance.create(MEMBER_A, f"mrA-extra{n}", prescription(alliance, A, "p1", f"med{A}", f"{A}-x{n}"))
    seen: set[str] = set()
    params: list[tuple[str, str]] = [("_count", "2")]
    while True:
        page = alliance.search(MEMBER_A, "MedicationRequest", params)
        seen |= ids_of(page)
        assert page["total"] == 4
        following = [link["url"] for link in page.get("link", []) if link["relation"] == "next"]
        if not following:
            break
        params = parse_qsl(urlsplit(following[0]).query)
    assert len(seen) == 4 and alliance.ids[f"mr{B}1"] not in seen


def test_writes_to_another_members_records_are_refused_without_telling_what_exists(alliance: Alliance) -> None:
    svc = alliance.svc
    visible, unseen = alliance.ids[f"mr{B}1"], alliance.ids["mrB2"]
    for rid, refusal in ((visible, Forbidden), (unseen, NotFound)):
        c = ctx(MEMBER_A, "delete")
        with pytest.raises(refusal):
            svc.write(c, lambda tx, rid=rid, c=c: svc.writer.delete(tx, c, "MedicationRequest", rid))
        stored = svc.store.read("MedicationRequest", rid)
        assert stored is not None and not stored.deleted
    # a conditional create never matches what the member may not see: it creates its own
    c = ctx(MEMBER_A, "create")
    criteria = f"identifier=http://yaolian.org/fhir/sid/{B}/placer-order|{B}-2"
    body = ResourceText.parse(orjson.dumps(prescription(alliance, A, "p2", f"med{A}", "A-9")))
    result = svc.write(c, lambda tx: svc.writer.create(tx, c, "MedicationRequest", body, if_none_exist=criteria))
    assert result.changed and result.stored.res_id != unseen


@pytest.mark.parametrize(
    ("principal", "resource_type", "interaction", "allowed"),
    [
        (INSURANCE, "MedicationRequest", "search", True),
        (INSURANCE, "Medication", "search", True),
        (INSURANCE, "Patient", "search", False),
        (INSURANCE, "MedicationRequest", "create", False),
        (REGULATOR, "MedicationRequest", "search", False),
        (REGULATOR, "Patient", "search", False),
        (REGULATOR, "Encounter", "search", False),
        (REGULATOR, "Medication", "search", True),
        (REGULATOR, "Organization", "search", True),
        (PHARMACY, "MedicationRequest", "search", False),
        (PHARMACY, "SupplyRequest", "search", True),
        (PHARMACY, "SupplyRequest", "create", True),
        (ADMIN, "Encounter", "search", True),
        (MEMBER_A, "Organization", "create", False),
        (who(Role.MEMBER, A, "system/Patient.rs"), "MedicationRequest", "search", False),
        (who(Role.MEMBER, A, "system/MedicationRequest.r"), "MedicationRequest", "search", False),
        (who(Role.INSURANCE, None, "system/*.cruds"), "MedicationRequest", "delete", False),
    ],
)
def test_roles_and_scopes(
    alliance: Alliance, principal: Principal, resource_type: str, interaction: str, allowed: bool
) -> None:
    """Scopes intersected with the role (docs/security.md): a refused call answers 403 YL-0270."""
    svc = alliance.svc
    try:
        if interaction == "search":
            found = alliance.search(principal, resource_type, [])
            if principal.role in (Role.INSURANCE, Role.ADMIN) and resource_type == "MedicationRequest":
                assert len(ids_of(found)) == 3  # every member's
        else:
            data = {
                "MedicationRequest": prescription(alliance, A, "p1", f"med{A}", "A-7"),
                "SupplyRequest": supply_request(B),
                "Organization": {"resourceType": "Organization", "name": "another clinic"},
            }[resource_type]
            body = ResourceText.parse(orjson.dumps(data))
            c = ctx(principal, interaction)
            if interaction == "create":
                svc.write(c, lambda tx: svc.writer.create(tx, c, resource_type, body))
            else:
                rid = alliance.ids[f"mr{A}1"]
                svc.write(c, lambda tx: svc.writer.delete(tx, c, resource_type, rid))
        outcome = True
    except Forbidden as exc:
        assert exc.issues[0].error_code == "YL-0270"
        outcome = False
    assert outcome is allowed


def test_the_county_pharmacy_writes_supply_records_for_the_member_they_name(alliance: Alliance) -> None:
    """POL-11: the county aggregates and distributes for every member."""
    rid = alliance.create(
        PHARMACY,
        "sr",
        supply_request(B),
    )
    stored = alliance.svc.store.read("SupplyRequest", rid)
    assert stored is not None and owner_tag(orjson.loads(stored.body or b"{}")) == B
    assert ids_of(alliance.search(MEMBER_B, "SupplyRequest", [])) == {rid}
    assert ids_of(alliance.search(MEMBER_A, "SupplyRequest", [])) == set()


def test_nobody_authenticated_is_refused(alliance: Alliance) -> None:
    with pytest.raises(FhirError) as refused:
        alliance.search(None, "Patient", [])  # type: ignore[arg-type]
    assert refused.value.status == 403
