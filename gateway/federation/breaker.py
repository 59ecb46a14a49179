"""A circuit breaker per member: a member that keeps failing is not asked for a while.

Closed (asked) until ``failures`` answers in a row fail; then open for ``reset`` seconds
(not asked, named in the outcome at no cost); then one query is let through (half-open): a
success closes it, a failure opens it again.

The counting is per gateway process; an *opened* breaker is shared. With Redis configured
(:class:`RedisBoard`), a process that opens one posts it on the board, and every other process
reads the board at most once a second, in the background: behind a load balancer, a dead
member costs the alliance ``failures`` slow answers, not ``failures`` per process. The board
only ever adds "do not ask until T"; each process still judges a member it asks on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False


@dataclass
class Breakers:
    failures: int = 3
    reset: float = 30.0
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _states: dict[str, _State] = field(default_factory=dict)
    #: Breakers other processes opened: member -> wall-clock time until which it is not asked.
    _elsewhere: dict[str, float] = field(default_factory=dict)
    #: Changes to post on the board: member -> until (opened here) or None (closed here).
    _posts: dict[str, float | None] = field(default_factory=dict)

    def allow(self, member: str) -> bool:
        """Whether ``member`` may be asked now (half-open: one caller gets the trial)."""
        state = self._states.get(member)
        if state is None or state.opened_at is None:
            return self._elsewhere.get(member, 0.0) <= self.wall()
        if self.clock() - state.opened_at < self.reset or state.trial:
            return False
        state.trial = True
        return True

    def succeeded(self, member: str) -> None:
        state = self._states.pop(member, None)
        if (state is not None and state.opened_at is not None) or self._elsewhere.pop(member, None) is not None:
            self._posts[member] = None  # a breaker that was open is closed everywhere

    def failed(self, member: str) -> None:
        state = self._states.setdefault(member, _State())
        state.failures += 1
        state.trial = False
        if state.failures >= self.failures:
            state.opened_at = self.clock()
            self._posts[member] = self.wall() + self.reset

    def is_open(self, member: str) -> bool:
        state = self._states.get(member)
        return (state is not None and state.opened_at is not None) or self._elsewhere.get(member, 0.0) > self.wall()

    def posts(self) -> dict[str, float | None]:
        """The changes not yet posted on the board (taken: the next call returns only newer ones)."""
        posts, self._posts = self._posts, {}
        return posts

    def repost(self, posts: dict[str, float | None]) -> None:
        """``posts`` that did not reach the board, kept for the next exchange (newer news first)."""
        self._posts = {**posts, **self._posts}

    def adopt(self, board: dict[str, float]) -> None:
        """What the board says other processes opened (expired entries are ignored)."""
        now = self.wall()
        self._elsewhere = {member: until for member, until in board.items() if until > now}


class BreakerBoard(Protocol):
    """Where opened breakers are shared between gateway processes."""

    async def exchange(self, posts: dict[str, float | None]) -> dict[str, float]:
        """Post ``posts`` (None: closed) and return every breaker open on the board."""
        ...

    async def close(self) -> None: ...


class RedisBoard:
    """The board as one Redis hash, member -> wall-clock time until which it is not asked
    (one field per member at most; a field past its time means nothing and is left)."""

    def __init__(self, url: str, prefix: str = "yaolian:federation") -> None:
        import redis.asyncio as aredis

        self.key = f"{prefix}:breakers"
        self._redis: Any = aredis.from_url(url)

    async def exchange(self, posts: dict[str, float | None]) -> dict[str, float]:
        async with self._redis.pipeline(transaction=False) as pipe:
            opened = {m: repr(until) for m, until in posts.items() if until is not None}
            closed = [m for m, until in posts.items() if until is None]
            if opened:
                pipe.hset(self.key, mapping=opened)
            if closed:
                pipe.hdel(self.key, *closed)
            pipe.hgetall(self.key)
            board = (await pipe.execute())[-1]
        now = time.time()
        found = {bytes(m).decode(): float(u) for m, u in board.items()}
        return {m: u for m, u in found.items() if u > now}

    async def close(self) -> None:
        await self._redis.aclose()
