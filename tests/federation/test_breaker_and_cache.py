"""The circuit breaker and the answer caches (in process and Redis)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gateway.federation.breaker import Breakers, RedisBoard
from gateway.federation.cache import MemoryCache, RedisCache
from gateway.federation.fanout import Latency
from gateway.federation.registry import Member


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


def test_breakers_post_what_opens_and_closes_and_heed_what_others_opened() -> None:
    now, wall = [0.0], [1000.0]
    here = Breakers(failures=2, reset=30.0, clock=lambda: now[0], wall=lambda: wall[0])
    here.failed("m")
    assert here.posts() == {}  # one failure opens nothing
    here.failed("m")
    assert here.posts() == {"m": 1030.0} and here.posts() == {}  # taken once
    there = Breakers(failures=2, reset=30.0, clock=lambda: now[0], wall=lambda: wall[0])
    there.adopt({"m": 1030.0, "gone": 999.0})
    assert not there.allow("m") and there.is_open("m")
    assert there.allow("gone")  # past its time: asked
    wall[0] = 1031.0
    assert there.allow("m")  # the other process's breaker has run out: asked again
    there.adopt({"m": 1060.0})
    there.succeeded("m")  # a member that answers closes the breaker everywhere
    assert there.posts() == {"m": None} and there.allow("m")
    here.repost({"x": 5.0})
    assert here.posts() == {"x": 5.0}


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


@pytest.mark.redis
def test_redis_board_shares_opened_breakers_between_processes(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}"

    async def run() -> None:
        first, second = RedisBoard(redis_url, prefix), RedisBoard(redis_url, prefix)
        try:
            later = time.time() + 30
            assert await first.exchange({"dead": later, "old": time.time() - 1}) == {"dead": later}
            assert await second.exchange({}) == {"dead": later}
            assert await second.exchange({"dead": None}) == {}
            assert await first.exchange({}) == {}
        finally:
            await first._redis.delete(first.key)
            await first.close()
            await second.close()

    asyncio.run(run())


def test_members_are_asked_slowest_first_and_unknown_ones_before_known() -> None:
    """POL-08: the member that replies last is asked first (the answer waits for it)."""
    members = [Member(code, code, code, "village", None, None) for code in ("fast", "slow", "new", "mid")]
    latency = Latency()
    for code, seconds in (("fast", 0.01), ("slow", 0.2), ("mid", 0.05)):
        latency.observed(code, seconds)
    assert [m.code for m in latency.slowest_first(members)] == ["new", "slow", "mid", "fast"]
    for _ in range(10):  # the slow member got fast: it moves back as the average follows
        latency.observed("slow", 0.001)
    assert [m.code for m in latency.slowest_first(members)] == ["new", "mid", "fast", "slow"]
