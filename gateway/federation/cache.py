"""Live members' answers kept briefly, so a doctor paging or re-opening a patient does not ask
thirty members again.

Keys carry the member's *generation*: when a member pushes a change to the gateway (any write
committed by that member's client, REST, Bundle or MLLP) its generation goes up and every
answer cached for it is stale at once, without scanning keys. With ``settings.redis`` the
answers and generations live in Redis (shared by every gateway process, expiring by TTL);
otherwise in this process, bounded in size.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol


class AnswerCache(Protocol):
    async def get(self, member: str, query: str) -> bytes | None: ...
    async def put(self, member: str, query: str, answer: bytes) -> None: ...
    def invalidate(self, member: str) -> None: ...
    async def close(self) -> None: ...


def _digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:32]


class MemoryCache:
    """In-process answers (no Redis configured): at most ``size`` kept, oldest dropped first."""

    def __init__(self, ttl: float, size: int = 2048) -> None:
        self.ttl = ttl
        self.size = size
        self._answers: OrderedDict[tuple[str, int, str], tuple[float, bytes]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()  # invalidate() runs in the service's worker threads

    def _key(self, member: str, query: str) -> tuple[str, int, str]:
        return member, self._generations.get(member, 0), _digest(query)

    async def get(self, member: str, query: str) -> bytes | None:
        with self._lock:
            key = self._key(member, query)
            found = self._answers.get(key)
            if found is None:
                return None
            if found[0] < time.monotonic():
                del self._answers[key]
                return None
            return found[1]

    async def put(self, member: str, query: str, answer: bytes) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._answers[self._key(member, query)] = (time.monotonic() + self.ttl, answer)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def invalidate(self, member: str) -> None:
        with self._lock:
            self._generations[member] = self._generations.get(member, 0) + 1

    async def close(self) -> None:
        return None


class RedisCache:
    """Answers in Redis under ``prefix``; generations are counters beside them."""

    def __init__(self, url: str, ttl: float, prefix: str = "yaolian:federation") -> None:
        import redis
        import redis.asyncio as aredis

        self.ttl = ttl
        self.prefix = prefix
        self._async: Any = aredis.from_url(url)
        self._sync: Any = redis.from_url(url)

    def _generation_key(self, member: str) -> str:
        return f"{self.prefix}:gen:{member}"

    async def _key(self, member: str, query: str) -> str:
        generation = await self._async.get(self._generation_key(member))
        return f"{self.prefix}:answer:{member}:{int(generation or 0)}:{_digest(query)}"

    async def get(self, member: str, query: str) -> bytes | None:
        found = await self._async.get(await self._key(member, query))
        return bytes(found) if found is not None else None

    async def put(self, member: str, query: str, answer: bytes) -> None:
        if self.ttl <= 0:
            return
        await self._async.set(await self._key(member, query), answer, px=int(self.ttl * 1000))

    def invalidate(self, member: str) -> None:
        self._sync.incr(self._generation_key(member))

    async def close(self) -> None:
        await self._async.aclose()
        self._sync.close()


def open_cache(redis_url: str | None, ttl: float, prefix: str = "yaolian:federation") -> AnswerCache:
    return RedisCache(redis_url, ttl, prefix) if redis_url else MemoryCache(ttl)
