"""MLLP senders bound to members (issue 11 §4): a connection is bound by its address (or client
certificate); a message runs for the member its MSH-4 names, and is refused with AR and kept as
a dead letter when that member is not the connection's, or when an order claims another member.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, the gateway's certificate for 127.0.0.1 and a client certificate for member A."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def issue_cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, Any] | None, **ext: Any) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer[0] if issuer else subject))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        )
        if "san" in ext:
            builder = builder.add_extension(x509.SubjectAlternativeName(ext["san"]), critical=False)
        return builder.sign(issuer[1] if issuer else key, hashes.SHA256())

    files: dict[str, Path] = {}

    def save(label: str, cert: Any, key: ec.EllipticCurvePrivateKey) -> None:
        files[f"{label}.crt"] = folder / f"{label}.crt"
        files[f"{label}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{label}.key"] = folder / f"{label}.key"
        files[f"{label}.key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue_cert("Yaolian test CA", ca_key, None)
    save("ca", ca, ca_key)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    save(
        "server",
        issue_cert(
            "127.0.0.1",
            server_key,
            ("Yaolian test CA", ca_key),
            san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ),
        server_key,
    )
    save("client", issue_cert(A, client_key, ("Yaolian test CA", ca_key)), client_key)
    return files


def _send_tls(port: int, context: Any, message: bytes) -> bytes:
    import socket

    with (
        socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"\x0b" + message + b"\x1c\r")
        reply = b""
        while b"\x1c\r" not in reply:
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            reply += chunk
        return bytes(reply[1 : reply.index(b"\x1c\r")])


def test_over_tls_the_client_certificate_names_the_member(database_url: str, tmp_path: Path) -> None:
    import ssl

    files = _certificates(tmp_path)
    settings = {
        "insecure_dev": False,
        "mllp_tls_cert": str(files["server.crt"]),
        "mllp_tls_key": str(files["server.key"]),
        "mllp_client_ca": str(files["ca.crt"]),
    }
    for gateway in start_gateway(database_url, **settings):
        port = gateway.mllp_port

        trusted = ssl.create_default_context(cafile=str(files["ca.crt"]))
        with_cert = ssl.create_default_context(cafile=str(files["ca.crt"]))
        with_cert.load_cert_chain(str(files["client.crt"]), str(files["client.key"]))
        assert code(_send_tls(port, with_cert, as_sender(MESSAGE, A, "TLS1"))) == "AA"
        assert code(_send_tls(port, with_cert, as_sender(MESSAGE, B, "TLS2"))) == "AR"  # the certificate names A
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _send_tls(port, trusted, as_sender(MESSAGE, A, "TLS3"))  # no client certificate: no connection
        journal = gateway.http.app.state.ingest.journal  # type: ignore[attr-defined]
        assert journal.find("hl7v2", "TLS3") is None
