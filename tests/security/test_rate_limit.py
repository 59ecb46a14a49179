"""Rate limits per client: a token bucket, in process or in Redis; over it, 429 with an
OperationOutcome and Retry-After."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gateway.security.ratelimit import LocalBuckets, RedisBuckets, retry_after

from .conftest import Keys, add_jwt_client, bearer, secure_client


def _burst_then_429(database: str, tmp_path: Path, keys: Keys, **settings: object) -> None:
    client_id = add_jwt_client(database, tmp_path, keys)
    other_id = add_jwt_client(database, tmp_path, keys)
    for client in secure_client(database, rate_limit_per_second=0.2, rate_limit_burst=3, **settings):
        headers = bearer(client, keys, client_id)
        assert [client.get("/fhir/Patient", headers=headers).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/fhir/Patient", headers=headers)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) in range(1, 6)
        outcome = refused.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "throttled"
        assert outcome["issue"][0]["details"]["coding"][0]["code"] == "YL-0904"
        # another client has a bucket of its own
        assert client.get("/fhir/Patient", headers=bearer(client, keys, other_id)).status_code == 200


def test_429_after_the_burst_in_process(tmp_path: Path, rsa_keys: Keys) -> None:
    _burst_then_429(f"sqlite:///{tmp_path / 'y.sqlite'}", tmp_path, rsa_keys)


@pytest.mark.redis
def test_429_after_the_burst_with_redis(tmp_path: Path, ec_keys: Keys, redis_url: str) -> None:
    _burst_then_429(f"sqlite:///{tmp_path / 'y.sqlite'}", tmp_path, ec_keys, redis=redis_url)


def test_a_local_bucket_refills_at_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.security.ratelimit as ratelimit

    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    buckets = LocalBuckets(rate=2.0, burst=2)
    assert [buckets.acquire("a"), buckets.acquire("a")] == [0.0, 0.0]
    assert buckets.acquire("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.acquire("a") == 0.0
    assert buckets.acquire("b") == 0.0
    assert retry_after(0.01) == 1 and retry_after(2.2) == 3


@pytest.mark.redis
def test_redis_buckets_are_shared_by_every_process(redis_url: str) -> None:
    import redis

    key = f"test-{uuid.uuid4().hex}"
    first = RedisBuckets(redis.Redis.from_url(redis_url), rate=0.1, burst=2)
    second = RedisBuckets(redis.Redis.from_url(redis_url), rate=0.1, burst=2)  # another gateway process
    assert first.acquire(key) == 0.0 and second.acquire(key) == 0.0
    assert first.acquire(key) > 0 and second.acquire(key) > 0


def test_redis_down_lets_requests_through() -> None:
    import redis

    down = RedisBuckets(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2), rate=1, burst=1)
    assert down.acquire("x") == 0.0
