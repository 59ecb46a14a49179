"""A real HTTP receiver for notifications (``http.server`` on 127.0.0.1:0, started per test) and
the R5 subscription-notification shape it checks every Bundle against."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def check_notification(bundle: dict[str, Any]) -> list[str]:
    """What is wrong with a notification Bundle by R5 (empty list: nothing)."""
    problems = []
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "subscription-notification":
        problems.append("not a Bundle of type subscription-notification")
    entries = bundle.get("entry") or []
    if not entries or (entries[0].get("resource") or {}).get("resourceType") != "SubscriptionStatus":
        return [*problems, "the first entry is not a SubscriptionStatus"]
    status = entries[0]["resource"]
    if status.get("type") not in ("handshake", "heartbeat", "event-notification", "query-status", "query-event"):
        problems.append(f"SubscriptionStatus.type {status.get('type')!r}")
    if status.get("status") not in ("requested", "active", "error", "off", "entered-in-error"):
        problems.append(f"SubscriptionStatus.status {status.get('status')!r}")
    if not isinstance(status.get("eventsSinceSubscriptionStart"), str):
        problems.append("eventsSinceSubscriptionStart is not an integer64 string")
    if str((status.get("subscription") or {}).get("reference", "")).split("/")[-2:-1] != ["Subscription"]:
        problems.append("SubscriptionStatus.subscription does not reference a Subscription")
    if not status.get("topic"):
        problems.append("SubscriptionStatus.topic missing")
    for event in status.get("notificationEvent") or []:
        if not str(event.get("eventNumber", "")).isdigit():
            problems.append(f"eventNumber {event.get('eventNumber')!r}")
    for entry in entries[1:]:
        if not entry.get("fullUrl"):
            problems.append("an entry without fullUrl")
    return problems


def wait_for(done: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``done`` until it holds or ``timeout`` seconds pass; its last answer."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if done():
            return True
        time.sleep(0.05)
    return done()


class Receiver:
    """Records what it is sent; ``fail_with`` makes it answer that status instead (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.fail_with: int | None = None
        self.delay = 0.0  # seconds before answering (a slow receiver)
        self.failures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    if receiver.fail_with is not None:
                        receiver.failures += 1
                        self.send_response(receiver.fail_with)
                        self.end_headers()
                        return
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bundles(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            found = [b for _, b in self.received]
        if kind is None:
            return found
        return [b for b in found if b["entry"][0]["resource"]["type"] == kind]

    def event_numbers(self) -> list[int]:
        return [
            int(e["eventNumber"])
            for b in self.bundles("event-notification")
            for e in b["entry"][0]["resource"].get("notificationEvent", [])
        ]

    def wait_for(self, done: Callable[[], bool], timeout: float = 30.0) -> bool:
        return wait_for(done, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def subscription(endpoint: str, topic: str = "prescription-created", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "topic": f"http://yaolian.org/fhir/SubscriptionTopic/{topic}",
        "channelType": {
            "system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type",
            "code": "rest-hook",
        },
        "endpoint": endpoint,
        "content": "full-resource",
        "contentType": "application/fhir+json",
        **extra,
    }


def prescription(patient: str = "p1", drug: str = "X001", review: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient}"},
        "medication": {"concept": {"coding": [{"system": "http://yaolian.org/fhir/sid/nhsa-drug-code", "code": drug}]}},
    }
    if review:
        data["extension"] = [
            {
                "url": "http://yaolian.org/fhir/StructureDefinition/yl-central-review-result",
                "extension": [{"url": "result", "valueCode": review}],
            }
        ]
    return data


@pytest.fixture
def platform() -> Iterator[Any]:
    """The stub insurance platform (``test_insurance_feed.Platform``) on loopback, for the feed's
    tests and the status query's."""
    from tests.events.test_insurance_feed import Platform

    stub = Platform()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()
