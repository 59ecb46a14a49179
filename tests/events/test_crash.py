"""A gateway process killed with -9 in the middle of delivering, then started again: every
event arrives, none is lost, a repeat carries the eventNumber it had (real `yaolian serve`
subprocesses, a real HTTP receiver; with and without the real Redis)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.events.conftest import Receiver, check_notification, prescription, subscription


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    def __init__(self, database: str, tmp: Path, redis_url: str | None, stream: str | None) -> None:
        self.port = _free_port()
        self.env = {
            **os.environ,
            "YAOLIAN_INSECURE_DEV": "1",
            "YAOLIAN_AUDIT": "0",
            "YAOLIAN_DELIVERY_LEASE_SECONDS": "2",
            "YAOLIAN_DELIVERY_POLL_SECONDS": "0.2",
            "YAOLIAN_DELIVERY_BACKOFF_SECONDS": "0.2",
            "YAOLIAN_DELIVERY_BACKOFF_MAX_SECONDS": "0.5",
            "YAOLIAN_OUTBOX_REPUBLISH_SECONDS": "2",
        }
        if stream:
            self.env["YAOLIAN_EVENTS_STREAM"] = stream
        self.args = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port), "--database", database]
        if redis_url:
            self.args += ["--redis", redis_url]
        self.log = tmp / f"serve-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{self.port}/fhir"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"gateway did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(params=["direct", "redis"])
def mode(request: pytest.FixtureRequest) -> Iterator[tuple[str | None, str | None]]:
    if request.param == "direct":
        yield None, None
        return
    url = str(request.getfixturevalue("redis_url"))
    stream = f"yaolian:test:{uuid.uuid4().hex}"
    yield url, stream
    client = redis.Redis.from_url(url)
    client.delete(stream)
    client.close()


def test_a_gateway_killed_mid_delivery_loses_nothing(
    database_url: str, tmp_path: Path, receiver: Receiver, mode: tuple[str | None, str | None]
) -> None:
    redis_url, stream = mode
    gw = Gateway(database_url, tmp_path, redis_url, stream)
    gw.start()
    try:
        created = httpx.post(f"{gw.base}/Subscription", json=subscription(receiver.url), timeout=10)
        assert created.status_code == 201, created.text
        receiver.delay = 0.05  # slow enough that the kill lands mid-delivery
        n = 40
        ids = []
        for i in range(n):
            answer = httpx.post(f"{gw.base}/MedicationRequest", json=prescription(patient=f"p{i}"), timeout=10)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        assert receiver.wait_for(lambda: len(receiver.event_numbers()) >= 3, timeout=30)
        gw.kill()
        got_before = len(set(receiver.event_numbers()))
        assert got_before < n, "the kill came too late to test anything"
        gw.start()
        assert receiver.wait_for(lambda: len(set(receiver.event_numbers())) >= n, timeout=90), gw.log.read_text()[
            -3000:
        ]
        by_number: dict[int, set[str]] = {}
        for bundle in receiver.bundles("event-notification"):
            assert check_notification(bundle) == []
            event = bundle["entry"][0]["resource"]["notificationEvent"][0]
            by_number.setdefault(int(event["eventNumber"]), set()).add(bundle["entry"][1]["resource"]["id"])
        assert sorted(by_number) == list(range(1, n + 1))
        assert [next(iter(by_number[k])) for k in range(1, n + 1)] == ids  # a repeat, same number, same event
    finally:
        gw.stop()
