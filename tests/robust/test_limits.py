"""Issue 12: hostile input and limits. One test (or a few) per numbered point of the issue, on
both backends over a real gateway (HTTP through the ASGI app, HL7 v2 over a real MLLP socket).

Each limit is set small here so the attacks stay small and fast; the defaults are in
gateway/settings.py and docs/deployment.md "## Limits"."""

from __future__ import annotations

import contextvars
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))
from ingest_support import END, GOLDEN, START, Gateway, ack_fields, start_gateway

LIMITS: dict[str, Any] = {
    "max_body_bytes": 200_000,
    "max_search_params": 20,
    "max_search_values": 50,
    "mllp_max_frame": 300_000,
    "max_findings_per_code": 5,
    "mllp_idle_timeout": 0.5,
    "mllp_max_connections": 40,
    "mllp_max_connections_per_address": 8,
}
RDE = sorted((GOLDEN / "RDE_O11").glob("*.hl7"))[0].read_bytes()


@pytest.fixture(scope="module")
def gw(module_database_url: str) -> Iterator[Gateway]:
    yield from start_gateway(module_database_url, **LIMITS)


def _message(control_id: str, extra: bytes = b"") -> bytes:
    segments = RDE.rstrip(b"\r").split(b"\r")
    fields = segments[0].split(b"|")
    fields[9] = control_id.encode()
    segments[0] = b"|".join(fields)
    return b"\r".join(segments) + b"\r" + extra


def _codes(response: Any) -> list[str]:
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return [c["code"] for i in outcome["issue"] for c in i.get("details", {}).get("coding", [])]


def _still_answers(gw: Gateway) -> None:
    started = time.monotonic()
    assert gw.http.get("/fhir/metadata").status_code == 200
    ack = gw.send(_message(f"ok-{time.monotonic_ns()}"))
    assert ack_fields(ack)["MSA"][0][1] == "AA", ack
    assert time.monotonic() - started < 2.0


def _count(gw: Gateway, resource_type: str, **params: str) -> int:
    response = gw.http.get(f"/fhir/{resource_type}", params={**params, "_total": "accurate", "_count": "0"})
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


# -- 1. MLLP amplification -------------------------------------------------------------------


def test_1_findings_per_message_are_bounded(gw: Gateway) -> None:
    """Each unused NTE field is a finding; the ACK (and the journal) keep the first N per code
    and a count of the rest."""
    control_id = f"flood-{time.monotonic_ns()}"
    flood = b"NTE|" + b"|x" * 20_000 + b"\r"  # 20,000 unused fields (information findings)
    flood += b"ZZ1|" + b"|\\Z\\" * 2_000 + b"\r"  # 2,000 escapes not understood (warnings)
    ack = gw.send(_message(control_id, flood))
    assert len(ack) < 20_000, len(ack)
    assert b"YL-0804" in ack, ack[:2000]  # the warnings left out are counted in the ACK
    entry = gw.http.app.state.ingest.journal.find("hl7v2", control_id)  # type: ignore[attr-defined]
    assert entry is not None and len(entry.outcome) < 50_000, len(entry.outcome)
    assert entry.outcome.count(b"YL-0804") == 2
    _still_answers(gw)


def test_1_a_big_message_does_not_stall_another_sender(gw: Gateway) -> None:
    flood = b"NTE|" + b"|x" * 140_000 + b"\r"  # ~280 KB, under the frame limit
    done: dict[str, float] = {}

    def big() -> None:
        started = time.monotonic()
        gw.send(_message(f"big-{time.monotonic_ns()}", flood))
        done["big"] = time.monotonic() - started

    thread = threading.Thread(target=big)
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    ack = gw.send(_message(f"small-{time.monotonic_ns()}"))
    small = time.monotonic() - started
    thread.join(30)
    assert ack_fields(ack)["MSA"][0][1] == "AA"
    assert small < 1.0, (small, done)


def test_1_an_oversized_frame_is_answered_ar_naming_the_limit(gw: Gateway) -> None:
    client = gw.mllp()
    try:
        ack = client.send(_message("huge-1", b"NTE|" + b"y" * 400_000 + b"\r"))
        msa = ack_fields(ack)["MSA"][0]
        assert msa[1] == "AR", ack
        assert b"YL-0803" in ack and b"mllp_max_frame" in ack
        # the connection stays usable
        assert ack_fields(client.send(_message(f"after-huge-{time.monotonic_ns()}")))["MSA"][0][1] == "AA"
    finally:
        client.close()
    _still_answers(gw)


# -- 2. Search cost ----------------------------------------------------------------------------


def test_2_repeated_identical_parameters_are_deduplicated(gw: Gateway) -> None:
    started = time.monotonic()
    response = gw.http.get("/fhir/Patient?" + "&".join(["name=S"] * 150))
    assert response.status_code == 200, response.text[:500]
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "query",
    [
        "name=" + ",".join(f"v{i}" for i in range(10_000)),  # 10,000 OR values
        "&".join(f"name=v{i}" for i in range(2_000)),  # 2,000 AND parameters
        "&".join(f"name=v{i}" for i in range(21)),  # one over max_search_params
    ],
    ids=["or-values", "and-params", "one-over"],
)
def test_2_too_many_search_parameters_or_values_is_a_400_naming_the_limit(gw: Gateway, query: str) -> None:
    response = gw.http.get(f"/fhir/Patient?{query}")
    assert response.status_code == 400, response.text[:500]
    assert "YL-0801" in _codes(response)
    assert "max_search_" in response.text
    _still_answers(gw)


def test_2_repeated_sort_keys_are_sorted_on_once() -> None:
    from gateway.search.query import parse_search

    query = parse_search(
        "Patient", [("_sort", "name,-birthdate,-name,birthdate,name")], strict=True, default_count=5, max_count=9
    )
    assert [(k.param.code, k.descending) for k in query.sort] == [("name", False), ("birthdate", True)]


def test_2_statement_timeout_cancels_a_long_query(database_url: str) -> None:
    from gateway.store.base import QueryTimeout
    from gateway.store.sql import open_store

    store = open_store(database_url, statement_timeout_ms=200)
    store.create_schema()
    slow = (
        "SELECT pg_sleep(5)"
        if store.dialect == "postgresql"
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    started = time.monotonic()
    try:
        with pytest.raises(QueryTimeout), store.bounded() as conn:
            conn.exec_driver_sql(slow).all()
        assert time.monotonic() - started < 2.0
        # the connection went back to the pool fit for use
        with store.bounded() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        store.dispose()


def test_2_the_timeout_is_one_budget_for_all_statements_of_a_read(fresh_postgres: str) -> None:
    """A page and its count share the limit; a request's deadline caps every read it makes."""
    from gateway.store.base import Cancellation, QueryTimeout, cancellable
    from gateway.store.sql import open_store

    store = open_store(fresh_postgres, statement_timeout_ms=500)
    store.create_schema()
    try:
        started = time.monotonic()
        with pytest.raises(QueryTimeout), store.bounded() as conn:
            conn.exec_driver_sql("SELECT pg_sleep(0.3)").all()
            store.renew(conn)
            conn.exec_driver_sql("SELECT pg_sleep(0.3)").all()
        assert time.monotonic() - started < 0.55
        store.statement_timeout_ms = 60_000
        token = Cancellation()
        token.deadline = time.monotonic() + 0.4
        started = time.monotonic()
        with pytest.raises(QueryTimeout), cancellable(token), store.bounded() as conn:
            conn.exec_driver_sql("SELECT pg_sleep(2)").all()
        assert time.monotonic() - started < 0.6
    finally:
        store.dispose()


def test_2_a_read_stops_when_its_client_leaves(database_url: str) -> None:
    """The api's ``reading`` cancels the request's Cancellation on disconnect; the query stops."""
    from concurrent.futures import ThreadPoolExecutor

    from gateway.store.base import Cancellation, QueryTimeout, cancellable
    from gateway.store.sql import open_store

    store = open_store(database_url, statement_timeout_ms=60_000)
    store.create_schema()
    slow = (
        "SELECT pg_sleep(20)"
        if store.dialect == "postgresql"
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )

    def read() -> None:
        with store.bounded() as conn:
            conn.exec_driver_sql(slow).all()

    token = Cancellation()
    try:
        with ThreadPoolExecutor(1) as pool:
            with cancellable(token):
                running = pool.submit(contextvars.copy_context().run, read)
            time.sleep(0.3)
            started = time.monotonic()
            token.cancel()
            with pytest.raises(QueryTimeout):
                running.result(10)
            assert time.monotonic() - started < 1.5
        with pytest.raises(QueryTimeout), cancellable(token), store.bounded():
            pass  # a cancelled request starts no more reads
    finally:
        store.dispose()


def test_2_a_cancelled_query_is_a_400_naming_the_setting(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.store.base import QueryTimeout

    def slow(*_args: Any, **_kwargs: Any) -> Any:
        raise QueryTimeout(200)

    monkeypatch.setattr(gw.http.app.state.store, "search", slow)  # type: ignore[attr-defined]
    response = gw.http.get("/fhir/Patient?name=x")
    assert response.status_code == 400, response.text[:300]
    assert "YL-0802" in _codes(response) and "statement_timeout_ms" in response.text


# -- 3. Connections ----------------------------------------------------------------------------


def test_3_an_idle_or_half_sent_mllp_connection_is_closed(gw: Gateway) -> None:
    for opening in (b"", START + b"MSH|"):
        sock = socket.create_connection(("127.0.0.1", gw.mllp_port), timeout=5)
        try:
            sock.sendall(opening)
            started = time.monotonic()
            assert sock.recv(1024) == b""  # the server closed it
            assert time.monotonic() - started < 3.0
        finally:
            sock.close()


def test_3_mllp_connections_per_address_are_capped(gw: Gateway) -> None:
    socks = [socket.create_connection(("127.0.0.1", gw.mllp_port), timeout=5) for _ in range(12)]
    try:
        closed = 0
        for sock in socks[8:]:
            sock.settimeout(0.3)
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, ConnectionError):
                closed += 0
        assert closed == 4
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.1)
    _still_answers(gw)


def test_3_http_body_over_the_limit_is_a_413_and_nothing_is_stored(gw: Gateway) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:big", "value": "big-body"}]}
    body["name"] = [{"text": "x" * 250_000}]
    headers = {"content-type": "application/fhir+json"}
    response = gw.http.post("/fhir/Patient", content=orjson.dumps(body), headers=headers)
    assert response.status_code == 413, response.text[:300]
    assert "YL-0800" in _codes(response)
    assert _count(gw, "Patient", identifier="urn:big|big-body") == 0


def test_3_bundle_entries_are_capped(module_database_url: str) -> None:
    for gateway in start_gateway(module_database_url, max_bundle_entries=3):
        entry = {
            "resource": {"resourceType": "Basic", "code": {"text": "b"}},
            "request": {"method": "POST", "url": "Basic"},
        }
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 4}
        response = gateway.http.post("/fhir", json=bundle)
        assert response.status_code == 400, response.text[:300]
        assert "YL-0801" in _codes(response) and "max_bundle_entries" in response.text


# -- 4. 500 where a 4xx belongs -------------------------------------------------------------------


def test_4_a_huge_version_number_is_a_404(gw: Gateway) -> None:
    created = gw.http.post("/fhir/Patient", json={"resourceType": "Patient"})
    pid = created.json()["id"]
    response = gw.http.get(f"/fhir/Patient/{pid}/_history/99999999999999999999999")
    assert response.status_code == 404, response.text[:300]


def test_4_an_id_with_a_nul_is_a_404(gw: Gateway) -> None:
    response = gw.http.get("/fhir/Patient/abc%00def")
    assert response.status_code == 404, response.text[:300]
    response = gw.http.get("/fhir/Patient/abc%00def/_history/1")
    assert response.status_code == 404, response.text[:300]


def test_4_a_100000_digit_decimal_is_a_4xx(gw: Gateway) -> None:
    body = b'{"resourceType":"Observation","status":"final","code":{"text":"huge"},'
    body += b'"valueQuantity":{"value":' + b"9" * 100_000 + b"}}"
    response = gw.http.post("/fhir/Observation", content=body, headers={"content-type": "application/fhir+json"})
    assert 400 <= response.status_code < 500, response.text[:300]
    assert _count(gw, "Observation", **{"code:text": "huge"}) == 0


@pytest.mark.parametrize("number", ["1e30", "-1e30", "99999999999999999999999999", "1e-400"])
def test_4_numbers_outside_the_index_range_are_stored_and_searched_alike(gw: Gateway, number: str) -> None:
    """The index holds NUMERIC(38, 12); a value past it saturates there instead of a 500 on
    PostgreSQL (SQLite took it), and so does a search value."""
    body = '{"resourceType":"Observation","status":"final","code":{"text":"big"},"valueQuantity":{"value":%s}}'
    response = gw.http.post(
        "/fhir/Observation", content=body % number, headers={"content-type": "application/fhir+json"}
    )
    assert response.status_code == 201, response.text[:300]
    assert number in gw.http.get(response.headers["location"]).text  # stored as sent
    for value in (number, "1e999999", "-1e-99999", "ge1e40", "lt-1e40"):
        found = gw.http.get("/fhir/Observation", params={"value-quantity": value})
        assert found.status_code == 200, found.text[:300]


@pytest.mark.parametrize("char", ["\u0000", "\u0001", "\u001f", "\u000b"])
def test_4_control_characters_in_strings_are_refused_on_both_backends(gw: Gateway, char: str) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:ctl", "value": f"ctl{ord(char)}"}]}
    body["name"] = [{"family": f"a{char}b"}]
    response = gw.http.post("/fhir/Patient", json=body)
    assert response.status_code == 422, response.text[:300]  # like every structurally invalid resource
    assert "YL-0113" in _codes(response) and "Patient.name[0].family" in response.text
    assert _count(gw, "Patient", identifier=f"urn:ctl|ctl{ord(char)}") == 0


def test_4_control_characters_from_hl7v2_and_in_search_values_are_refused(gw: Gateway) -> None:
    # \X00\ is HL7 v2's hex escape of a NUL: the adapter decodes it, the write path refuses it
    unique = str(time.monotonic_ns())[-18:].rjust(18, "1").encode()  # a new patient, so her name is written
    message = _message(f"nul-{time.monotonic_ns()}").replace(b"140423195811022124", unique, 1)
    message = message.replace("赵^秀兰".encode(), "赵\\X00\\^秀兰".encode(), 1)
    ack = gw.send(message)
    assert ack_fields(ack)["MSA"][0][1] in ("AE", "AR"), ack
    assert b"YL-0113" in ack
    response = gw.http.get("/fhir/Patient?name=a%00b")
    assert response.status_code == 400 and "YL-0113" in _codes(response)


def test_4_tab_cr_lf_stay_allowed(gw: Gateway) -> None:
    response = gw.http.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"text": "a\tb\r\nc"}]})
    assert response.status_code == 201, response.text[:300]
    assert gw.http.get(response.headers["location"], headers={"accept": "application/fhir+xml"}).status_code == 200


# -- 5. Conditional create serialised by meaning --------------------------------------------------


def test_5_the_conditional_lock_is_taken_on_the_meaning_of_the_criteria() -> None:
    from gateway.hooks import Hooks, RequestContext
    from gateway.service.writes import Writer

    class Recorder:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def lock(self, key: str) -> None:
            self.keys.append(key)

        def match_token(self, *_args: Any, **_kwargs: Any) -> list[str]:
            return []

        def search_ids(self, *_args: Any) -> list[str]:
            return []

    writer = Writer(Hooks(), "off", None)
    context = RequestContext(base_url="http://limits/fhir")
    spellings = [
        "identifier=S|V",
        "identifier=S|V&identifier=S|V",
        "identifier=S%7CV",
        "identifier=S|V,S|V",
        "identifier=S|V&_count=5",
    ]
    keys = set()
    for criteria in spellings:
        tx = Recorder()
        writer.matching_ids(tx, context, "Patient", criteria)  # type: ignore[arg-type]
        keys.update(tx.keys)
    assert len(keys) == 1, keys
    other = Recorder()
    writer.matching_ids(other, context, "Patient", "identifier=S|W")  # type: ignore[arg-type]
    assert other.keys[0] not in keys


def test_5_concurrent_conditional_creates_with_two_spellings_make_one_resource(gw: Gateway) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for round_number in range(4):
        value = f"V{round_number}-{time.monotonic_ns()}"
        spellings = [f"identifier=urn:cc|{value}", f"identifier=urn:cc|{value}&identifier=urn:cc|{value}"]
        body = {"resourceType": "Patient", "identifier": [{"system": "urn:cc", "value": value}]}

        def create(criteria: str, body: dict[str, Any] = body) -> int:
            return gw.http.post("/fhir/Patient", json=body, headers={"If-None-Exist": criteria}).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(create, spellings * 2))
        assert all(s in (200, 201) for s in statuses), statuses
        assert _count(gw, "Patient", identifier=f"urn:cc|{value}") == 1


# -- 6. Duplicate JSON keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"resourceType":"Patient","gender":"male","gender":"female"}', "gender"),
        (b'{"resourceType":"Patient","name":[{"family":"A","family":"B"}]}', "family"),
    ],
)
def test_6_duplicate_json_keys_are_refused_naming_the_key(gw: Gateway, body: bytes, key: str) -> None:
    response = gw.http.post("/fhir/Patient", content=body, headers={"content-type": "application/fhir+json"})
    assert response.status_code == 400, response.text[:300]
    assert "YL-0114" in _codes(response)
    assert key in response.text


# -- 7. Startup race -------------------------------------------------------------------------------

_CREATE = (
    "import sys; from gateway.store.sql import open_store;s = open_store(sys.argv[1]); s.create_schema(); s.dispose()"
)


def test_7_workers_creating_the_schema_at_once_do_not_crash(new_postgres_url: Any, tmp_path: Path) -> None:
    urls = [new_postgres_url() for _ in range(3)] + [f"sqlite:///{tmp_path / f'race{i}.sqlite'}" for i in range(3)]
    for url in urls:
        procs = [subprocess.Popen([sys.executable, "-c", _CREATE, url], stderr=subprocess.PIPE) for _ in range(4)]
        errors = [(p.returncode, p.communicate(timeout=60)[1].decode()[-500:]) for p in procs]
        errors = [(p.returncode, err) for p, (_, err) in zip(procs, errors, strict=True)]
        assert all(code == 0 for code, _ in errors), errors


def test_7_serve_creates_the_schema_before_forking_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from gateway.cli import app as cli

    database = tmp_path / "serve.sqlite"
    seen: dict[str, bool] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.setdefault("schema", database.exists()))
    result = CliRunner().invoke(cli, ["serve", "--database", f"sqlite:///{database}", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert seen == {"schema": True}


# -- 8. Host header --------------------------------------------------------------------------------


def test_8_an_unknown_host_header_is_refused_when_no_base_url_is_set(gw: Gateway) -> None:
    response = gw.http.post("/fhir/Patient", json={"resourceType": "Patient"}, headers={"host": "evil.example"})
    assert response.status_code == 400, (response.status_code, response.headers.get("location"))
    assert "YL-0806" in _codes(response)
    assert "evil.example" not in response.headers.get("location", "")
    search = gw.http.get("/fhir/Patient", headers={"host": "evil.example"})
    assert search.status_code == 400 and "evil.example/" not in search.text
    assert gw.http.get("/fhir/Patient", headers={"host": "localhost:8080"}).status_code == 200


# -- 10. File permissions --------------------------------------------------------------------------


def test_10_the_sqlite_store_is_created_owner_only(tmp_path: Path) -> None:
    from gateway.store.sql import open_store

    var = tmp_path / "var"
    store = open_store(f"sqlite:///{var / 'yaolian.sqlite'}")
    store.create_schema()
    store.dispose()
    assert stat.S_IMODE(os.stat(var).st_mode) == 0o700
    for path in var.iterdir():
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path


# -- end: the gateway still answers ---------------------------------------------------------------


def test_the_gateway_still_answers_after_all_of_it(gw: Gateway) -> None:
    _still_answers(gw)


__all__ = ["END"]
