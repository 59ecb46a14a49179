"""Concurrent writers against the real stores (a SQLite file, a PostgreSQL schema).

The If-Match check reads the current row inside the write transaction, under the lock that
serialises writers (``BEGIN IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE`` on PostgreSQL), so
the loser of a race sees the winner's version and gets 412, never a lost update and never
the 409 of the row-version guard in the store.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.hooks import Hooks, Pointcut
from gateway.settings import Settings

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Start every call at the same moment on its own thread; results in call order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(index: int) -> None:
        barrier.wait(timeout=10)
        results[index] = calls[index]()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(not t.is_alive() for t in threads)
    return results


@pytest.fixture
def slow_writes(database_url: str) -> Iterator[tuple[TestClient, threading.Event]]:
    """A gateway whose first write pauses inside its transaction (after the If-Match check)."""
    hooks = Hooks()
    first_write_entered = threading.Event()
    lock = threading.Lock()

    def pause_first_write(*_args: Any) -> None:
        with lock:
            first = not first_write_entered.is_set()
            first_write_entered.set()
        if first:
            time.sleep(0.5)

    app = create_app(Settings(database=database_url, validation_mode="lenient"), hooks=hooks)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.put(
            "/fhir/Patient/race", content=json.dumps({"resourceType": "Patient", "id": "race"}), headers=FHIR_JSON
        )
        hooks.register(Pointcut.BEFORE_WRITE, pause_first_write)
        yield client, first_write_entered


def put_active(client: TestClient, value: bool) -> int:
    body = json.dumps({"resourceType": "Patient", "id": "race", "active": value})
    response = client.put("/fhir/Patient/race", content=body, headers={**FHIR_JSON, "If-Match": 'W/"1"'})
    assert response.json()["resourceType"] in ("Patient", "OperationOutcome")
    return response.status_code


def test_second_writer_with_the_same_if_match_gets_412(slow_writes: tuple[TestClient, threading.Event]) -> None:
    client, entered = slow_writes
    results: dict[str, int] = {}
    first = threading.Thread(target=lambda: results.__setitem__("first", put_active(client, True)))
    first.start()
    assert entered.wait(10)  # the first writer holds its transaction open for 0.5 s now
    results["second"] = put_active(client, False)
    first.join(30)
    assert results == {"first": 200, "second": 412}
    current = client.get("/fhir/Patient/race").json()
    assert current["active"] is True
    assert current["meta"]["versionId"] == "2"
    assert client.get("/fhir/Patient/race/_history").json()["total"] == 2


def test_many_concurrent_updates_with_the_same_if_match(client: TestClient) -> None:
    client.put("/fhir/Patient/many", content=json.dumps({"resourceType": "Patient", "id": "many"}), headers=FHIR_JSON)

    def update(n: int) -> Callable[[], int]:
        body = json.dumps({"resourceType": "Patient", "id": "many", "name": [{"family": f"F{n}"}]})
        return lambda: (
            client.put("/fhir/Patient/many", content=body, headers={**FHIR_JSON, "If-Match": 'W/"1"'}).status_code
        )

    statuses = run_together([update(n) for n in range(6)])
    assert Counter(statuses) == Counter({200: 1, 412: 5})
    history = client.get("/fhir/Patient/many/_history").json()
    assert history["total"] == 2
    assert client.get("/fhir/Patient/many").json()["meta"]["versionId"] == "2"


def test_concurrent_conditional_creates_make_one_resource(client: TestClient) -> None:
    body = json.dumps({"resourceType": "Patient", "identifier": [{"system": "urn:s", "value": "once"}]})

    spellings = ["identifier=urn:s|once", "identifier=urn%3As%7Conce", "_count=1&identifier=urn:s|once"]

    def create(criteria: str) -> Callable[[], int]:
        headers = {**FHIR_JSON, "If-None-Exist": criteria}
        return lambda: client.post("/fhir/Patient", content=body, headers=headers).status_code

    statuses = run_together([create(spellings[n % 3]) for n in range(5)])
    assert Counter(statuses) == Counter({201: 1, 200: 4})
    assert client.get("/fhir/Patient?identifier=urn:s|once").json()["total"] == 1


def test_concurrent_creates_on_update_of_one_new_id(client: TestClient) -> None:
    def put(n: int) -> Callable[[], int]:
        body = json.dumps({"resourceType": "Patient", "id": "fresh", "name": [{"family": f"F{n}"}]})
        return lambda: client.put("/fhir/Patient/fresh", content=body, headers=FHIR_JSON).status_code

    statuses = run_together([put(n) for n in range(4)])
    assert Counter(statuses) == Counter({201: 1, 200: 3})
    assert client.get("/fhir/Patient/fresh").json()["meta"]["versionId"] == "4"
