"""Rate limits per client: a token bucket of ``rate_limit_per_second`` refilled up to
``rate_limit_burst``, in Redis when ``settings.redis`` is set (one bucket shared by every
gateway process), in this process otherwise.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Protocol

log = logging.getLogger("yaolian.security")


class RateLimiter(Protocol):
    rate: float
    burst: int

    def acquire(self, key: str) -> float:
        """Take one token from ``key``'s bucket: 0 if allowed, else the seconds until one is back."""
        ...


class LocalBuckets:
    """Buckets in this process (one gateway process, or no Redis)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, monotonic time)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


# KEYS[1] the bucket; ARGV rate, burst. Redis's own clock, so processes on several hosts agree.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or burst
local ts = tonumber(data[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RedisBuckets:
    """Buckets in Redis: a Lua script refills and takes atomically. If Redis cannot be reached
    the request is let through (a rate limit protects capacity; authentication is unaffected)."""

    def __init__(self, client: Any, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._script = client.register_script(_BUCKET_SCRIPT)

    def acquire(self, key: str) -> float:
        try:
            return float(self._script(keys=[f"yaolian:rate:{key}"], args=[self.rate, self.burst]))
        except Exception as exc:  # redis.RedisError, or a connection error
            log.warning("rate limit not applied: Redis unavailable (%s)", type(exc).__name__)
            return 0.0


def retry_after(wait: float) -> int:
    """Whole seconds for a Retry-After header (at least 1)."""
    return max(1, math.ceil(wait))
