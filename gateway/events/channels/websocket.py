"""The websocket channel (R5 ``bind-with-token``).

A subscriber asks ``Subscription/{id}/$get-ws-binding-token`` (authenticated, its own
subscription only) and gets a short-lived token, signed with a server key every gateway process
shares; it opens the websocket (``/fhir/ws``) and sends ``bind-with-token: TOKEN``. The
gateway answers a handshake and from then on sends each notification Bundle as a text frame.

Sockets live in one process. A process asked to deliver for a subscription whose socket is
bound elsewhere (or nowhere) lets go of it without counting an attempt (:attr:`Sent.skip`):
events wait, in order and numbered, until a socket is bound, and ``$events`` replays what a
client missed while disconnected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from gateway.events.channels import Sent
from gateway.events.subscriptions import Subscription
from gateway.store.base import Delivery, Store

Sender = Callable[[str], None]


class WebSocketChannel:
    def __init__(self, store: Store, token_seconds: int = 3600) -> None:
        self.store = store
        self.token_seconds = token_seconds
        self._secret: bytes | None = None
        self._sockets: dict[str, dict[int, Sender]] = {}
        self._lock = threading.Lock()

    # -- binding tokens ------------------------------------------------------------------------
    def _key(self) -> bytes:
        if self._secret is None:
            self._secret = self.store.server_key("subscription-ws-binding", lambda: secrets.token_hex(32)).encode()
        return self._secret

    def token(self, sub_id: str) -> tuple[str, int]:
        expires = int(time.time()) + self.token_seconds
        payload = f"{sub_id}|{expires}|{secrets.token_hex(8)}".encode()
        mac = hmac.new(self._key(), payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(payload + b"|" + mac).decode().rstrip("="), expires

    def verify(self, token: str) -> str | None:
        """The subscription a valid, unexpired token binds to."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload, mac = raw[:-33], raw[-32:]
            if raw[-33:-32] != b"|" or not hmac.compare_digest(
                mac, hmac.new(self._key(), payload, hashlib.sha256).digest()
            ):
                return None
            sub_id, expires, _ = payload.decode().split("|")
        except (ValueError, UnicodeDecodeError):
            return None
        return sub_id if int(expires) >= time.time() else None

    # -- sockets ---------------------------------------------------------------------------------
    def bind(self, sub_id: str, sender: Sender) -> int:
        handle = id(sender)
        with self._lock:
            self._sockets.setdefault(sub_id, {})[handle] = sender
        return handle

    def unbind(self, sub_id: str, handle: int) -> None:
        with self._lock:
            self._sockets.get(sub_id, {}).pop(handle, None)

    def bound(self, sub_id: str) -> bool:
        with self._lock:
            return bool(self._sockets.get(sub_id))

    def send(self, sub: Subscription, bundle: dict[str, Any], events: Sequence[Delivery], kind: str) -> Sent:
        with self._lock:
            senders = list(self._sockets.get(sub.id, {}).items())
        if not senders:
            return Sent(False, "no websocket bound in this process", skip=True)
        text = orjson.dumps(bundle).decode()
        delivered = False
        for handle, sender in senders:
            try:
                sender(text)
                delivered = True
            except Exception:  # a closed socket: forget it
                self.unbind(sub.id, handle)
        return Sent(True) if delivered else Sent(False, "the websocket closed", skip=True)

    def close(self) -> None:
        with self._lock:
            self._sockets.clear()
