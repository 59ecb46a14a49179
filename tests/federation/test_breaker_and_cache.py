"""The circuit breaker and the answer caches (in process and Redis)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.federation.breaker import Breakers
from gateway.federation.cache import MemoryCache, RedisCache


def test_breaker_opens_after_failures_half_opens_after_reset_and_closes_on_success() -> None:
    now = [0.0]
    breakers = Breakers(failures=2, reset=10.0, clock=lambda: now[0])
    breakers.failed("m")
    assert breakers.allow("m")
    breakers.failed("m")
    assert not breakers.allow("m") and breakers.is_open("m")
    now[0] = 11.0
    assert breakers.allow("m")  # the one trial
    assert not breakers.allow("m")  # others wait for it
    breakers.failed("m")
    assert not breakers.allow("m")  # open again
    now[0] = 22.0
    assert breakers.allow("m")
    breakers.succeeded("m")
    assert breakers.allow("m") and not breakers.is_open("m")


def test_memory_cache_expires_and_invalidates_per_member() -> None:
    async def run() -> None:
        cache = MemoryCache(ttl=60)
        await cache.put("a", "q", b"1")
        await cache.put("b", "q", b"2")
        assert await cache.get("a", "q") == b"1"
        cache.invalidate("a")
        assert await cache.get("a", "q") is None and await cache.get("b", "q") == b"2"
        expired = MemoryCache(ttl=0.01)
        await expired.put("a", "q", b"1")
        await asyncio.sleep(0.02)
        assert await expired.get("a", "q") is None

    asyncio.run(run())


@pytest.mark.redis
def test_redis_cache_shared_expiring_and_invalidated(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"

    async def run() -> None:
        first, second = RedisCache(redis_url, 60, prefix), RedisCache(redis_url, 60, prefix)
        try:
            await first.put("a", "q", b"answer")
            assert await second.get("a", "q") == b"answer"  # another gateway process sees it
            second.invalidate("a")
            assert await first.get("a", "q") is None
        finally:
            keys = list(first._sync.scan_iter(f"{prefix}:*"))
            if keys:
                first._sync.delete(*keys)
            await first.close()
            await second.close()

    asyncio.run(run())
