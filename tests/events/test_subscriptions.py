"""Subscriptions over REST: checked when written, delivered through a real HTTP receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.events.conftest import Receiver, check_notification, prescription, subscription


def _settings(database_url: str, **extra: Any) -> Settings:
    return Settings(
        database=database_url,
        delivery_poll_seconds=0.1,
        delivery_backoff_seconds=0.2,
        delivery_backoff_max_seconds=0.5,
        **extra,
    )


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(database_url)), raise_server_exceptions=False) as c:
        yield c


def _code(response: Any) -> str:
    return str(response.json()["issue"][0]["details"]["coding"][0]["code"])


def test_a_subscription_is_checked_when_written(client: TestClient, receiver: Receiver) -> None:
    bad_topic = client.post("/fhir/Subscription", json=subscription(receiver.url, topic="no-such-topic"))
    assert bad_topic.status_code == 422 and _code(bad_topic) == "YL-1300"
    assert bad_topic.json()["issue"][0]["expression"] == ["Subscription.topic"]
    bad_filter = client.post(
        "/fhir/Subscription",
        json=subscription(
            receiver.url, topic="supply-request-created", filterBy=[{"filterParameter": "patient", "value": "1"}]
        ),
    )
    assert bad_filter.status_code == 422 and _code(bad_filter) == "YL-1301"
    bad_endpoint = client.post("/fhir/Subscription", json=subscription("ftp://example.org/x"))
    assert bad_endpoint.status_code == 422 and _code(bad_endpoint) == "YL-1303"
    bad_channel = client.post(
        "/fhir/Subscription", json=subscription(receiver.url, channelType={"code": "carrier-pigeon"})
    )
    assert bad_channel.status_code == 422 and _code(bad_channel) == "YL-1302"
    bad_header = client.post(
        "/fhir/Subscription", json=subscription(receiver.url, parameter=[{"name": "Host", "value": "evil"}])
    )
    assert bad_header.status_code == 422 and _code(bad_header) == "YL-1304"
    good = client.post("/fhir/Subscription", json=subscription(receiver.url))
    assert good.status_code == 201, good.text
    tags = good.json()["meta"]["tag"]
    assert {"system": "http://yaolian.org/fhir/sid/subscription-owner", "code": "insecure-dev"} in tags
    found = client.get(
        "/fhir/Subscription", params={"_tag": "http://yaolian.org/fhir/sid/subscription-owner|insecure-dev"}
    )
    assert found.json()["total"] == 1


def test_events_reach_the_receiver_in_order_with_headers(client: TestClient, receiver: Receiver) -> None:
    sub = client.post(
        "/fhir/Subscription",
        json=subscription(
            receiver.url,
            parameter=[{"name": "Authorization", "value": "Bearer secret-of-the-receiver"}],
            filterBy=[{"filterParameter": "drug", "value": "X001"}],
        ),
    ).json()
    ids = [client.post("/fhir/MedicationRequest", json=prescription(drug="X001")).json()["id"] for _ in range(12)]
    client.post("/fhir/MedicationRequest", json=prescription(drug="OTHER"))  # filtered out
    assert receiver.wait_for(lambda: len(receiver.event_numbers()) >= 12)
    assert receiver.event_numbers() == list(range(1, 13))
    assert receiver.bundles()[0]["entry"][0]["resource"]["type"] == "handshake"
    for headers, bundle in receiver.received:
        assert headers["authorization"] == "Bearer secret-of-the-receiver"
        assert headers["content-type"].startswith("application/fhir+json")
        assert check_notification(bundle) == []
    focus = [b["entry"][1]["resource"]["id"] for b in receiver.bundles("event-notification")]
    assert focus == ids
    status = client.get(f"/fhir/Subscription/{sub['id']}/$status")
    assert status.status_code == 200, status.text
    resource = status.json()["entry"][0]["resource"]
    assert resource["eventsSinceSubscriptionStart"] == "12" and resource["status"] == "active"
    replay = client.get(
        f"/fhir/Subscription/{sub['id']}/$events", params={"eventsSinceNumber": 5, "eventsUntilNumber": 7}
    )
    assert replay.status_code == 200, replay.text
    events = replay.json()["entry"][0]["resource"]["notificationEvent"]
    assert [e["eventNumber"] for e in events] == ["5", "6", "7"]
    assert check_notification(replay.json()) == []
    assert [e["resource"]["id"] for e in replay.json()["entry"][1:]] == ids[4:7]


def test_a_receiver_down_for_a_while_misses_nothing(client: TestClient, receiver: Receiver) -> None:
    client.post("/fhir/Subscription", json=subscription(receiver.url, content="id-only"))
    assert receiver.wait_for(lambda: len(receiver.bundles("handshake")) == 1)
    receiver.fail_with = 500
    for _ in range(10):
        client.post("/fhir/MedicationRequest", json=prescription())
    assert receiver.wait_for(lambda: receiver.failures >= 3)
    receiver.fail_with = None
    assert receiver.wait_for(lambda: set(receiver.event_numbers()) == set(range(1, 11)))
    numbers = receiver.event_numbers()
    assert numbers == sorted(numbers)  # order kept per subscription
    for bundle in receiver.bundles("event-notification"):
        assert check_notification(bundle) == []
        assert "resource" not in bundle["entry"][1]  # id-only
        assert bundle["entry"][1]["fullUrl"].split("/")[-2] == "MedicationRequest"


def test_review_blocked_fires_only_when_the_review_rejects(client: TestClient, receiver: Receiver) -> None:
    client.post("/fhir/Subscription", json=subscription(receiver.url, topic="review-blocked", content="empty"))
    passed = client.post("/fhir/MedicationRequest", json=prescription(review="pass")).json()
    rejected = client.post("/fhir/MedicationRequest", json=prescription(review="reject")).json()
    client.put(f"/fhir/MedicationRequest/{passed['id']}", json={**prescription(review="reject"), "id": passed["id"]})
    client.put(
        f"/fhir/MedicationRequest/{rejected['id']}", json={**prescription(review="reject"), "id": rejected["id"]}
    )
    assert receiver.wait_for(lambda: len(receiver.event_numbers()) >= 2)
    receiver.wait_for(lambda: False, timeout=1.0)
    assert receiver.event_numbers() == [1, 2]
    for bundle in receiver.bundles("event-notification"):
        assert len(bundle["entry"]) == 1  # empty: the status alone, no focus
        assert "focus" not in bundle["entry"][0]["resource"]["notificationEvent"][0]


def test_the_message_channel_writes_the_resources_on_a_remote_fhir_server(database_url: str, tmp_path: Any) -> None:
    """The remote server is a second Yaolian gateway, served for real by uvicorn on 127.0.0.1:0."""
    import threading

    import httpx
    import uvicorn

    remote_app = create_app(_settings(f"sqlite:///{tmp_path / 'remote.db'}", subscriptions=False))
    config = uvicorn.Config(remote_app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    from tests.events.conftest import wait_for

    assert wait_for(lambda: server.started, 20)
    port = server.servers[0].sockets[0].getsockname()[1]
    remote = f"http://127.0.0.1:{port}/fhir"
    try:
        with TestClient(create_app(_settings(database_url)), raise_server_exceptions=False) as client:
            sub = subscription(remote, topic="prescription-changed", channelType={"code": "message"})
            assert client.post("/fhir/Subscription", json=sub).status_code == 201
            rx = client.post("/fhir/MedicationRequest", json=prescription()).json()
            client.put(f"/fhir/MedicationRequest/{rx['id']}", json={**prescription(drug="Y002"), "id": rx["id"]})

            def remote_has_it() -> bool:
                answer = httpx.get(f"{remote}/MedicationRequest/{rx['id']}")
                return answer.status_code == 200 and "Y002" in answer.text

            assert wait_for(remote_has_it)
            client.delete(f"/fhir/MedicationRequest/{rx['id']}")
            assert wait_for(lambda: httpx.get(f"{remote}/MedicationRequest/{rx['id']}").status_code == 410)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_websocket_bound_with_a_token_receives_the_notifications(client: TestClient) -> None:
    sub = subscription("", channelType={"code": "websocket"}, content="id-only")
    sub.pop("endpoint")
    created = client.post("/fhir/Subscription", json=sub)
    assert created.status_code == 201, created.text
    sub_id = created.json()["id"]
    before = client.post("/fhir/MedicationRequest", json=prescription()).json()  # waits for a socket
    answer = client.get(f"/fhir/Subscription/{sub_id}/$get-ws-binding-token")
    assert answer.status_code == 200, answer.text
    params = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in answer.json()["parameter"]}
    assert params["websocket-url"].endswith("/fhir/ws") and params["subscription"] == f"Subscription/{sub_id}"
    with client.websocket_connect("/fhir/ws") as ws:
        ws.send_text("bind-with-token: not-a-token")
        assert ws.receive_text().startswith("error")
    with client.websocket_connect("/fhir/ws") as ws:
        ws.send_text(f"bind-with-token: {params['token']}")
        handshake = ws.receive_json()
        assert check_notification(handshake) == [] and handshake["entry"][0]["resource"]["type"] == "handshake"
        first = ws.receive_json()
        assert first["entry"][0]["resource"]["notificationEvent"][0]["eventNumber"] == "1"
        assert first["entry"][1]["fullUrl"].endswith(f"MedicationRequest/{before['id']}")
        after = client.post("/fhir/MedicationRequest", json=prescription()).json()
        second = ws.receive_json()
        assert check_notification(second) == []
        assert second["entry"][0]["resource"]["notificationEvent"][0]["eventNumber"] == "2"
        assert second["entry"][1]["fullUrl"].endswith(f"MedicationRequest/{after['id']}")


def test_a_quiet_subscription_gets_heartbeats(client: TestClient, receiver: Receiver) -> None:
    client.post("/fhir/Subscription", json=subscription(receiver.url, heartbeatPeriod=1))
    assert receiver.wait_for(lambda: len(receiver.bundles("heartbeat")) >= 2, timeout=15)
    beat = receiver.bundles("heartbeat")[0]
    assert check_notification(beat) == []
    assert beat["entry"][0]["resource"]["eventsSinceSubscriptionStart"] == "0"
    assert "notificationEvent" not in beat["entry"][0]["resource"]


def test_a_subscription_switched_off_receives_nothing_meanwhile(client: TestClient, receiver: Receiver) -> None:
    sub = client.post("/fhir/Subscription", json=subscription(receiver.url)).json()
    assert receiver.wait_for(lambda: len(receiver.bundles("handshake")) == 1)
    client.put(f"/fhir/Subscription/{sub['id']}", json={**subscription(receiver.url), "id": sub["id"], "status": "off"})
    client.post("/fhir/MedicationRequest", json=prescription())
    receiver.wait_for(lambda: False, timeout=1.5)
    assert receiver.event_numbers() == []
    status = client.get(f"/fhir/Subscription/{sub['id']}/$status").json()["entry"][0]["resource"]
    assert status["status"] == "off"
