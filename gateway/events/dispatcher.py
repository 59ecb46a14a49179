"""The dispatcher: outbox -> per-subscription deliveries -> channels, durable at each step.

Two stages, each safe to run in several processes on one database:

1. **Fan-out.** Committed changes (outbox rows) are matched to subscriptions
   (:class:`~gateway.events.matching.Matcher`) and, in one store transaction, each match becomes
   a delivery row with the subscription's next ``eventNumber`` and the outbox row is marked done
   - only then, so the event exists durably before the outbox forgets it. Without Redis the
   dispatcher reads the outbox itself; with Redis it reads the stream the relay fills through a
   consumer group (``XREADGROUP``), acknowledges (``XACK``) after the fan-out committed, and
   takes over the entries a crashed consumer left pending (``XAUTOCLAIM``). A stream that lost
   its data is re-filled by the relay from the outbox (issue 12 point 9).
2. **Delivery.** A worker leases one subscription at a time (a lease in ``sub_state``: one
   process delivers a subscription's events, in eventNumber order; a process killed with -9
   loses the lease when it runs out and another takes over, re-sending the event it was on
   with the same eventNumber), sends its pending events through the subscription's channel,
   and records each outcome under the lease. A failure parks the subscription for an
   exponential back-off (``delivery_backoff_seconds`` doubling up to
   ``delivery_backoff_max_seconds``); an event still failing ``delivery_retry_hours`` after its
   first failure becomes a dead letter (``yaolian deliveries list|retry``).

Delivery is at-least-once: a receiver de-duplicates on ``eventNumber``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from gateway.clock import now_instant
from gateway.events.channels import Channel, Sent
from gateway.events.channels.rest_hook import RestHook
from gateway.events.matching import Matcher
from gateway.events.notifications import notification
from gateway.events.relay import STREAM, OutboxRelay
from gateway.events.subscriptions import Subscription
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.base import Delivery, DeliveryOutcome

log = logging.getLogger("yaolian.events")
GROUP = "yaolian-subscriptions"


class Dispatcher:
    def __init__(
        self,
        service: FhirService,
        settings: Settings,
        *,
        relay: OutboxRelay | None = None,
        stream: str = STREAM,
        base_url: str | None = None,
        owner: str | None = None,
    ) -> None:
        self.service = service
        self.store = service.store
        self.settings = settings
        self.relay = relay
        self.stream = stream
        self.base_url = (base_url or settings.base_url or f"http://{settings.host}:{settings.port}/fhir").rstrip("/")
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.matcher = Matcher(service)
        from gateway.events.channels.aggregate import AggregateChannel
        from gateway.events.channels.message import MessageChannel
        from gateway.events.channels.websocket import WebSocketChannel
        from gateway.events.insurance.channel import InsuranceChannel

        self.channels: dict[str, Channel] = {
            "rest-hook": RestHook(settings.delivery_timeout_seconds),
            "message": MessageChannel(self.matcher, settings.delivery_timeout_seconds),
            "websocket": WebSocketChannel(self.store),
            "aggregate": AggregateChannel(self.matcher, settings.delivery_timeout_seconds),
            "insurance-rx": InsuranceChannel(self.matcher, settings.delivery_timeout_seconds),
        }
        self._redis: Any = None
        if relay is not None and relay._redis is not None:
            import redis

            self._redis = (
                redis.Redis.from_url(settings.redis or "", socket_timeout=5) if settings.redis else relay._redis
            )
        self._wake_fan_out = threading.Event()
        self._wake_delivery = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_claim = 0.0
        self._subscription_written = False
        from gateway.hooks import Pointcut

        service.hooks.register(Pointcut.BEFORE_WRITE, self.saw_write)

    # -- stage 1: fan-out -------------------------------------------------------------------
    def fan_out_once(self, batch: int = 500) -> int:
        """Direct from the outbox: returns how many rows this call marked done."""
        if not self.matcher.wanted():
            return 0  # nobody subscribed: rows wait in the outbox
        events = self.store.outbox_pending(batch)
        if not events:
            return 0
        done = self.store.outbox_fan_out(self.matcher.plan(events), now_instant())
        if done:
            self._wake_delivery.set()
        return len(done)

    def _ensure_group(self) -> None:
        import redis

        try:
            self._redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def consume_once(self, block_ms: int = 1000, count: int = 500) -> int:
        """Redis mode: one XREADGROUP (and, now and then, XAUTOCLAIM) round; returns rows done."""
        import redis

        try:
            reply = self._redis.xreadgroup(GROUP, self.owner, {self.stream: ">"}, count=count, block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer group %s missing on %s (Redis lost its data?): recreating", GROUP, self.stream)
            self._ensure_group()
            if self.relay is not None:
                self.relay.forget()
                self.relay.notify()
            return 0
        entries: list[tuple[bytes, dict[bytes, bytes]]] = [e for _, batch in reply or () for e in batch]
        now = time.monotonic()
        if now - self._last_claim > 5:
            self._last_claim = now
            idle = int(self.settings.delivery_lease_seconds * 1000)
            claimed = self._redis.xautoclaim(
                self.stream, GROUP, self.owner, min_idle_time=idle, start_id="0-0", count=count
            )
            entries += list(claimed[1] or ())
        return self._fan_out_entries(entries)

    def _fan_out_entries(self, entries: Sequence[tuple[bytes, dict[bytes, bytes] | None]]) -> int:
        if not entries:
            return 0
        seqs = sorted({int(fields[b"seq"]) for _, fields in entries if fields and b"seq" in fields})
        done: list[int] = []
        if seqs:
            events = self.store.outbox_pending(len(seqs), seqs)
            if events:
                done = self.store.outbox_fan_out(self.matcher.plan(events), now_instant())
        self._redis.xack(self.stream, GROUP, *[entry_id for entry_id, _ in entries])
        if done:
            self._wake_delivery.set()
        return len(done)

    # -- stage 2: delivery ------------------------------------------------------------------
    def deliver_once(self) -> int:
        """Lease one subscription with pending events and deliver them; returns events sent."""
        s = self.settings
        if not self.matcher.wanted():
            return 0
        claimed = self.store.deliveries_claim(self.owner, time.time(), s.delivery_lease_seconds, 1)
        return sum(self.deliver(sub_id) for sub_id in claimed)

    def _backoff(self, attempts: int) -> float:
        s = self.settings
        return float(min(s.delivery_backoff_seconds * 2 ** max(0, attempts - 1), s.delivery_backoff_max_seconds))

    def deliver(self, sub_id: str) -> int:
        """Deliver the pending events of a subscription this process holds the lease of."""
        sent = 0
        park = 0.0
        try:
            sub = self.matcher.get(sub_id)
            if sub is None:
                self.matcher.refresh(force=True)
                sub = self.matcher.get(sub_id)
            if sub is None or sub.status == "off":
                park = time.time() + 60  # removed or switched off: its events wait
                return 0
            channel = self.channels.get(sub.channel)
            if channel is None:
                park = time.time() + 60
                return 0
            state = self.store.subscription_state(sub_id)
            if state is not None and state.status == "requested":
                if not self._handshake(sub, channel, state.events):
                    park = time.time() + self._backoff(1)
                    return 0
            unrecorded: list[DeliveryOutcome] = []
            flushed = time.monotonic()

            def flush() -> bool:
                nonlocal flushed
                flushed = time.monotonic()
                if not unrecorded:
                    return True
                ok = self.store.deliveries_record(
                    sub_id, self.owner, unrecorded, time.time(), self.settings.delivery_lease_seconds
                )
                unrecorded.clear()
                return ok

            while not self._stopping.is_set():
                pending = self.store.deliveries_pending(sub_id, sub.max_count * 50)
                if not pending:
                    break
                latest = self.store.subscription_state(sub_id)
                total = latest.events if latest is not None else pending[-1].event_number
                for start in range(0, len(pending), sub.max_count):
                    chunk = pending[start : start + sub.max_count]
                    outcomes, verdict, next_try = self._send_events(sub, channel, chunk, total)
                    if verdict == "skip":
                        park = next_try
                        flush()
                        return sent
                    unrecorded.extend(outcomes)
                    # Outcomes are recorded in groups (a crash re-sends at most the last group,
                    # with the same eventNumbers: at-least-once), a failure at once.
                    if verdict == "retry" or len(unrecorded) >= 50 or time.monotonic() - flushed > 0.25:
                        if not flush():
                            return sent  # lease lost: another process has it now
                    if verdict == "retry":
                        park = next_try
                        return sent
                    if verdict == "delivered":
                        sent += len(chunk)
                if not flush():
                    return sent
            return sent
        finally:
            self.store.deliveries_release(sub_id, self.owner, park)

    def _send_events(
        self, sub: Subscription, channel: Channel, chunk: Sequence[Delivery], total: int
    ) -> tuple[list[DeliveryOutcome], str, float]:
        """Send one notification; its outcomes (not yet recorded) and the verdict: delivered,
        dead (retry budget spent: move on), retry (at ``next_try``) or skip (not ours to send)."""
        resources: dict[tuple[str, str, int], dict[str, Any]] = {}
        if sub.content == "full-resource":
            for d in chunk:
                stored = self.matcher.version(d.res_type, d.res_id, d.version if d.event != "delete" else d.version - 1)
                if stored is not None and stored.body:
                    resources[(d.res_type, d.res_id, d.version)] = orjson.loads(stored.body)
        bundle = notification(sub, self.base_url, "event-notification", total, chunk, resources)
        try:
            result = channel.send(sub, bundle, chunk, "event-notification")
        except Exception as exc:  # a channel bug must not kill the worker
            log.exception("channel %s failed on Subscription/%s", sub.channel, sub.id)
            result = Sent(False, f"{type(exc).__name__}: {exc}")
        now = time.time()
        if result.skip:
            return [], "skip", now + 0.5  # another process's (or nobody's) socket: no attempt counted
        if result.ok:
            return (
                [
                    DeliveryOutcome(d.event_number, "delivered", d.attempts + 1, now, d.first_failure, None)
                    for d in chunk
                ],
                "delivered",
                0.0,
            )
        outcomes: list[DeliveryOutcome] = []
        next_try = 0.0
        budget = self.settings.delivery_retry_hours * 3600
        for d in chunk:
            first = d.first_failure if d.first_failure is not None else now
            attempts = d.attempts + 1
            next_try = now + self._backoff(attempts)
            status = "dead" if now - first >= budget else "pending"
            outcomes.append(DeliveryOutcome(d.event_number, status, attempts, next_try, first, result.error))
        if all(o.status == "dead" for o in outcomes):
            log.warning(
                "Subscription/%s: events %s are dead letters (%s)",
                sub.id,
                [o.event_number for o in outcomes],
                result.error,
            )
            return outcomes, "dead", 0.0  # move on to the next events
        return outcomes, "retry", next_try

    def _handshake(self, sub: Subscription, channel: Channel, events: int) -> bool:
        bundle = notification(sub, self.base_url, "handshake", events, status="requested")
        try:
            result = channel.send(sub, bundle, (), "handshake")
        except Exception as exc:
            result = Sent(False, f"{type(exc).__name__}: {exc}")
        now = time.time()
        if result.skip:
            return False
        self.store.subscription_set_status(
            sub.id,
            "active" if result.ok else "requested",
            None if result.ok else f"handshake: {result.error}",
            now if result.ok else None,
        )
        return result.ok

    def housekeeping(self) -> None:
        """Handshakes of new subscriptions without events yet, and heartbeats of quiet ones."""
        now = time.time()
        subs = {s.id: s for s in self.matcher.subscriptions()}
        for state in self.store.subscription_states():
            sub = subs.get(state.sub_id)
            if sub is None or sub.status == "off" or state.lease_until >= now or sub.channel not in self.channels:
                continue
            wants_handshake = state.status == "requested"
            wants_heartbeat = sub.heartbeat > 0 and state.status == "active" and now - state.last_sent >= sub.heartbeat
            if not (wants_handshake or wants_heartbeat):
                continue
            if not self.store.deliveries_claim(self.owner, now, self.settings.delivery_lease_seconds, 1, [sub.id]):
                continue
            park = 0.0
            try:
                channel = self.channels[sub.channel]
                if wants_handshake:
                    if not self._handshake(sub, channel, state.events):
                        park = now + self._backoff(2)
                    continue
                bundle = notification(sub, self.base_url, "heartbeat", state.events)
                result = channel.send(sub, bundle, (), "heartbeat")
                if result.skip:
                    continue
                self.store.subscription_set_status(
                    sub.id, "active" if result.ok else "error", result.error, now if result.ok else None
                )
            except Exception:
                log.exception("heartbeat of Subscription/%s failed", sub.id)
            finally:
                self.store.deliveries_release(sub.id, self.owner, park)

    def bound_websocket(self, sub_id: str) -> None:
        """A websocket was bound to ``sub_id`` here: its handshake and its waiting events go out
        now, through the delivery worker that leases it (so in order, handshake first)."""
        if self.store.subscription_state(sub_id) is None:
            return
        self.store.subscription_set_status(sub_id, "requested", None, None)
        self.store.deliveries_retry(sub_id, [], time.time())  # no dead letters named: unparks it
        self._wake_delivery.set()

    # -- threads ----------------------------------------------------------------------------
    def notify(self, *_: object) -> None:
        """After a commit in this process (AFTER_COMMIT): fan out now."""
        if self._subscription_written:
            self._subscription_written = False
            self.matcher.invalidate()
        self._wake_fan_out.set()

    def saw_write(self, ctx: object, resource_type: str, *_: object) -> None:
        """BEFORE_WRITE: a Subscription is being written; the registry is read again after its commit."""
        if resource_type == "Subscription":
            self._subscription_written = True

    def start(self) -> None:
        """Run the fan-out (or Redis consumer) and the delivery workers in background threads."""
        if self._redis is not None:
            self._ensure_group()
        self._spawn("yaolian-fan-out", self._fan_out_loop)
        for i in range(self.settings.delivery_workers):
            self._spawn(f"yaolian-delivery-{i}", self._delivery_loop)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _fan_out_loop(self) -> None:
        last_housekeeping = 0.0
        while not self._stopping.is_set():
            try:
                if self._redis is not None:
                    self.consume_once(block_ms=int(self.settings.delivery_poll_seconds * 1000))
                else:
                    if self._wake_fan_out.wait(self.settings.delivery_poll_seconds):
                        # gather the commits of the next moments into one fan-out transaction
                        self._stopping.wait(0.05)
                    self._wake_fan_out.clear()
                    while self.fan_out_once() and not self._stopping.is_set():
                        pass
                if time.monotonic() - last_housekeeping >= 1.0 and self.matcher.wanted():
                    last_housekeeping = time.monotonic()
                    self.housekeeping()
            except Exception:
                log.exception("subscription fan-out failed; retrying")
                self._stopping.wait(1.0)

    def _delivery_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.deliver_once():
                    continue
            except Exception:
                log.exception("subscription delivery failed; retrying")
            self._wake_delivery.wait(self.settings.delivery_poll_seconds)
            self._wake_delivery.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._wake_fan_out.set()
        self._wake_delivery.set()
        for thread in self._threads:
            thread.join(timeout=15)
        for channel in self.channels.values():
            channel.close()
        if self._redis is not None and (self.relay is None or self._redis is not self.relay._redis):
            self._redis.close()
