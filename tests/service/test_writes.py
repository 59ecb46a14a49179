"""The write path below HTTP: hooks at their pointcuts (stopping, rolling back, notified after
commit), validation modes, and the server-owned meta — on both store backends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.errors import Forbidden, Issue, Unprocessable
from gateway.fhir.json_text import ResourceText
from gateway.hooks import Hooks, Pointcut, RequestContext
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.base import ChangeEvent
from gateway.store.sql import SqlStore

CTX = RequestContext(base_url="http://gw.example/fhir", interaction="create", resource_type="Patient")


@pytest.fixture
def store(sql_store: SqlStore) -> SqlStore:
    return sql_store


def service(store: SqlStore, hooks: Hooks | None = None, mode: str = "lenient", validator: Any = None) -> FhirService:
    return FhirService(store, Settings(database="sqlite://", validation_mode=mode), hooks, validator)  # type: ignore[arg-type]


def patient(**members: Any) -> ResourceText:
    return ResourceText.parse(json.dumps({"resourceType": "Patient", **members}))


def create(svc: FhirService, body: ResourceText) -> Any:
    with svc.store.transaction() as tx:
        result = svc.writer.create(tx, CTX, "Patient", body)
    svc.after_commit(CTX)
    return result


def pending_events(store: SqlStore) -> list[tuple[str, str, str, int]]:
    events: list[ChangeEvent] = []
    store.drain_outbox(events.extend, 100)
    return [(e.event, e.resource_type, e.resource_id, e.version) for e in events]


def history_total(svc: FhirService) -> int:
    return svc.store.history(None, None, since=None, at=None, count=0, offset=0)[1]


def test_before_write_hook_sees_the_write_and_can_stop_it(store: SqlStore) -> None:
    seen: list[tuple[Any, ...]] = []

    def guard(ctx: RequestContext, rtype: str, data: dict[str, Any], existing: Any) -> None:
        seen.append((ctx.interaction, rtype, data.get("gender"), existing))
        if data.get("gender") == "unknown":
            raise Forbidden("YL-0205", what="writing patients of unknown gender")

    hooks = Hooks()
    hooks.register(Pointcut.BEFORE_WRITE, guard)
    svc = service(store, hooks)
    created = create(svc, patient(gender="female"))
    assert seen == [("create", "Patient", "female", None)]
    with pytest.raises(Forbidden):
        create(svc, patient(gender="unknown"))
    assert history_total(svc) == 1
    assert pending_events(store) == [("create", "Patient", created.stored.res_id, 1)]


def test_after_write_hook_failure_rolls_the_write_back(store: SqlStore) -> None:
    def audit(_ctx: RequestContext, tx: Any, stored: Any) -> None:
        assert tx.current("Patient", stored.res_id) is not None  # the row exists inside the transaction
        raise RuntimeError("audit store down")

    hooks = Hooks()
    hooks.register(Pointcut.AFTER_WRITE_IN_TX, audit)
    svc = service(store, hooks)
    with pytest.raises(RuntimeError):
        create(svc, patient(gender="female"))
    assert history_total(svc) == 0
    assert pending_events(store) == []


def test_after_commit_hook_runs_once_per_committed_request(store: SqlStore) -> None:
    calls: list[str] = []
    hooks = Hooks()
    hooks.register(Pointcut.AFTER_COMMIT, lambda ctx, _stored: calls.append(ctx.interaction))
    svc = service(store, hooks)
    create(svc, patient())
    assert calls == ["create"]


def test_validation_modes(store: SqlStore) -> None:
    finding = Issue(
        "error",
        "business-rule",
        en="no prescription category",
        zh="缺少处方类别",
        expression=("Patient",),
        error_code="YL-3050",
    )

    def validator(_data: dict[str, Any], _profiles: Any = None) -> list[Issue]:
        return [finding]

    lenient = create(service(store, mode="lenient", validator=validator), patient())
    assert lenient.issues == [finding]
    assert store.read("Patient", lenient.stored.res_id) is not None
    with pytest.raises(Unprocessable) as caught:
        create(service(store, mode="strict", validator=validator), patient())
    assert caught.value.issues == [finding]
    assert history_total(service(store)) == 1


def test_structure_errors_are_refused_in_every_mode(store: SqlStore) -> None:
    for mode in ("lenient", "strict", "off"):
        with pytest.raises(Unprocessable):
            create(service(store, mode=mode), patient(colour="red"))
    assert history_total(service(store)) == 0


def test_meta_is_server_owned_and_the_rest_of_meta_is_kept(store: SqlStore) -> None:
    svc = service(store)
    body = patient(
        meta={"versionId": "9", "lastUpdated": "1999-01-01T00:00:00Z", "source": "urn:his", "tag": [{"code": "a"}]}
    )
    first = create(svc, body).stored
    data = json.loads(first.body)
    assert data["meta"] == {
        "versionId": "1",
        "lastUpdated": first.last_updated,
        "source": "urn:his",
        "tag": [{"code": "a"}],
    }
    assert list(data)[:3] == ["resourceType", "id", "meta"]
    with store.transaction() as tx:
        second = svc.writer.update(tx, CTX, "Patient", first.res_id, patient(id=first.res_id)).stored
    assert json.loads(second.body)["meta"]["versionId"] == "2"
    assert second.last_updated > first.last_updated
