"""Delivery channels: each sends one notification (a list of events) for one subscription.

A channel answers :class:`Sent`; a failure is retried by the dispatcher with back-off until the
subscription's retry budget is spent. Channels are looked up by the Subscription's
``channelType`` code (:data:`CHANNELS` is filled by the dispatcher).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.events.subscriptions import Subscription
from gateway.store.base import Delivery


@dataclass(frozen=True)
class Sent:
    ok: bool
    error: str | None = None
    #: what the receiver answered that the gateway keeps (the insurance channel's numbers)
    reply: dict[str, Any] = field(default_factory=dict)
    #: not this process's to send (a websocket bound to another process): no attempt counted
    skip: bool = False


class Channel(Protocol):
    def send(self, sub: Subscription, bundle: dict[str, Any], events: Sequence[Delivery], kind: str) -> Sent:
        """Send one notification (``kind``: event-notification | handshake | heartbeat)."""
        ...

    def close(self) -> None: ...
