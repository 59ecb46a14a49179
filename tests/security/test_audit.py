"""The audit trail (issue 11): every read, search, write and MLLP message leaves a hash-chained
AuditEvent; writes commit theirs in their own transaction, reads before their answer is sent;
``yaolian audit verify`` names an edited, deleted or re-ordered record; pruning keeps the chain
verifiable; auditors (admin, regulator) search by patient, client and period. Both backends."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.hooks import Hooks, Pointcut, RequestContext
from gateway.principal import Principal, Role, parse_scopes
from gateway.security import audit
from gateway.settings import Settings
from gateway.store.base import AuditRecord
from gateway.store.sql import open_store

PRINCIPALS = {
    "clinic": Principal("clinic-7", "Village clinic 7", Role.MEMBER, "M007", parse_scopes("system/*.rs"), "10.0.0.7"),
    "auditor": Principal("reg-1", "Health bureau", Role.REGULATOR, None, parse_scopes("system/*.rs"), "10.0.0.9"),
    "admin": Principal("admin-1", "Alliance admin", Role.ADMIN, None, parse_scopes("system/*.cruds")),
}


def _as_header(ctx: RequestContext) -> None:
    """Tests say who they are in a header (the token engineer's hook does this for real)."""
    name = ctx.extra["headers"].get("x-test-principal")
    if name:
        ctx.principal = PRINCIPALS[name]


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    hooks = Hooks()
    hooks.register(Pointcut.REQUEST_RECEIVED, _as_header)
    app = create_app(Settings(database=database_url, validation_mode="lenient"), hooks=hooks)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def rows(url: str, client: TestClient | None = None) -> list[dict[str, Any]]:
    """The audit table as the database has it now (committed rows only); with ``client``, once
    its gateway has chained what its audit spool holds (as an auditor's search does first)."""
    if client is not None:
        client.app.state.audit.flush()  # type: ignore[attr-defined]
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT * FROM audit_log ORDER BY seq")).mappings().all()
            return [{**r, "event": orjson.loads(bytes(r["event"]))} for r in found]
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def patient(client: TestClient, family: str = "王") -> str:
    response = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": family}]},
        headers={"x-test-principal": "clinic"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_write_commits_its_record_with_it(client: TestClient, database_url: str) -> None:
    pid = patient(client)
    created = [r for r in rows(database_url, client) if r["action"] == "create"]
    assert len(created) == 1
    record = created[0]
    assert record["client_id"] == "clinic-7" and record["member"] == "M007" and record["patients"] == pid
    event = record["event"]
    assert event["action"] == "C" and event["outcome"]["code"]["code"] == "0"
    assert {"reference": f"Patient/{pid}"} in [e.get("what") for e in event["entity"]]
    assert event["agent"][0]["networkString"] == "10.0.0.7"
    # a write that fails writes nothing, and its refusal is recorded as a failure
    before = len(rows(database_url, client))
    bad = client.put(f"/fhir/Patient/{pid}", json={"resourceType": "Observation", "id": pid})
    assert bad.status_code == 400
    after = rows(database_url, client)
    assert len(after) == before + 1 and after[-1]["outcome"] == "4" and after[-1]["action"] == "update"


def test_a_write_rolled_back_takes_its_record_with_it(client: TestClient, database_url: str) -> None:
    """A transaction Bundle whose second entry fails: neither write nor their records stay."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Patient", "name": [{"family": "李"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"request": {"method": "DELETE", "url": "Patient?_bogus=1"}},
        ],
    }
    response = client.post("/fhir", json=bundle)
    assert response.status_code >= 400
    assert [r["action"] for r in rows(database_url, client)] == ["transaction"]  # only the failure
    assert rows(database_url, client)[0]["outcome"] == "4"


def test_a_read_is_durable_before_its_answer(client: TestClient, database_url: str) -> None:
    pid = patient(client)
    response = client.get(f"/fhir/Patient/{pid}", headers={"x-test-principal": "clinic"})
    assert response.status_code == 200
    # right after the call returned, before anything chained it, the record is in the spool
    spool = client.app.state.audit.spool  # type: ignore[attr-defined]
    spooled = (spool.directory / spool.name).read_bytes().splitlines()
    assert audit.record_of_line(spooled[-1]).action == "read"
    assert audit.record_of_line(spooled[-1]).patients == (pid,)
    last = rows(database_url, client)[-1]
    assert last["action"] == "read" and last["patients"] == pid and last["outcome"] == "0"
    assert last["event"]["code"]["coding"][0]["code"] == "read" and last["event"]["action"] == "R"
    # a search records the patients shown and its query
    client.post(
        "/fhir/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "bp"},
            "subject": {"reference": f"Patient/{pid}"},
        },
    )
    response = client.get("/fhir/Observation?code:text=bp", headers={"x-test-principal": "clinic"})
    assert response.json()["total"] == 1
    last = rows(database_url, client)[-1]
    assert last["action"] == "search-type" and last["patients"] == pid
    query = next(e for e in last["event"]["entity"] if "query" in e)
    assert base64.b64decode(query["query"]).decode() == "Observation?code:text=bp"
    # a refused look is recorded too, with the patient it was about
    missing = client.get("/fhir/Patient/nobody", headers={"x-test-principal": "clinic"})
    assert missing.status_code == 404
    last = rows(database_url, client)[-1]
    assert last["outcome"] == "4" and last["patients"] == "nobody" and last["client_id"] == "clinic-7"
    # history too
    client.get(f"/fhir/Patient/{pid}/_history")
    assert rows(database_url, client)[-1]["action"] == "history-instance"
    assert _verify(database_url).ok


def _fill(url: str, n: int = 12) -> None:
    store = open_store(url)
    store.create_schema()
    try:
        committer = audit.GroupCommitter(store)
        for i in range(n):
            record = audit._record("read", "0", PRINCIPALS["clinic"], "10.0.0.7", [f"p{i % 3}"])
            committer.commit(record)
        committer.close()
    finally:
        store.dispose()


def _verify(url: str) -> audit.VerifyReport:
    store = open_store(url)
    try:
        return audit.verify(store, batch=5)
    finally:
        store.dispose()


def test_verify_passes_and_names_an_edited_record(database_url: str) -> None:
    _fill(database_url)
    report = _verify(database_url)
    assert report.ok and report.checked == 12 and report.head_seq == 12
    execute(database_url, "UPDATE audit_log SET client_id = 'someone-else' WHERE seq = 7")
    report = _verify(database_url)
    assert [p.seq for p in report.problems] == [7] and "edited" in report.problems[0].reason


def test_verify_names_an_edited_event_even_with_its_hash_recomputed(database_url: str) -> None:
    _fill(database_url)
    store = open_store(database_url)
    try:
        row = store.audit_rows(4, 1)[0]
    finally:
        store.dispose()
    forged = AuditRecord(row.recorded, row.client_id, row.member, row.action, row.outcome, row.patients, b"{}")
    digest = audit.audit_hash(row.prev_hash, 5, forged)
    event = "X'7b7d'" if "sqlite" in database_url else "'\\x7b7d'::bytea"
    execute(database_url, f"UPDATE audit_log SET event = {event}, hash = '{digest}' WHERE seq = 5")
    problems = _verify(database_url).problems
    assert [p.seq for p in problems] == [6] and "record 5 was replaced" in problems[0].reason


def test_verify_names_a_record_hidden_from_the_patient_search(database_url: str) -> None:
    _fill(database_url)
    execute(database_url, "DELETE FROM audit_patient WHERE seq = 8")
    problems = _verify(database_url).problems
    assert [p.seq for p in problems] == [8] and "patient index" in problems[0].reason


def test_verify_names_a_deleted_record(database_url: str) -> None:
    _fill(database_url)
    execute(database_url, "DELETE FROM audit_log WHERE seq = 4")
    problems = _verify(database_url).problems
    assert [p.seq for p in problems] == [5] and "4 before it are missing: deleted" in problems[0].reason
    execute(database_url, "DELETE FROM audit_log WHERE seq = 1")
    assert [p.seq for p in _verify(database_url).problems] == [2, 5]


def test_verify_detects_reordered_records(database_url: str) -> None:
    _fill(database_url)
    execute(
        database_url,
        "UPDATE audit_log SET seq = -1 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 8",
        "UPDATE audit_log SET seq = 8 WHERE seq = -1",
    )
    problems = _verify(database_url).problems
    assert [p.seq for p in problems] == [3, 4, 8, 9]
    assert "re-ordered" in problems[0].reason


def test_prune_keeps_the_chain_verifiable_and_respects_retention(database_url: str) -> None:
    _fill(database_url)
    execute(database_url, "UPDATE audit_log SET recorded = '2020-01-01T00:00:00.000000Z' WHERE seq <= 5")
    store = open_store(database_url)
    try:
        with pytest.raises(ValueError, match="retention"):
            audit.prune(store, "2099-01-01", retention_days=183)
        anchor = audit.prune(store, "2021-01-01", retention_days=183)
        assert anchor is not None and anchor.seq == 5 and anchor.pruned == 5
        assert [r.seq for r in store.audit_rows(0, 100)] == list(range(6, 13))
        report = audit.verify(store)
        assert report.ok and report.checked == 7
        # appending after a prune of everything continues from the anchor
        audit.prune(store, "2021-01-01", retention_days=183)  # nothing left that old: no-op
        execute(database_url, "UPDATE audit_log SET recorded = '2020-01-01T00:00:00.000000Z'")
        anchor = audit.prune(store, "2021-01-01", retention_days=183)
        assert anchor is not None and anchor.seq == 12 and anchor.pruned == 12
        with store.transaction() as tx:
            tx.audit_append([audit._record("read", "0", None, None, [])])
        assert [r.seq for r in store.audit_rows(0, 10)] == [13]
        assert audit.verify(store).ok
    finally:
        store.dispose()
    # deleting the first record after the anchor is still found
    _fill(database_url, 2)
    execute(database_url, "DELETE FROM audit_log WHERE seq = 13")
    assert [p.seq for p in _verify(database_url).problems] == [14]


def test_cli_verify_and_prune(database_url: str) -> None:
    from gateway.cli import app

    _fill(database_url)
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "verify", "--database", database_url])
    assert result.exit_code == 0, result.output
    assert "12 records" in result.output
    result = runner.invoke(app, ["audit", "prune", "--before", "2099-01-01", "--database", database_url])
    assert result.exit_code == 2 and "retention" in result.output
    execute(database_url, "UPDATE audit_log SET event = event || event WHERE seq = 9")
    result = runner.invoke(app, ["audit", "verify", "--database", database_url])
    assert result.exit_code == 1
    assert "record 9" in result.output and "edited" in result.output


def forged_event() -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "code": {"text": "forged"},
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"who": {"display": "someone"}}],
        "source": {"observer": {"display": "elsewhere"}},
    }


def test_auditors_search_by_patient_client_and_period(client: TestClient, database_url: str) -> None:
    from fhir.resources.bundle import Bundle

    first, second = patient(client, "张"), patient(client, "赵")
    client.get(f"/fhir/Patient/{first}", headers={"x-test-principal": "clinic"})
    client.get(f"/fhir/Patient/{second}", headers={"x-test-principal": "admin"})
    refused = client.get("/fhir/AuditEvent", headers={"x-test-principal": "clinic"})
    assert refused.status_code == 403
    assert client.get("/fhir/AuditEvent").status_code == 200  # insecure-dev runs as admin (401 with auth on)
    assert client.post("/fhir/AuditEvent", json={"resourceType": "AuditEvent"}).status_code == 405
    assert client.delete("/fhir/AuditEvent/1").status_code == 405
    smuggled = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": forged_event(), "request": {"method": "POST", "url": "AuditEvent"}}],
    }
    assert client.post("/fhir", json=smuggled).status_code == 403

    def search(query: str) -> dict[str, Any]:
        response = client.get(f"/fhir/AuditEvent?{query}", headers={"x-test-principal": "auditor"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        Bundle.model_validate(body)  # a valid R5 searchset, its AuditEvents included
        return body

    found = search(f"patient=Patient/{first}")
    assert found["type"] == "searchset" and found["total"] == 2  # its create and the clinic's read
    assert {e["resource"]["action"] for e in found["entry"]} == {"C", "R"}
    found = search(f"patient={second}&agent=admin-1")
    assert found["total"] == 1 and found["entry"][0]["resource"]["action"] == "R"
    recorded = found["entry"][0]["resource"]["recorded"]
    assert search(f"agent=admin-1&date=ge{recorded[:10]}")["total"] == 1
    assert search("agent=admin-1&date=lt2000-01-01")["total"] == 0
    everything = search("_count=2")
    assert len(everything["entry"]) == 2 and any(link["relation"] == "next" for link in everything["link"])
    seq = everything["entry"][0]["resource"]["id"]
    one = client.get(f"/fhir/AuditEvent/{seq}", headers={"x-test-principal": "auditor"})
    assert one.status_code == 200 and one.json()["id"] == seq
    # the auditors' own searches are recorded too
    assert rows(database_url, client)[-1]["client_id"] == "reg-1"


def test_the_patients_of_an_mllp_message_are_recorded(database_url: str) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "ingest"))
    from ingest_support import GOLDEN, start_gateway

    message = sorted(GOLDEN.glob("**/*.hl7"))[0].read_bytes()
    for gateway in start_gateway(database_url):
        ack = gateway.send(message.replace(b"\n", b"\r"))
        assert b"MSA|AA" in ack or b"MSA|CA" in ack, ack
        again = gateway.send(message.replace(b"\n", b"\r"))  # a resend: answered from the journal
        assert b"MSA|AA" in again or b"MSA|CA" in again, again
    found = [r for r in rows(database_url) if r["action"] == "mllp"]
    assert len(found) == 2
    record, resend = found
    assert (
        resend["patients"] == "" and "resent after it was accepted" in resend["event"]["outcome"]["detail"][0]["text"]
    )
    assert resend["event"]["entity"][0]["detail"] == record["event"]["entity"][-1]["detail"]  # the same MSH-10
    stored = open_store(database_url)
    try:
        patients = [r.res_id for r in stored.history("Patient", None, since=None, at=None, count=10, offset=0)[0]]
    finally:
        stored.dispose()
    assert patients and record["patients"].split() == patients
    event = record["event"]
    assert event["category"][0]["coding"][0]["code"] == "110107" and event["outcome"]["code"]["code"] == "0"
    assert any(e.get("detail") for e in event["entity"])
    assert [r["action"] for r in rows(database_url)].count("create") == 0  # the message's one record
    assert _verify(database_url).ok


def test_audit_off_records_nothing(database_url: str) -> None:
    app = create_app(Settings(database=database_url, audit=False))
    with TestClient(app) as client:
        pid = patient(client)
        client.get(f"/fhir/Patient/{pid}")
        assert client.get("/fhir/AuditEvent").status_code == 404
    assert rows(database_url) == []


def test_a_savepoint_rolled_back_drops_the_records_appended_in_it(sql_store: Any) -> None:
    record = audit._record("mllp", "0", None, None, ["p1"])
    with sql_store.transaction() as tx:
        tx.audit_append([record])
        with tx.savepoint() as savepoint:
            tx.audit_append([record, record])
            savepoint.rollback()
            tx.audit_append([audit._record("mllp", "4", None, None, ["p2"])])
        with pytest.raises(RuntimeError), tx.savepoint():
            tx.audit_append([record])
            raise RuntimeError("a bug in one message of the group")
    kept = sql_store.audit_rows(0, 10)
    assert [(r.seq, r.outcome, r.patients) for r in kept] == [(1, "0", ("p1",)), (2, "4", ("p2",))]
    assert audit.verify(sql_store).ok


def test_a_rejected_mllp_message_is_recorded_as_a_failure(database_url: str) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "ingest"))
    from ingest_support import GOLDEN, start_gateway

    message = (GOLDEN / "RDE_O11" / "escapes.hl7").read_bytes().replace(b"|||6|BX", b"|||six|BX")
    for gateway in start_gateway(database_url):
        ack = gateway.send(message)
        assert b"MSA|AE" in ack, ack
    found = rows(database_url)
    assert [(r["action"], r["outcome"]) for r in found] == [("mllp", "4")]
    assert found[0]["event"]["outcome"]["detail"] == [{"text": "rejected"}]
    written = [e for e in found[0]["event"].get("entity", []) if "/_history/" in e.get("what", {}).get("reference", "")]
    assert written == []  # its writes were undone


def test_the_gateway_audits_again_after_a_restart_of_its_lifespan(database_url: str) -> None:
    app = create_app(Settings(database=database_url))
    for _ in range(2):
        with TestClient(app) as client:
            assert client.get("/fhir/Patient/nobody").status_code == 404
    assert [r["outcome"] for r in rows(database_url)] == ["4", "4"]


def test_a_read_answered_is_recorded_even_if_the_gateway_is_killed_right_after(
    database_url: str, tmp_path: Path
) -> None:
    """Read records are committed before the response leaves (audit_read_durability "commit",
    the default: without waiting for the flush to disk); a kill -9 of the gateway right after
    an answer loses none of them. Over a real socket, in a process of its own, both backends."""
    import os
    import signal
    import socket
    import subprocess
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "YAOLIAN_INSECURE_DEV": "1", "YAOLIAN_DATABASE": database_url, "YAOLIAN_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--insecure-dev"]
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/fhir"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        created = httpx.post(f"{base}/Patient", json={"resourceType": "Patient", "gender": "female"}, timeout=10)
        pid = created.json()["id"]
        answered = [httpx.get(f"{base}/Patient/{pid}", timeout=10).status_code for _ in range(20)]
        assert answered == [200] * 20
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    # what the killed gateway had not chained waits in its spool; verify chains it first
    verified = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    reads = [r for r in rows(database_url) if r["action"] == "read" and r["patients"] == pid]
    assert len(reads) == 20
    assert _verify(database_url).ok
