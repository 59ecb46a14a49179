"""Servers for the conformance kit's own tests: a fresh Yaolian over real HTTP, and broken ones.

Each server is uvicorn in a thread on a free port with its own temporary SQLite database. The
broken servers are plain ASGI wrappers around a Yaolian app that break one thing each.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.settings import Settings

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    def __init__(self, app: Any, *, lifespan: str = "on") -> None:
        self.port = _free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan, ws="none"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def yaolian_app(tmp: Path, name: str, **settings: Any) -> Any:
    options = dict(settings)  # the defaults of `yaolian serve` (lenient validation) unless a test says otherwise
    return create_app(Settings(database=f"sqlite:///{tmp / name}.sqlite", **options))


class Rewrite:
    """An ASGI wrapper that may change the request (scope, body) and the buffered response."""

    def __init__(
        self,
        app: Any,
        request: Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]] | None = None,
        response: Callable[
            [dict[str, Any], int, list[tuple[bytes, bytes]], bytes], tuple[int, list[tuple[bytes, bytes]], bytes]
        ]
        | None = None,
    ) -> None:
        self.app, self.on_request, self.on_response = app, request, response

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.on_request:
            scope, body = self.on_request(dict(scope), body)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    status, headers, out = start["status"], list(start.get("headers", [])), b"".join(chunks)
                    if self.on_response:
                        status, headers, out = self.on_response(scope, status, headers, out)
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(out)).encode()))
                    await send({"type": "http.response.start", "status": status, "headers": headers})
                    await send({"type": "http.response.body", "body": out})

        await self.app(scope, replay, capture)


# --- the breakages ---------------------------------------------------------------------------------
def ignore_parameter(name: str) -> Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]]:
    """A search that silently ignores one parameter (GET query and POST _search form)."""

    def drop(query: bytes) -> bytes:
        return urlencode([(k, v) for k, v in parse_qsl(query.decode()) if k != name]).encode()

    def request(scope: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        scope["query_string"] = drop(scope.get("query_string", b""))
        if scope["path"].endswith("/_search"):
            body = drop(body)
        return scope, body

    return request


def drop_element(type_: str, element: str) -> Callable[..., Any]:
    """A read that loses one element."""

    def response(scope: dict[str, Any], status: int, headers: list[Any], body: bytes) -> tuple[int, list[Any], bytes]:
        parts = scope["path"].strip("/").split("/")
        if scope["method"] == "GET" and status == 200 and len(parts) == 3 and parts[1] == type_:
            data = json.loads(body)
            data.pop(element, None)
            body = json.dumps(data).encode()
        return status, headers, body

    return response


def status_swap(method: str, old: int, new: int) -> Callable[..., Any]:
    """Wrong status codes: e.g. 200 instead of 201 on create, 404 instead of 410 on a deleted read."""

    def response(scope: dict[str, Any], status: int, headers: list[Any], body: bytes) -> tuple[int, list[Any], bytes]:
        return (new if scope["method"] == method and status == old else status), headers, body

    return response


def no_outcome(scope: dict[str, Any], status: int, headers: list[Any], body: bytes) -> tuple[int, list[Any], bytes]:
    """Errors as a framework's default `{"detail": …}` instead of an OperationOutcome."""
    if status >= 400:
        headers = [(k, v) for k, v in headers if k.lower() != b"content-type"] + [
            (b"content-type", b"application/json")
        ]
        return status, headers, json.dumps({"detail": "error"}).encode()
    return status, headers, body


@pytest.fixture(scope="session")
def conformance_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(scope="session")
def yaolian(conformance_tmp: Path) -> Iterator[ServerThread]:
    """A freshly started Yaolian with the default settings of `yaolian serve`, over real HTTP."""
    with ServerThread(yaolian_app(conformance_tmp, "yaolian")) as server:
        yield server


@pytest.fixture(scope="session")
def broken_base(conformance_tmp: Path) -> Iterator[Any]:
    """One Yaolian app shared by the broken wrappers (its lifespan runs in this server)."""
    app = yaolian_app(conformance_tmp, "broken", validation_mode="strict")
    with ServerThread(app):
        yield app


@pytest.fixture
def broken_server(broken_base: Any) -> Callable[[Any], ServerThread]:
    started: list[ServerThread] = []

    def start(wrapper: Callable[[Any], Any]) -> ServerThread:
        server = ServerThread(wrapper(broken_base), lifespan="off").__enter__()
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.__exit__()


def reachable(url: str) -> bool:
    return httpx.get(url + "/metadata", timeout=5).status_code == 200
