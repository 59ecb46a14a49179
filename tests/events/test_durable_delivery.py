"""Durable delivery with the real Redis and real HTTP receivers: data loss in Redis, a receiver
that answers 500 for a while, dead letters, and two dispatchers on one database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
import redis

from gateway.events.dispatcher import GROUP, Dispatcher
from gateway.events.relay import OutboxRelay
from gateway.events.subscriptions import SubscriptionRules
from gateway.fhir.json_text import ResourceText
from gateway.hooks import Pointcut, RequestContext
from gateway.principal import INSECURE_DEV
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.sql import open_store
from tests.events.conftest import Receiver, check_notification, prescription, subscription

CTX = RequestContext(base_url="http://test/fhir", principal=INSECURE_DEV)


def _settings(database_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database": database_url,
        "delivery_poll_seconds": 0.1,
        "delivery_backoff_seconds": 0.1,
        "delivery_backoff_max_seconds": 0.3,
        "delivery_lease_seconds": 2.0,
        "outbox_republish_seconds": 2.0,
        **extra,
    }
    return Settings(**values)


@contextmanager
def gateway(settings: Settings, stream: str | None = None) -> Iterator[tuple[FhirService, Dispatcher, OutboxRelay]]:
    """A service with the subscription rules, its relay and dispatcher running (as the app runs them)."""
    store = open_store(settings.database)
    store.create_schema()
    service = FhirService(store, settings)
    SubscriptionRules().install(service)
    relay = OutboxRelay(
        store, settings.redis, stream=stream or "unused", republish_after=settings.outbox_republish_seconds
    )
    dispatcher = Dispatcher(service, settings, relay=relay, stream=stream or "unused", base_url="http://test/fhir")
    service.hooks.register(Pointcut.AFTER_COMMIT, relay.notify)
    service.hooks.register(Pointcut.AFTER_COMMIT, dispatcher.notify)
    relay.start(interval=0.1)
    dispatcher.start()
    try:
        yield service, dispatcher, relay
    finally:
        dispatcher.stop()
        relay.stop()
        store.dispose()


def write(service: FhirService, data: dict[str, Any]) -> str:
    def action(tx: Any) -> str:
        return service.writer.create(
            tx, CTX, data["resourceType"], ResourceText.parse(orjson.dumps(data))
        ).stored.res_id

    return service.write(CTX, action)


def assert_each_event_once_per_number(receiver: Receiver, n: int) -> None:
    """Every eventNumber 1..n arrived; a number seen twice always carried the same resource."""
    by_number: dict[int, set[str]] = {}
    for bundle in receiver.bundles("event-notification"):
        assert check_notification(bundle) == []
        events = bundle["entry"][0]["resource"]["notificationEvent"]
        for event in events:
            by_number.setdefault(int(event["eventNumber"]), set()).add(event["focus"]["reference"])
    assert sorted(by_number) == list(range(1, n + 1))
    assert all(len(focus) == 1 for focus in by_number.values())


def test_redis_losing_its_data_mid_stream_loses_no_event(database_url: str, redis_url: str, receiver: Receiver) -> None:
    """Issue 12 point 9: the stream (our own key, with its consumer group) is deleted twice while
    writes go on - what a Redis restarted without persistence looks like to us. The outbox keeps
    every row pending until its deliveries are durable, so the relay publishes them again."""
    stream = f"yaolian:test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_url)
    try:
        with gateway(_settings(database_url, redis=redis_url), stream) as (service, _, _):
            write(service, subscription(receiver.url))
            n = 30
            for i in range(n):
                write(service, prescription(patient=f"p{i}"))
                if i in (9, 19):
                    client.delete(stream)  # all entries and the consumer group gone
            assert receiver.wait_for(lambda: len(set(receiver.event_numbers())) >= n, timeout=60)
            assert_each_event_once_per_number(receiver, n)
            pending = client.xpending(stream, GROUP)
            assert receiver.wait_for(lambda: client.xpending(stream, GROUP)["pending"] == 0, timeout=10), pending
            assert service.store.outbox_pending(100) == []
    finally:
        client.delete(stream)
        client.close()


def test_pending_entries_of_a_dead_consumer_are_claimed(database_url: str, redis_url: str, receiver: Receiver) -> None:
    """A consumer that read entries and died before XACK: another claims them (XAUTOCLAIM)."""
    stream = f"yaolian:test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_url)
    settings = _settings(database_url, redis=redis_url, outbox_republish_seconds=3600)
    try:
        store = open_store(database_url)
        store.create_schema()
        service = FhirService(store, settings)
        SubscriptionRules().install(service)
        relay = OutboxRelay(store, redis_url, stream=stream, republish_after=3600)
        write(service, subscription(receiver.url))
        for i in range(5):
            write(service, prescription(patient=f"p{i}"))
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        assert relay.drain() == 6
        read = client.xreadgroup(GROUP, "crashed-consumer", {stream: ">"}, count=100)
        assert len(read[0][1]) == 6  # read, never acknowledged: the consumer "crashed"
        relay.close()
        store.dispose()
        with gateway(settings, stream) as (_service2, dispatcher, _):
            dispatcher._last_claim = 0.0
            assert receiver.wait_for(lambda: len(set(receiver.event_numbers())) >= 5, timeout=30)
            assert_each_event_once_per_number(receiver, 5)
            # the dead consumer's entries are claimed once idle for a lease, then acknowledged
            assert receiver.wait_for(lambda: client.xpending(stream, GROUP)["pending"] == 0, timeout=20)
            consumers = {c["name"]: c["pending"] for c in client.xinfo_consumers(stream, GROUP)}
            assert consumers[b"crashed-consumer" if b"crashed-consumer" in consumers else "crashed-consumer"] == 0
    finally:
        client.delete(stream)
        client.close()


def test_a_receiver_failing_past_the_budget_leaves_dead_letters_that_retry_resends(
    database_url: str, receiver: Receiver
) -> None:
    settings = _settings(database_url, delivery_retry_hours=1.0 / 3600)  # a one-second budget
    with gateway(settings) as (service, _dispatcher, _):
        sub_id = write(service, subscription(receiver.url))
        assert receiver.wait_for(lambda: len(receiver.bundles("handshake")) == 1)
        receiver.fail_with = 503
        for i in range(3):
            write(service, prescription(patient=f"p{i}"))
        store = service.store
        assert receiver.wait_for(lambda: len(store.deliveries_list(sub_id, "dead", 10)) == 3, timeout=30)
        dead = store.deliveries_list(sub_id, "dead", 10)
        assert [d.event_number for d in dead] == [1, 2, 3]
        assert all(d.attempts >= 2 and "503" in (d.last_error or "") for d in dead)
        receiver.fail_with = None
        assert store.deliveries_retry(sub_id, [2], time.time()) == 1
        assert receiver.wait_for(lambda: receiver.event_numbers() == [2])
        assert [d.event_number for d in store.deliveries_list(sub_id, "dead", 10)] == [1, 3]


def test_two_dispatchers_on_one_database_never_send_an_event_twice(database_url: str, receiver: Receiver) -> None:
    """Two gateway processes (here two dispatchers, each with its own engine) share the work:
    every event arrives exactly once when nothing fails."""
    if database_url.startswith("sqlite"):
        pytest.skip("several processes on one database is the PostgreSQL deployment")
    settings = _settings(database_url)
    receivers = [receiver, Receiver(), Receiver()]
    try:
        with gateway(settings) as (service, _, _), gateway(settings) as (other, _, _):
            for r in receivers:
                write(service, subscription(r.url))
            n = 40
            for i in range(n):
                write(service if i % 2 else other, prescription(patient=f"p{i}"))
            for r in receivers:
                assert r.wait_for(lambda r=r: len(r.event_numbers()) >= n, timeout=60)
            time.sleep(0.5)
            for r in receivers:
                assert sorted(r.event_numbers()) == list(range(1, n + 1))  # none twice
    finally:
        for r in receivers[1:]:
            r.close()
