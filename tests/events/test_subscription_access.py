"""A subscription carries only what its owner may read (POL-08 member isolation, POL-18 the
insurance feed): the policy's read hooks decide, asked with the owner's principal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.errors import FhirError
from gateway.events.dispatcher import Dispatcher
from gateway.events.subscriptions import SubscriptionRules
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.principal import Principal, Role, parse_scopes
from gateway.security.policy import Policy
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.base import ClientRecord
from gateway.store.sql import open_store
from tests.events.conftest import prescription, subscription

ALL = "system/*.cruds"


def _principal(client_id: str, role: Role, member: str | None = None) -> Principal:
    return Principal(client_id, client_id, role, member, parse_scopes(ALL))


A = _principal("clinic-a", Role.MEMBER, "MA")
B = _principal("clinic-b", Role.MEMBER, "MB")
INSURER = _principal("insurer", Role.INSURANCE)
REGULATOR = _principal("regulator", Role.REGULATOR)


@pytest.fixture
def service(database_url: str) -> Iterator[FhirService]:
    store = open_store(database_url)
    store.create_schema()
    for p in (A, B, INSURER, REGULATOR):
        store.client_add(
            ClientRecord(
                p.client_id,
                p.name,
                p.role.value,
                p.member,
                ALL,
                "client_secret_basic",
                None,
                "x",
                "2026-01-01T00:00:00Z",
            )
        )
    svc = FhirService(store, Settings(database=database_url, insecure_dev=False))
    Policy(store).install(svc)
    SubscriptionRules().install(svc)
    yield svc
    store.dispose()


def _ctx(p: Principal, interaction: str = "create") -> RequestContext:
    return RequestContext(base_url="http://test/fhir", interaction=interaction, principal=p)


def _create(svc: FhirService, p: Principal, data: dict[str, Any]) -> str:
    def action(tx: Any) -> str:
        body = ResourceText.parse(orjson.dumps(data))
        return svc.writer.create(tx, _ctx(p), data["resourceType"], body).stored.res_id

    return svc.write(_ctx(p), action)


def test_each_subscription_gets_only_what_its_owner_may_read(service: FhirService) -> None:
    subs = {
        p.client_id: _create(service, p, subscription("http://127.0.0.1:9/none")) for p in (A, B, INSURER, REGULATOR)
    }
    of_a = [_create(service, A, prescription(patient="pa")) for _ in range(3)]
    of_b = [_create(service, B, prescription(patient="pb")) for _ in range(2)]
    dispatcher = Dispatcher(service, Settings(database="sqlite://", subscriptions=True), base_url="http://test/fhir")
    while dispatcher.fan_out_once():
        pass
    store = service.store

    def delivered_to(client: str) -> list[str]:
        return [d.res_id for d in store.deliveries_list(subs[client], None, 100)]

    assert delivered_to("clinic-a") == of_a  # POL-08: not the other member's (no shared patient)
    assert delivered_to("clinic-b") == of_b
    assert delivered_to("insurer") == of_a + of_b  # POL-18: the insurer reads every prescription
    assert delivered_to("regulator") == []  # a regulator may not read prescriptions at all
    assert store.outbox_pending(100) == []


def test_a_client_sees_and_changes_only_its_own_subscriptions(service: FhirService) -> None:
    mine = _create(service, A, subscription("http://127.0.0.1:9/a"))
    theirs = _create(service, B, subscription("http://127.0.0.1:9/b"))
    found = service.find("Subscription", [], _ctx(A, "search-type"))
    assert [s.res_id for s in found] == [mine]
    with pytest.raises(FhirError) as hidden:
        service.read("Subscription", theirs, _ctx(A, "read"))
    assert hidden.value.status == 404
    assert service.read("Subscription", theirs, _ctx(_principal("admin", Role.ADMIN), "read"))
    forged = subscription("http://127.0.0.1:9/a")
    forged["meta"] = {"tag": [{"system": "http://yaolian.org/fhir/sid/subscription-owner", "code": "clinic-b"}]}
    stamped = service.read("Subscription", _create(service, A, forged), _ctx(A, "read"))
    tags = orjson.loads(stamped.body or b"{}")["meta"]["tag"]
    assert {"system": "http://yaolian.org/fhir/sid/subscription-owner", "code": "clinic-a"} in tags
    assert {"system": "http://yaolian.org/fhir/sid/subscription-owner", "code": "clinic-b"} not in tags
