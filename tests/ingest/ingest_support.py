"""Helpers of the ingest tests, imported by path (tests/ are not packages): a real gateway -
the FastAPI app with its MLLP listener on a free TCP port, started by the app's own lifespan -
on SQLite and on PostgreSQL, and a small MLLP client."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings

START, END = b"\x0b", b"\x1c\r"
GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "hl7v2"
SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "hl7v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MllpClient:
    """One TCP connection; ``send`` frames a message and returns the ACK frame's payload."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buffer = b""

    def send(self, message: bytes) -> bytes:
        self.sock.sendall(START + message + END)
        return self.receive()

    def receive(self) -> bytes:
        while END not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("MLLP peer closed the connection")
            self.buffer += chunk
        frame, self.buffer = self.buffer.split(END, 1)
        assert frame.startswith(START), frame[:20]
        return frame[1:]

    def close(self) -> None:
        self.sock.close()


@dataclass
class Gateway:
    http: TestClient
    mllp_port: int
    database: str

    def mllp(self) -> MllpClient:
        return MllpClient(self.mllp_port)

    def send(self, message: bytes) -> bytes:
        client = self.mllp()
        try:
            return client.send(message)
        finally:
            client.close()


def start_gateway(database: str, **settings: object) -> Iterator[Gateway]:
    port = free_port()
    app = create_app(Settings(database=database, mllp_port=port, validation_mode="lenient", **settings))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as http:
        yield Gateway(http, port, database)


def ack_fields(ack: bytes, encoding: str = "utf-8") -> dict[str, list[list[str]]]:
    """Segments of an ACK by name: ``{"MSA": [[...fields...]], "ERR": [...]}``."""
    out: dict[str, list[list[str]]] = {}
    for line in ack.decode(encoding).split("\r"):
        if line:
            fields = line.split("|")
            out.setdefault(fields[0], []).append(fields)
    return out
