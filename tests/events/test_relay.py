"""The outbox relay publishes committed changes (and only those) to real Redis Streams."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis

from gateway.errors import FhirError
from gateway.events.relay import OutboxRelay
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.sql import open_store

CTX = RequestContext(base_url="http://test/fhir")


def _patient(family: str) -> ResourceText:
    return ResourceText.parse(orjson.dumps({"resourceType": "Patient", "name": [{"family": family}]}))


@pytest.fixture
def service(database_url: str) -> Iterator[FhirService]:
    store = open_store(database_url)
    store.create_schema()
    yield FhirService(store, Settings(database=database_url))
    store.dispose()


def test_committed_writes_reach_the_stream_once(service: FhirService, redis_url: str) -> None:
    stream = f"yaolian:test:{uuid.uuid4().hex}"
    relay = OutboxRelay(service.store, redis_url, stream=stream)  # type: ignore[arg-type]
    with service.store.transaction() as tx:
        created = service.writer.create(tx, CTX, "Patient", _patient("王"))
    with service.store.transaction() as tx:
        service.writer.delete(tx, CTX, "Patient", created.stored.res_id)
    with pytest.raises(FhirError), service.store.transaction() as tx:
        service.writer.create(tx, CTX, "Patient", _patient("李"))
        service.writer.create(tx, CTX, "Patient", ResourceText.parse(b'{"resourceType":"Patient","gender":7}'))

    assert relay.drain() == 2
    assert relay.drain() == 0  # delivered rows are not sent again
    relay.close()
    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(stream)
        fields = [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]
        assert [(f["event"], f["resourceType"], f["id"], f["versionId"]) for f in fields] == [
            ("create", "Patient", created.stored.res_id, "1"),
            ("delete", "Patient", created.stored.res_id, "2"),
        ]
    finally:
        client.delete(stream)
        client.close()


def test_in_process_listeners_without_redis(service: FhirService) -> None:
    relay = OutboxRelay(service.store)  # type: ignore[arg-type]
    seen: list[str] = []
    relay.subscribe(lambda ev: seen.append(f"{ev.event}:{ev.resource_type}"))
    relay.subscribe(lambda ev: (_ for _ in ()).throw(RuntimeError("a broken listener")))
    with service.store.transaction() as tx:
        service.writer.create(tx, CTX, "Patient", _patient("张"))
    assert relay.drain() == 1
    assert seen == ["create:Patient"]
