"""MLLP senders bound to members (issue 11 §4): a connection is bound by its address (or client
certificate); a message runs for the member its MSH-4 names, and is refused with AR and kept as
a dead letter when that member is not the connection's, or when an order claims another member.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway.security.policy import owner_tag
from gateway.security.senders import SenderAllowList, certificate_member, message_claims, refusals

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))
from ingest_support import GOLDEN, Gateway, ack_fields, start_gateway

MESSAGE = (GOLDEN / "RDE_O11" / "complete-extended-longterm.hl7").read_bytes()
A, B = "XHZXWSY", "XYXRMYY"


def as_sender(message: bytes, facility: str, tag: str) -> bytes:
    """The message sent by ``facility``, with its own control id."""
    return message.replace(b"|GENERIC_HIS|XHZXWSY|", f"|GENERIC_HIS|{facility}|".encode(), 1).replace(
        b"|GH0010|", f"|{tag}|".encode(), 1
    )


def test_the_allow_list_binds_addresses_to_members() -> None:
    allow = SenderAllowList.parse(f"{A}=127.0.0.1,10.1.0.0/16; {B}=10.1.2.3")
    assert allow.members_at("127.0.0.1") == {A}
    assert allow.members_at("10.1.2.3") == {A, B}
    assert allow.members_at("10.2.0.1") == frozenset() and allow.members_at("not an address") == frozenset()
    with pytest.raises(ValueError):
        SenderAllowList.parse("no-equals-sign")


def test_what_a_message_claims() -> None:
    assert message_claims(MESSAGE) == (A, [A])
    assert refusals(MESSAGE, frozenset({A})) == []
    [wrong_sender] = refusals(MESSAGE, frozenset({B}))
    assert (
        wrong_sender.error_code == "YL-0273"
        and wrong_sender.severity == "fatal"
        and wrong_sender.expression == ("MSH-4",)
    )
    claims_other = MESSAGE.replace(b"ORC|NW|RX9101^XHZXWSY|", f"ORC|NW|RX9101^{B}|".encode())
    [wrong_order] = refusals(claims_other, frozenset({A}))
    assert wrong_order.error_code == "YL-0274" and wrong_order.expression == ("ORC-2.2",)
    assert certificate_member({"subject": ((("countryName", "CN"),), (("commonName", A),))}) == A


@pytest.fixture
def bound(database_url: str) -> Iterator[Gateway]:
    """Access control on; this test's connections (127.0.0.1) are bound to member A."""
    yield from start_gateway(database_url, insecure_dev=False, mllp_senders=f"{A}=127.0.0.1")


def code(ack: bytes) -> str:
    return ack_fields(ack)["MSA"][0][1]


def test_a_bound_sender_writes_its_own_members_records(bound: Gateway) -> None:
    ack = bound.send(as_sender(MESSAGE, A, "OWN1"))
    assert code(ack) == "AA", ack
    journal = bound.http.app.state.ingest.journal  # type: ignore[attr-defined]
    entry = journal.find("hl7v2", "OWN1")
    assert entry is not None and entry.status == "accepted"
    store = bound.http.app.state.service.store  # type: ignore[attr-defined]
    with store.transaction() as tx:
        [rid] = tx.match_token(
            "MedicationRequest", "identifier", "urn:oid:2.16.156.10011.1.20", "RX20251107000101", limit=2
        )
    stored = store.read("MedicationRequest", rid)
    assert owner_tag(orjson.loads(stored.body)) == A


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (as_sender(MESSAGE, B, "OTHER1"), "YL-0273"),
        (as_sender(MESSAGE, A, "OTHER2").replace(b"ORC|NW|RX9101^XHZXWSY|", f"ORC|NW|RX9101^{B}|".encode()), "YL-0274"),
    ],
)
def test_a_message_for_another_member_is_refused_with_ar_and_kept(bound: Gateway, message: bytes, error: str) -> None:
    ack = bound.send(message)
    assert code(ack) == "AR" and len(ack_fields(ack)["ERR"]) == 1 and error in ack.decode(), ack
    journal = bound.http.app.state.ingest.journal  # type: ignore[attr-defined]
    dead = [e for e in journal.dead_letters("hl7v2") if e.raw == message]
    assert len(dead) == 1 and dead[0].status == "rejected" and error.encode() in (dead[0].outcome or b"")
    store = bound.http.app.state.service.store  # type: ignore[attr-defined]
    with store.transaction() as tx:  # nothing of it was stored
        assert (
            tx.match_token(
                "Encounter", "identifier", f"http://yaolian.org/fhir/sid/{A}/visit-number", "MZ2025110700101", limit=2
            )
            == []
        )


def test_a_connection_bound_to_no_member_is_closed(database_url: str) -> None:
    for gateway in start_gateway(database_url, insecure_dev=False, mllp_senders=f"{A}=10.9.9.9"):
        client = gateway.mllp()
        try:
            with pytest.raises((ConnectionError, OSError)):
                client.send(as_sender(MESSAGE, A, "NOBODY1"))
        finally:
            client.close()
        assert gateway.http.app.state.ingest.journal.find("hl7v2", "NOBODY1") is None  # type: ignore[attr-defined]
