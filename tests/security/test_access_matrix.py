"""The access matrix over HTTP with real tokens (issue 11, "how we will check it"): every role ×
resource type × interaction, including ``_include``, ``_revinclude``, history, paging links and
``_summary=count``, on both backends. Clients are registered through the CLI and get their
tokens over HTTP Basic.

The expectations are written here, independently of the policy's code, as a small
specification (:func:`may_read`, :data:`MAY`): allowed calls must succeed, the rest must answer
401/403/404 with no data, and every resource any response carries is checked against the
specification. The test counts attempts and leaks; the target is 0 leaks (POL-08, POL-09).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from .conftest import add_secret_client, secure_client

A, B = "XHZXWSY", "XYXRMYY"
MEMBER = "http://yaolian.org/fhir/sid/member"
ROLES = ("member-A", "member-B", "county-pharmacy", "insurance", "regulator", "admin")
TYPES = ("Patient", "Organization", "Medication", "Encounter", "MedicationRequest", "SupplyRequest")

#: The specification: what each role may do with each type at all (docs/security.md).
MAY: dict[str, dict[str, str]] = {
    "member": {"Patient": "cruds", "Organization": "rs", "Medication": "cruds", "Encounter": "cruds",
               "MedicationRequest": "cruds", "SupplyRequest": "cruds"},
    "county-pharmacy": {"Organization": "rs", "Medication": "cruds", "SupplyRequest": "cruds"},
    "insurance": {"Organization": "rs", "Medication": "rs", "MedicationRequest": "rs"},
    "regulator": {"Organization": "rs", "Medication": "rs", "SupplyRequest": "rs"},
    "admin": {t: "cruds" for t in TYPES},
}  # fmt: skip
SHARED = {"Patient", "Organization"}
RECOGNISED = {"Medication", "MedicationRequest"}


@dataclass
class Record:
    type: str
    id: str
    owner: str | None
    patient: str | None = None


@dataclass
class World:
    http: TestClient
    tokens: dict[str, dict[str, str]]
    records: dict[str, Record] = field(default_factory=dict)
    attempts: int = 0
    leaks: list[str] = field(default_factory=list)

    def create(self, who: str, name: str, body: dict[str, Any], owner: str | None, patient: str | None = None) -> None:
        answer = self.http.post(f"/fhir/{body['resourceType']}", json=body, headers=self.tokens[who])
        assert answer.status_code == 201, answer.text
        self.records[name] = Record(body["resourceType"], answer.json()["id"], owner, patient)

    def role(self, name: str) -> tuple[str, str | None]:
        return (
            ("member", name[-1] if name.startswith("member-") else None) if name.startswith("member") else (name, None)
        )


def member_code(letter: str | None) -> str | None:
    return {"A": A, "B": B}.get(letter or "")


def may_read(world: World, who: str, record: Record, patient_context: bool, by_id: bool) -> bool:
    """The specification of what a caller may see of a stored record."""
    role, letter = world.role(who)
    if "r" not in MAY[role].get(record.type, "") and "s" not in MAY[role].get(record.type, ""):
        return False
    if role != "member" or record.type in SHARED or record.owner == member_code(letter):
        return True
    if record.type not in RECOGNISED:
        return False
    if patient_context:
        return True
    if by_id and record.patient is not None:  # a patient the member also serves
        mine = member_code(letter)
        return any(
            r.owner == mine and r.patient == record.patient and r.type in ("MedicationRequest", "Encounter")
            for r in world.records.values()
        )
    return False


def token(http: TestClient, client_id: str, secret: str) -> dict[str, str]:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = http.post(
        "/auth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _ref(member: str) -> dict[str, Any]:
    return {"identifier": {"system": MEMBER, "value": member}}


@pytest.fixture(scope="module")
def world(module_database_url: str) -> Iterator[World]:
    clients = {}
    for name in ROLES:
        role, letter = ("member", name[-1]) if name.startswith("member") else (name, None)
        extra = ("--member", member_code(letter) or "") if letter else ()
        clients[name] = add_secret_client(module_database_url, role=role, extra=extra)
    for http in secure_client(module_database_url):
        w = World(http, {name: token(http, *clients[name]) for name in clients})
        create = w.create

        create("admin", "org", {"resourceType": "Organization", "name": "襄垣县人民医院"}, None)
        create("member-B", "p1", {"resourceType": "Patient", "name": [{"family": "赵"}]}, None)
        create("member-B", "p2", {"resourceType": "Patient", "name": [{"family": "钱"}]}, None)
        for letter, code in (("A", A), ("B", B)):
            who = f"member-{letter}"
            create(who, f"med{letter}", {"resourceType": "Medication", "code": {"text": f"药 {letter}"}}, code)
            for p in ("p1", "p2") if letter == "B" else ("p1",):
                ref = f"Patient/{w.records[p].id}"
                create(who, f"enc{letter}{p}", {"resourceType": "Encounter", "status": "completed",
                       "subject": {"reference": ref}, "serviceProvider": _ref(code)}, code, ref)  # fmt: skip
                create(who, f"mr{letter}{p}", {"resourceType": "MedicationRequest", "status": "active",
                       "intent": "order", "subject": {"reference": ref},
                       "encounter": {"reference": f"Encounter/{w.records[f'enc{letter}{p}'].id}"},
                       "medication": {"reference": {"reference": f"Medication/{w.records[f'med{letter}'].id}"}}},
                       code, ref)  # fmt: skip
            create(who, f"sr{letter}", {"resourceType": "SupplyRequest", "status": "active", "quantity": {"value": 10},
                   "item": {"concept": {"text": "氨氯地平"}}, "requester": _ref(code)}, code)  # fmt: skip
        yield w
        print(f"\naccess matrix: {w.attempts} attempts, {len(w.leaks)} leaks")


def shown(world: World, body: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(type, id, search mode) of every resource a response carries."""
    if body.get("resourceType") == "Bundle":
        return [
            (e["resource"]["resourceType"], e["resource"]["id"], e.get("search", {}).get("mode", ""))
            for e in body.get("entry", [])
            if "resource" in e and e["resource"]["resourceType"] != "OperationOutcome"
        ]
    if body.get("resourceType") not in (None, "OperationOutcome"):
        return [(body["resourceType"], body["id"], "read")]
    return []


def check(
    world: World, who: str, response: Any, *, allowed: bool, patient_context: bool, by_id: bool, what: str
) -> Any:
    world.attempts += 1
    body = response.json()
    if not allowed:
        assert response.status_code in (401, 403, 404), (who, what, response.status_code)
        assert body["resourceType"] == "OperationOutcome", (who, what)
    else:
        assert response.status_code == 200, (who, what, response.status_code, response.text[:300])
    by_key = {(r.type, r.id): r for r in world.records.values()}
    for rtype, rid, _mode in shown(world, body):
        record = by_key.get((rtype, rid))
        if record is not None and not may_read(world, who, record, patient_context, by_id):
            world.leaks.append(f"{who} {what}: {rtype}/{rid}")
    return body


@pytest.mark.parametrize("who", ROLES)
def test_reads_searches_and_history(world: World, who: str) -> None:
    role, _ = world.role(who)
    headers = world.tokens[who]
    http = world.http
    for name, record in world.records.items():
        allowed = may_read(world, who, record, patient_context=False, by_id=True)
        base = f"/fhir/{record.type}/{record.id}"
        for path, what in ((base, "read"), (f"{base}/_history/1", "vread"), (f"{base}/_history", "history")):
            body = check(
                world,
                who,
                http.get(path, headers=headers),
                allowed=allowed,
                patient_context=False,
                by_id=True,
                what=f"{what} {name}",
            )
            if allowed and what == "history":
                assert [e["resource"]["id"] for e in body["entry"]] == [record.id]
    for rtype in TYPES:
        may_search = "s" in MAY[role].get(rtype, "")
        body = check(
            world,
            who,
            http.get(f"/fhir/{rtype}", headers=headers),
            allowed=may_search,
            patient_context=False,
            by_id=False,
            what=f"search {rtype}",
        )
        count = check(
            world,
            who,
            http.get(f"/fhir/{rtype}", params={"_summary": "count"}, headers=headers),
            allowed=may_search,
            patient_context=False,
            by_id=False,
            what=f"count {rtype}",
        )
        if may_search:
            expected = {
                r.id for r in world.records.values() if r.type == rtype and may_read(world, who, r, False, False)
            }
            assert {rid for _, rid, _ in shown(world, body)} == expected, (who, rtype)
            assert body["total"] == count["total"] == len(expected), (who, rtype)
        type_history = http.get(f"/fhir/{rtype}/_history", headers=headers)
        world.attempts += 1
        if type_history.status_code == 200:
            for _, rid, _ in shown(world, type_history.json()):
                record = next(r for r in world.records.values() if r.id == rid)
                if not may_read(world, who, record, False, False):
                    world.leaks.append(f"{who} type history {rtype}: {rid}")
        else:
            assert type_history.status_code == 403
    system = http.get("/fhir/_history", headers=headers)
    world.attempts += 1
    assert system.status_code == (200 if role == "admin" else 403)
    assert world.leaks == []


@pytest.mark.parametrize("who", ROLES)
def test_patient_context_includes_and_paging(world: World, who: str) -> None:
    role, _ = world.role(who)
    headers, http = world.tokens[who], world.http
    may_search = "s" in MAY[role].get("MedicationRequest", "")
    for p in ("p1", "p2"):
        patient = f"Patient/{world.records[p].id}"
        params = [
            ("subject", patient),
            ("_include", "MedicationRequest:medication"),
            ("_include", "MedicationRequest:encounter"),
        ]
        body = check(
            world,
            who,
            http.get("/fhir/MedicationRequest", params=params, headers=headers),
            allowed=may_search,
            patient_context=True,
            by_id=False,
            what=f"prescriptions of {p}",
        )
        if may_search:
            expected = {r.id for r in world.records.values() if r.type == "MedicationRequest" and r.patient == patient}
            assert {rid for t, rid, m in shown(world, body) if m == "match"} == expected, (who, p)
    may_patients = "s" in MAY[role].get("Patient", "")
    revinclude = [("_revinclude", "MedicationRequest:subject"), ("_revinclude", "Encounter:subject")]
    for params, in_context in (([("_id", world.records["p2"].id), *revinclude], True), (revinclude, False)):
        check(
            world,
            who,
            http.get("/fhir/Patient", params=params, headers=headers),
            allowed=may_patients,
            patient_context=in_context,
            by_id=False,
            what=f"revinclude {params[0][0]}",
        )
    if may_search:  # paging: every page restricted, links never point past what the caller may see
        seen: set[str] = set()
        url: str | None = "/fhir/MedicationRequest?_count=1"
        while url:
            body = check(
                world,
                who,
                http.get(url, headers=headers),
                allowed=True,
                patient_context=False,
                by_id=False,
                what="page",
            )
            seen |= {rid for _, rid, _ in shown(world, body)}
            nxt = [link["url"] for link in body.get("link", []) if link["relation"] == "next"]
            url = (urlsplit(nxt[0]).path + "?" + urlsplit(nxt[0]).query) if nxt else None
        assert len(seen) == body["total"]
    assert world.leaks == []


@pytest.mark.parametrize("who", ROLES)
def test_writes(world: World, who: str) -> None:
    role, letter = world.role(who)
    headers, http = world.tokens[who], world.http
    own = member_code(letter) or B
    bodies = {
        "Patient": {"resourceType": "Patient", "name": [{"family": "孙"}]},
        "Organization": {"resourceType": "Organization", "name": "乡镇卫生院"},
        "Medication": {"resourceType": "Medication", "code": {"text": "药"}},
        "Encounter": {"resourceType": "Encounter", "status": "planned", "serviceProvider": _ref(own)},
        "MedicationRequest": {"resourceType": "MedicationRequest", "status": "draft", "intent": "proposal",
                              "subject": {"reference": f"Patient/{world.records['p1'].id}"},
                              "medication": {"concept": {"text": "药"}}},
        "SupplyRequest": {"resourceType": "SupplyRequest", "status": "draft", "quantity": {"value": 1},
                          "item": {"concept": {"text": "药"}}, "requester": _ref(own)},
    }  # fmt: skip
    for rtype, body in bodies.items():
        allowed = "c" in MAY[role].get(rtype, "")
        created = http.post(f"/fhir/{rtype}", json=body, headers=headers)
        world.attempts += 1
        assert created.status_code == (201 if allowed else 403), (who, rtype, created.text[:200])
        if allowed:
            rid = created.json()["id"]
            gone = http.delete(f"/fhir/{rtype}/{rid}", headers=headers)
            world.attempts += 1
            assert gone.status_code == (204 if "d" in MAY[role][rtype] else 403), (who, rtype)
    if role == "member":  # another member's records: 403 where it may see them, 404 where it may not
        other = "B" if letter == "A" else "A"
        for name, record in world.records.items():
            if record.owner != member_code(other):
                continue
            answer = http.delete(f"/fhir/{record.type}/{record.id}", headers=headers)
            world.attempts += 1
            visible = may_read(world, who, record, patient_context=False, by_id=True)
            assert answer.status_code == (403 if visible else 404), (who, name, answer.status_code)
    assert world.leaks == []


def test_no_token_no_data(world: World) -> None:
    for record in world.records.values():
        for path in (f"/fhir/{record.type}/{record.id}", f"/fhir/{record.type}", f"/fhir/{record.type}/_history"):
            answer = world.http.get(path)
            world.attempts += 1
            assert answer.status_code == 401 and answer.json()["resourceType"] == "OperationOutcome"
    assert world.leaks == [] and world.attempts > 300
