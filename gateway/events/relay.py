"""Relay outbox rows to Redis Streams or in-process listeners (at-least-once).

With Redis the relay only *publishes*: the outbox row stays pending until a consumer
(:class:`gateway.events.dispatcher.Dispatcher`) has made its deliveries durable in the store
and marks it done (issue 12 point 9). A row published and not done within
``republish_after`` seconds is published again, and everything pending is published again at
once when the stream has vanished (a Redis restarted without persistence), so a Redis that
lost its data loses no event. Consumers de-duplicate on ``seq`` (the fan-out marks a row once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.store.base import ChangeEvent, Store

log = logging.getLogger("yaolian.events")
STREAM = "yaolian:events"


__all__ = ["STREAM", "ChangeEvent", "Listener", "OutboxRelay"]

Listener = Callable[[ChangeEvent], None]


class OutboxRelay:
    """Drains pending outbox rows in ``seq`` order; safe to run in several processes.

    On PostgreSQL two relays may publish the same row twice in a race (at-least-once);
    consumers key on ``seq``. Marking delivered happens only after a successful publish.
    """

    def __init__(
        self, store: Store, redis_url: str | None = None, stream: str = STREAM, republish_after: float = 30.0
    ) -> None:
        self.store = store
        self.stream = stream
        self.republish_after = republish_after
        self._published: dict[int, float] = {}  # seq -> when this process last published it
        self._high = 0  # the highest seq published
        self._swept = 0.0  # when every pending row was last looked at
        self.listeners: list[Listener] = []
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def drain(self, batch: int = 500) -> int:
        """Publish pending events; returns how many were delivered.

        The rows are locked while they are published (``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL, the write lock on SQLite), so relays in several processes share the work
        without sending a row twice; a crash between publish and commit re-sends (at-least-once).
        """
        if self._redis is None and not self.listeners:
            return 0  # nobody to deliver to: events wait in the outbox (a write lock per commit saved)
        with self._lock:
            if self._redis is not None:
                return self._publish_pending(batch)
            return self.store.drain_outbox(self._publish, batch)

    def forget(self) -> None:
        """Publish every pending row again at the next drain (the stream lost them)."""
        with self._lock:
            self._published.clear()

    def _publish_pending(self, batch: int) -> int:
        """Publish the pending rows not published lately; they stay pending (not marked).

        Usually only the rows after the last one published are read (with a window below it:
        on PostgreSQL a smaller seq may commit after a larger one); every half
        ``republish_after`` all pending rows are looked at, to publish again what nobody
        acknowledged."""
        if self._published and not self._redis.exists(self.stream):
            log.warning("stream %s is gone (Redis lost its data?): publishing the pending outbox again", self.stream)
            self._published.clear()
            self._swept = 0.0
        now = time.monotonic()
        sweep = now - self._swept >= self.republish_after / 2
        if sweep:
            self._swept = now
            pending = self.store.outbox_pending(batch * 4)
            keep = {ev.seq for ev in pending}
            self._published = {seq: at for seq, at in self._published.items() if seq in keep}
        else:
            pending = self.store.outbox_pending(batch, after=max(0, self._high - 1000))
        due = [ev for ev in pending if now - self._published.get(ev.seq, -1e18) >= self.republish_after][:batch]
        if not due:
            return 0
        self._publish(due)
        for ev in due:
            self._published[ev.seq] = now
        self._high = max(self._high, due[-1].seq)
        return len(due)

    def _publish(self, events: list[ChangeEvent]) -> None:
        if self._redis is not None:
            pipe = self._redis.pipeline(transaction=False)
            for ev in events:
                pipe.xadd(self.stream, ev.fields(), maxlen=1_000_000, approximate=True)
            pipe.execute()
        for ev in events:
            for listener in self.listeners:
                try:
                    listener(ev)
                except Exception:  # one bad listener must not block the others
                    log.exception("event listener failed on outbox seq %s", ev.seq)

    def start(self, interval: float = 1.0) -> None:
        """Drain in a background thread: at once after :meth:`notify`, else every ``interval``."""

        def loop() -> None:
            while not self._stopping.is_set():
                self._wake.wait(interval)
                self._wake.clear()
                try:
                    while self.drain():
                        pass
                except Exception:
                    log.exception("outbox relay failed; retrying")

        self._thread = threading.Thread(target=loop, name="yaolian-outbox", daemon=True)
        self._thread.start()

    def notify(self, *_: object) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.close()

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
