"""Request-size limits at the HTTP boundary (issue 12).

:class:`BodyLimit` is a pure ASGI middleware: a body announced (Content-Length) or streamed
beyond ``max_body_bytes`` makes the handler's ``await request.body()`` raise
:class:`~gateway.errors.PayloadTooLarge`, which ``gateway.api.errors`` answers 413 with an
OperationOutcome naming the setting. At most ``limit`` bytes are ever buffered, and nothing is
stored: the handler fails before it parses anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import PayloadTooLarge

SETTING = "max_body_bytes"


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge("YL-0800", limit=limit, setting=SETTING)


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        announced = _content_length(scope)
        received = 0

        async def bounded() -> Message:
            nonlocal received
            if announced is not None and announced > limit:
                raise too_large(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, bounded, send)


def _content_length(scope: Mapping[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
