"""The gate every FHIR interaction passes (called by ``gateway.api.context.context``): the
bearer token becomes the request's :class:`~gateway.principal.Principal`, then the client's
rate limit is taken. With ``insecure_dev`` there is no check: everything runs as
:data:`~gateway.principal.INSECURE_DEV`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from gateway.errors import TooManyRequests, Unauthorized
from gateway.principal import INSECURE_DEV, Principal
from gateway.security.ratelimit import LocalBuckets, RateLimiter, RedisBuckets, retry_after
from gateway.security.tokens import Authority, JtiRegistry, RedisJti
from gateway.settings import Settings
from gateway.store.base import Store

log = logging.getLogger("yaolian.security")

INSECURE_WARNING = (
    "INSECURE DEVELOPMENT MODE: authentication is OFF, every request runs as an administrator "
    "(--insecure-dev / YAOLIAN_INSECURE_DEV / --demo). Never use this in production."
)


class Authenticator:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.insecure = settings.insecure_dev
        redis_client: Any = None
        if settings.redis:
            import redis

            redis_client = redis.Redis.from_url(settings.redis, socket_timeout=1, socket_connect_timeout=1)
        jti: JtiRegistry | None = RedisJti(redis_client) if redis_client is not None else None
        self.authority = Authority(store, jti=jti)
        self.limiter: RateLimiter = (
            RedisBuckets(redis_client, settings.rate_limit_per_second, settings.rate_limit_burst)
            if redis_client is not None
            else LocalBuckets(settings.rate_limit_per_second, settings.rate_limit_burst)
        )
        if self.insecure:
            log.warning(INSECURE_WARNING)

    def authenticate(self, authorization: str | None, source_ip: str | None, token_url: Callable[[], str]) -> Principal:
        """Who is asking; :class:`Unauthorized` (401) without a valid bearer token,
        :class:`TooManyRequests` (429) when the client is over its rate limit."""
        if self.insecure:
            return dataclasses.replace(INSECURE_DEV, source_ip=source_ip)
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("YL-0900", token_url=token_url())
        principal = self.authority.principal(token.strip(), source_ip)
        wait = self.limiter.acquire(principal.client_id)
        if wait > 0:
            refused = TooManyRequests(
                "YL-0904",
                client_id=principal.client_id,
                rate=f"{self.limiter.rate:g}",
                burst=self.limiter.burst,
                retry=retry_after(wait),
            )
            refused.retry_after = retry_after(wait)
            raise refused
        return principal
