"""Issue 12: a fuzz and abuse suite over real sockets, on both backends.

A real gateway per backend: uvicorn serving the app on a free TCP port (so HTTP bodies stream,
clients disconnect, Host headers are forged like on the wire) with its MLLP listener on another.
For every input: no 5xx, no hang beyond its limit, a normal request still answered within 1 s,
and nothing stored from a refused request (each attack carries a marker identifier that a
search must not find when the answer was a refusal)."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))
from ingest_support import END, GOLDEN, START, ack_fields, free_port

from gateway.app import create_app
from gateway.settings import Settings

LIMITS: dict[str, Any] = {
    "max_body_bytes": 100_000,
    "max_search_params": 20,
    "max_search_values": 50,
    "statement_timeout_ms": 2_000,
    "mllp_max_frame": 200_000,
    "mllp_idle_timeout": 0.5,
    "mllp_convert_timeout": 3.0,
    "mllp_max_connections": 30,
    "mllp_max_connections_per_address": 10,
}
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RDE = sorted((GOLDEN / "RDE_O11").glob("*.hl7"))[0].read_bytes()


@dataclass
class Live:
    base: str
    http: httpx.Client
    mllp_port: int
    app: Any

    def healthy(self) -> None:
        """A normal request on each channel is answered within 1 s."""
        started = time.monotonic()
        response = self.http.get("/fhir/Patient", params={"_count": "1"})
        assert response.status_code == 200, response.text[:300]
        with socket.create_connection(("127.0.0.1", self.mllp_port), timeout=5) as sock:
            sock.sendall(START + _message(f"ok-{time.monotonic_ns()}") + END)
            ack = _receive(sock)
        assert ack_fields(ack)["MSA"][0][1] == "AA", ack
        assert time.monotonic() - started < 1.0, time.monotonic() - started

    def stored(self, marker: str) -> int:
        found = self.http.get("/fhir/Patient", params={"identifier": f"urn:abuse|{marker}", "_total": "accurate"})
        assert found.status_code == 200, found.text[:300]
        return int(found.json()["total"])


@pytest.fixture(scope="module")
def live(module_database_url: str) -> Iterator[Live]:
    port, mllp_port = free_port(), free_port()
    app = create_app(
        Settings(database=module_database_url, port=port, mllp_port=mllp_port, validation_mode="lenient", **LIMITS)
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        yield Live(base, client, mllp_port, app)
    server.should_exit = True
    thread.join(20)


def _message(control_id: str, extra: bytes = b"") -> bytes:
    segments = RDE.rstrip(b"\r").split(b"\r")
    fields = segments[0].split(b"|")
    fields[9] = control_id.encode()
    segments[0] = b"|".join(fields)
    return b"\r".join(segments) + b"\r" + extra


def _receive(sock: socket.socket) -> bytes:
    buffer = b""
    while END not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    return buffer.split(END, 1)[0][1:]


def _marker() -> str:
    return f"m{time.monotonic_ns()}"


# -- HTTP ----------------------------------------------------------------------------------------

nasty_text = st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Cc", "Zs"]), max_size=20)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        nasty_text,
        st.sampled_from(["9" * 150, "1e99999", "-0.00000000000000000000001"]).map(lambda s: _Raw(s)),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["family", "given", "text", "value"]), inner)
    ),
    max_leaves=6,
)


class _Raw(str):
    """A JSON number written verbatim (too long for a float or an int)."""


def _dump(value: Any) -> str:
    if isinstance(value, _Raw) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{orjson.dumps(k).decode()}:{_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return orjson.dumps(value).decode()


@st.composite
def hostile_patients(draw: st.DrawFn) -> tuple[bytes, str]:
    """A Patient with a marker identifier and hostile members: control characters, long
    numbers, duplicate keys, deep nesting, a member repeated."""
    marker = _marker()
    members = [
        '"resourceType":"Patient"',
        f'"identifier":[{{"system":"urn:abuse","value":"{marker}"}}]',
    ]
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["name", "gender", "birthDate", "extension", "active", "text", "contained"]))
        members.append(f'"{key}":{_dump(draw(json_values))}')
    if draw(st.booleans()):
        members.append(draw(st.sampled_from(['"gender":"male"', '"name":[{"family":"a","family":"b"}]'])))
    if draw(st.booleans()):
        members.append('"x":' + "[" * draw(st.integers(1, 3000)) + "]" * draw(st.integers(0, 3000)))
    return ("{" + ",".join(members) + "}").encode(), marker


@FUZZ
@given(hostile_patients())
def test_hostile_bodies_are_answered_4xx_or_stored_whole(live: Live, case: tuple[bytes, str]) -> None:
    body, marker = case
    response = live.http.post("/fhir/Patient", content=body, headers={"content-type": "application/fhir+json"})
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert live.stored(marker) == 0
    else:  # what was stored reads back in both formats
        location = response.headers["location"]
        assert live.http.get(location, headers={"accept": "application/fhir+xml"}).status_code == 200


search_keys = st.sampled_from(
    ["name", "name:exact", "identifier", "birthdate", "_id", "general-practitioner.name", "_include", "_sort",
     "_count", "_revinclude:iterate", "x\u0000", "name:contains", "_has:Observation:patient:code", "address"]
)  # fmt: skip
search_values = st.one_of(
    nasty_text,
    st.sampled_from(["ge2020", "S|V", "Patient:general-practitioner", "-name", "9" * 40, "a" * 3000]),
    st.lists(st.sampled_from(["a", "b", "S|V"]), min_size=1, max_size=80).map(",".join),
)


@FUZZ
@given(st.lists(st.tuples(search_keys, search_values), max_size=40))
def test_any_search_is_answered_within_its_limit(live: Live, params: list[tuple[str, str]]) -> None:
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params)
    started = time.monotonic()
    response = live.http.get(f"/fhir/Patient?{query}")
    assert response.status_code < 500, response.text[:500]
    assert time.monotonic() - started < LIMITS["statement_timeout_ms"] / 1000 * 3 + 1


@FUZZ
@given(
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),
)
def test_any_read_path_is_answered_without_a_5xx(live: Live, resource_id: str, version: str) -> None:
    for path in (f"Patient/{quote(resource_id, safe='')}", f"Patient/{quote(resource_id, safe='')}/_history"):
        assert live.http.get(f"/fhir/{path}").status_code < 500
    response = live.http.get(f"/fhir/Patient/{quote(resource_id, safe='')}/_history/{quote(version, safe='')}")
    assert response.status_code < 500


def test_a_streamed_body_over_the_limit_is_a_413_and_nothing_is_stored(live: Live) -> None:
    marker = _marker()
    head = f'{{"resourceType":"Patient","identifier":[{{"system":"urn:abuse","value":"{marker}"}}],"name":[{{"text":"'

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, 300 KB
        yield head.encode()
        for _ in range(300):
            yield b"x" * 1000
        yield b'"}]}'

    response = live.http.post("/fhir/Patient", content=chunks(), headers={"content-type": "application/fhir+json"})
    assert response.status_code == 413, response.text[:300]
    assert "max_body_bytes" in response.text
    assert live.stored(marker) == 0
    live.healthy()


def test_a_forged_host_never_reaches_a_link(live: Live) -> None:
    response = live.http.get("/fhir/Patient", headers={"host": "attacker.example"})
    assert response.status_code == 400 and "attacker.example/" not in response.text
    live.healthy()


def test_clients_that_leave_mid_request_do_not_stall_others(live: Live) -> None:
    port = int(live.base.rsplit(":", 1)[1])
    socks = []
    for _ in range(20):  # announce a body and never send it, or send half a request line
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 90000\r\n\r\n{")
        socks.append(sock)
    query = "&".join(f"name=v{i}" for i in range(20))
    for _ in range(5):  # a costly search, abandoned
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(f"GET /fhir/Patient?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        sock.close()
    live.healthy()
    for sock in socks:
        sock.close()
    live.healthy()


def test_a_search_stops_in_the_database_when_its_client_leaves(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search slower than the watch delay is cancelled in the database (psycopg cancel /
    sqlite3 interrupt) once its client disconnects, long before its statement timeout."""
    store = live.app.state.store
    slow = (
        "SELECT pg_sleep(30)"
        if store.dialect == "postgresql"
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    ended: list[float] = []

    def search(*_args: Any, **_kwargs: Any) -> Any:
        try:
            with store.bounded() as conn:
                conn.exec_driver_sql(slow).all()
        finally:
            ended.append(time.monotonic())

    monkeypatch.setattr(store, "statement_timeout_ms", 60_000)
    monkeypatch.setattr(store, "search", search)
    port = int(live.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /fhir/Patient?name=x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.3)
    left = time.monotonic()
    deadline = left + 10
    while not ended and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended and ended[0] - left < 3.0, ended
    monkeypatch.undo()
    live.healthy()


# -- MLLP ----------------------------------------------------------------------------------------


def _send_raw(port: int, payload: bytes, wait: float = 5.0) -> bytes | None:
    """Send bytes, return the first ACK payload, or None when the server closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(payload)
        try:
            return _receive(sock)
        except ConnectionError:
            return None


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    control = _marker()
    kind = draw(st.sampled_from(["garbage", "mutated", "flood", "no-msh", "nested-start", "huge-field", "no-start"]))
    if kind == "no-start":  # more than a frame's worth of bytes and never a frame
        return b"MSH|" * draw(st.integers(60_000, 120_000)) + START + _message(control) + END
    if kind == "garbage":
        return START + draw(st.binary(max_size=2000)).replace(END, b"") + END
    if kind == "mutated":
        message = bytearray(_message(control))
        for _ in range(draw(st.integers(1, 20))):
            message[draw(st.integers(0, len(message) - 1))] = draw(st.integers(0, 255))
        return START + bytes(message).replace(END, b"") + END
    if kind == "flood":
        field = draw(st.sampled_from([b"|x", b"|\\Z\\", b"|^~&", b"\r", b"|\\X00\\"]))
        return START + _message(control, b"NTE" + field * draw(st.integers(1000, 40_000))) + END
    if kind == "no-msh":
        return START + b"PID|1||x\r" * draw(st.integers(1, 500)) + END
    if kind == "nested-start":
        return START + START * 100 + _message(control) + END
    return START + _message(control, b"NTE|" + b"y" * draw(st.integers(150_000, 400_000))) + END


@FUZZ
@given(hostile_frames())
def test_any_frame_is_answered_or_closed_in_time_and_others_are_not_stalled(live: Live, frame: bytes) -> None:
    started = time.monotonic()
    ack = _send_raw(live.mllp_port, frame)
    assert time.monotonic() - started < LIMITS["mllp_convert_timeout"] + 2
    if ack is not None:
        assert ack_fields(ack, "latin-1")["MSA"][0][1] in ("AA", "AE", "AR")
        assert len(ack) < 50_000
    live.healthy()


def test_slow_senders_and_idle_sockets_are_dropped_while_others_are_served(live: Live) -> None:
    idle = [socket.create_connection(("127.0.0.1", live.mllp_port), timeout=5) for _ in range(9)]
    idle[0].sendall(START + b"MSH|")  # half a frame, then silence
    live.healthy()  # the tenth connection from this address is served
    for sock in idle:
        started = time.monotonic()
        assert sock.recv(10) == b""  # closed by the server after mllp_idle_timeout
        assert time.monotonic() - started < 2
        sock.close()
    live.healthy()


def test_a_connection_flood_is_refused_beyond_the_caps(live: Live) -> None:
    socks = [socket.create_connection(("127.0.0.1", live.mllp_port), timeout=5) for _ in range(60)]
    try:
        refused = 0
        for sock in socks:
            sock.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                refused += sock.recv(1) == b""
        assert refused >= 50  # at most mllp_max_connections_per_address stay open
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.05)
    live.healthy()


def test_a_big_message_on_one_connection_does_not_stall_a_small_one(live: Live) -> None:
    big = START + _message(_marker(), b"NTE" + b"|x" * 90_000) + END
    thread = threading.Thread(target=_send_raw, args=(live.mllp_port, big, 20))
    thread.start()
    time.sleep(0.05)
    live.healthy()
    thread.join(20)


def test_the_gateway_is_healthy_after_all_of_it(live: Live) -> None:
    live.healthy()
