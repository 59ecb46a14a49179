"""Group commit (``IngestPipeline.ingest_many``), on SQLite and PostgreSQL: messages stored by one
commit still get one outcome each. A rejected message rolls back only its own resources and is
kept; a copy of a message later in the same group is a duplicate; a message that crashes the
pipeline gets no ACK and takes nobody else with it; over MLLP, concurrent senders are answered
from shared commits."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.errors import Unprocessable, issue
from gateway.hooks import Pointcut, RequestContext
from gateway.ingest.journal import Journal
from gateway.ingest.mllp import hl7_reply
from gateway.ingest.pipeline import IngestPipeline
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.sql import SqlStore

sys.path.insert(0, str(Path(__file__).parent))
from ingest_support import GOLDEN, Gateway, ack_fields

CTX = RequestContext(base_url="http://group/fhir", interaction="mllp")
TEMPLATE = (GOLDEN / "RDE_O11" / "complete-extended-longterm.hl7").read_bytes()
RX_NO = "urn:oid:2.16.156.10011.1.20"


def message(tag: str) -> bytes:
    """The complete prescription with its own control id, prescription number and visit."""
    return (
        TEMPLATE.replace(b"|GH0010|", f"|G{tag}|".encode())
        .replace(b"RX20251107000101", f"RXG{tag}".encode())
        .replace(b"MZ2025110700101", f"MZG{tag}".encode())
        .replace(b"RX9101^", f"RXP{tag}^".encode())
    )


def broken(tag: str) -> bytes:
    """Converts with an error (an impossible order date), so it is rejected before storing."""
    return message(tag).replace(b"|||||20251107082500|", b"|||||20251345990000|")


@pytest.fixture
def store(sql_store: SqlStore) -> SqlStore:
    return sql_store


@pytest.fixture
def pipeline(store: SqlStore) -> IngestPipeline:
    return IngestPipeline(FhirService(store, Settings(database="sqlite://")), Journal(store))


def codes(results: list[Any]) -> list[str]:
    return [ack_fields(r.reply)["MSA"][0][1] if r.reply else "" for r in results]


def prescriptions(pipeline: IngestPipeline, number: str) -> int:
    store = pipeline.service.store
    with store.transaction() as tx:
        return len(tx.match_token("MedicationRequest", "identifier", RX_NO, number, limit=10))


def stored(pipeline: IngestPipeline, resource_type: str) -> int:
    with pipeline.service.store.transaction() as tx:
        query = text("SELECT count(*) FROM resources WHERE res_type = :t")
        return int(tx.conn.execute(query, {"t": resource_type}).scalar_one())


def test_each_message_of_a_group_gets_its_own_outcome(pipeline: IngestPipeline) -> None:
    group = [message("A1"), broken("B1"), message("A1"), message("C1")]
    results = pipeline.ingest_many("hl7v2", group, channel="mllp", ctx=CTX, reply=hl7_reply)
    assert codes(results) == ["AA", "AE", "AA", "AA"]
    assert results[2].duplicate and results[2].reply == results[0].reply
    assert prescriptions(pipeline, "RXGA1") == 1 and prescriptions(pipeline, "RXGC1") == 1
    journal = pipeline.journal
    assert journal.find("hl7v2", "GA1").status == "accepted"  # type: ignore[union-attr]
    rejected = journal.find("hl7v2", "GB1")
    assert rejected is not None and rejected.status == "rejected" and rejected.raw == group[1]
    assert journal.counts() == {"accepted": 2, "rejected": 1}


def test_a_rejected_store_rolls_back_only_its_own_resources(pipeline: IngestPipeline) -> None:
    def refuse(_ctx: Any, resource_type: str, data: Any, _existing: Any) -> None:
        if resource_type == "MedicationRequest" and "RXGR2" in str(data):
            raise Unprocessable([issue("YL-0207", reason="refused by a test hook")])

    pipeline.service.hooks.register(Pointcut.BEFORE_WRITE, refuse)
    group = [message("A2"), message("R2"), message("C2")]
    results = pipeline.ingest_many("hl7v2", group, channel="mllp", ctx=CTX, reply=hl7_reply)
    assert codes(results) == ["AA", "AE", "AA"]
    assert prescriptions(pipeline, "RXGR2") == 0
    assert prescriptions(pipeline, "RXGA2") == 1 and prescriptions(pipeline, "RXGC2") == 1
    # the refused message's Encounter (written before its MedicationRequest) was rolled back
    assert stored(pipeline, "Encounter") == 2
    assert pipeline.journal.find("hl7v2", "GR2").status == "rejected"  # type: ignore[union-attr]


def test_a_message_that_crashes_gets_no_ack_and_spares_the_group(
    pipeline: IngestPipeline, caplog: pytest.LogCaptureFixture
) -> None:
    def crash(_ctx: Any, resource_type: str, data: Any, _existing: Any) -> None:
        if resource_type == "MedicationRequest" and "RXGX3" in str(data):
            raise RuntimeError("a bug, not bad input")

    pipeline.service.hooks.register(Pointcut.BEFORE_WRITE, crash)
    group = [message("A3"), message("X3"), message("C3")]
    results = pipeline.ingest_many("hl7v2", group, channel="mllp", ctx=CTX, reply=hl7_reply)
    assert codes(results) == ["AA", "", "AA"]
    assert pipeline.journal.find("hl7v2", "GX3") is None  # not kept: the sender resends it
    assert prescriptions(pipeline, "RXGA3") == 1 and prescriptions(pipeline, "RXGC3") == 1
    assert "could not be processed" in caplog.text


def test_a_resend_in_a_later_group_gets_the_first_ack(pipeline: IngestPipeline) -> None:
    first = pipeline.ingest_many("hl7v2", [message("A4")], channel="mllp", ctx=CTX, reply=hl7_reply)
    again = pipeline.ingest_many("hl7v2", [message("B4"), message("A4")], channel="mllp", ctx=CTX, reply=hl7_reply)
    assert again[1].duplicate and again[1].reply == first[0].reply
    assert prescriptions(pipeline, "RXGA4") == 1


def test_concurrent_senders_over_mllp_are_all_answered(gateway: Gateway) -> None:
    """Eight connections sending at once: every message ACKed AA once and stored once."""
    replies: dict[str, bytes] = {}

    def send(sender: int) -> None:
        client = gateway.mllp()
        try:
            for n in range(5):
                tag = f"M{sender}{n}"
                replies[tag] = client.send(message(tag))
        finally:
            client.close()

    threads = [threading.Thread(target=send, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(replies) == 40
    assert all(ack_fields(r)["MSA"][0][1] == "AA" for r in replies.values())
    for tag in ("M00", "M34", "M74"):
        found = gateway.http.get("/fhir/MedicationRequest", params={"identifier": f"{RX_NO}|RXG{tag}"}).json()
        assert found["total"] == 1


def test_staged_messages_are_applied_under_the_lock(pipeline: IngestPipeline) -> None:
    """Prepared with a context, a Bundle runs against a read snapshot first; under the lock its
    reads are checked and its writes applied - the stored result is that of the ordinary run."""
    warm = pipeline.ingest_many("hl7v2", [message("W5")], channel="mllp", ctx=CTX, reply=hl7_reply)
    assert codes(warm) == ["AA"]
    prepared = [pipeline.prepare("hl7v2", message(tag), CTX) for tag in ("A5", "B5")]
    assert all(p.write is not None and p.write.staged is not None for p in prepared)
    assert all(p.write.staged.writes for p in prepared)  # type: ignore[union-attr]
    results = pipeline.store_group("hl7v2", prepared, channel="mllp", ctx=CTX, reply=hl7_reply)
    assert codes(results) == ["AA", "AA"]
    assert prescriptions(pipeline, "RXGA5") == 1 and prescriptions(pipeline, "RXGB5") == 1
    assert stored(pipeline, "Patient") == 1 and stored(pipeline, "Encounter") == 3


def test_a_staged_message_whose_reads_changed_is_run_again(pipeline: IngestPipeline) -> None:
    """Both staged before anything was stored, so both planned to create the patient; the
    second finds under the lock that the first created it, and is run the ordinary way."""
    prepared = [pipeline.prepare("hl7v2", message(tag), CTX) for tag in ("A6", "B6")]
    assert all(p.write is not None and p.write.staged is not None for p in prepared)
    creates = [[w.stored.res_type for w in p.write.staged.writes] for p in prepared]  # type: ignore[union-attr]
    assert all("Patient" in c for c in creates)
    results = pipeline.store_group("hl7v2", prepared, channel="mllp", ctx=CTX, reply=hl7_reply)
    assert codes(results) == ["AA", "AA"]
    assert stored(pipeline, "Patient") == 1 and stored(pipeline, "Practitioner") == 1
    assert prescriptions(pipeline, "RXGA6") == 1 and prescriptions(pipeline, "RXGB6") == 1


def test_write_hooks_run_once_inside_the_transaction(pipeline: IngestPipeline) -> None:
    """Staging records the hooks with the writes; they run when the writes are applied, in the
    committing transaction, exactly once per write - never while preparing."""
    calls: list[tuple[str, str, bool]] = []

    def before(_ctx: Any, resource_type: str, data: Any, _existing: Any) -> None:
        calls.append(("before", resource_type, False))
        if resource_type == "MedicationRequest" and "RXGR7" in str(data):
            raise Unprocessable([issue("YL-0207", reason="refused by a test hook")])

    def after(_ctx: Any, tx: Any, stored_resource: Any) -> None:
        calls.append(
            (
                "after",
                stored_resource.res_type,
                tx.current(stored_resource.res_type, stored_resource.res_id) is not None,
            )
        )

    pipeline.service.hooks.register(Pointcut.BEFORE_WRITE, before)
    pipeline.service.hooks.register(Pointcut.AFTER_WRITE_IN_TX, after)
    prepared = [pipeline.prepare("hl7v2", message(tag), CTX) for tag in ("A7", "R7")]
    assert calls == [] and all(p.write is not None and p.write.staged is not None for p in prepared)
    results = pipeline.store_group("hl7v2", prepared, channel="mllp", ctx=CTX, reply=hl7_reply)
    assert codes(results) == ["AA", "AE"] and "refused by a test hook" in results[1].reply.decode()  # type: ignore[union-attr]
    written = len(prepared[0].write.staged.writes)  # type: ignore[union-attr]
    first = calls[: 2 * written]
    assert [c[0] for c in first] == ["before", "after"] * written
    assert all(seen for kind, _, seen in first if kind == "after")  # the write is visible in the transaction
    assert stored(pipeline, "Encounter") == 1 and prescriptions(pipeline, "RXGR7") == 0
