"""Real HTTP members on loopback: other Yaolian gateways (uvicorn in a thread, port 0), a small
R4 FHIR server written here, and members that misbehave (slow, 500, garbage, dead)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
import pytest
import uvicorn
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.commands import operator_service
from gateway.fhir.json_text import ResourceText
from gateway.settings import Settings

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
RX_NUMBER = "urn:oid:2.16.156.10011.1.20"
TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"
MEMBER = "http://yaolian.org/fhir/sid/member"


class UvicornMember:
    """A Yaolian gateway serving on 127.0.0.1 at a free port, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="error", ws="none", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the member gateway did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}/fhir"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def yaolian_member(tmp_path: Path) -> Iterator[Callable[..., UvicornMember]]:
    started: list[UvicornMember] = []

    def start(name: str = "member", **settings: Any) -> UvicornMember:
        settings.setdefault("insecure_dev", True)
        settings.setdefault("audit", False)
        settings.setdefault("database", f"sqlite:///{tmp_path / f'{name}.sqlite'}")
        member = UvicornMember(Settings(**settings))
        started.append(member)
        return member

    yield start
    for member in started:
        member.stop()


@dataclass
class TinyFhir:
    """A small FHIR server: ``MedicationRequest``/``MedicationDispense`` searches by
    ``patient.identifier`` with ``_include`` of the medication, ``metadata``; ``behaviour``
    makes it slow (``delay``), answer 500, garbage, or a wrong Bundle."""

    version: str = "4.0.1"
    resources: list[dict[str, Any]] = field(default_factory=list)
    behaviour: str = "ok"
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)
    #: The search parameters it knows; others it ignores, as a lenient server does.
    understood: frozenset[str] = frozenset({"patient.identifier", "identifier", "_include", "_count"})
    #: Whether its searchsets carry a ``self`` link naming the parameters it used.
    self_link: bool = False

    def patients_with(self, identifier: str) -> set[str]:
        system, _, value = identifier.partition("|")
        return {
            f"Patient/{r['id']}"
            for r in self.resources
            if r["resourceType"] == "Patient"
            and any(i.get("system") == system and i.get("value") == value for i in r.get("identifier", []))
        }

    def search(self, resource_type: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        values = dict(params)
        matches = [r for r in self.resources if r["resourceType"] == resource_type]
        if "patient.identifier" in values and "patient.identifier" in self.understood:
            patients = self.patients_with(values["patient.identifier"])
            matches = [r for r in matches if (r.get("subject") or {}).get("reference") in patients]
        if "identifier" in values:
            system, _, value = values["identifier"].partition("|")
            matches = [
                r
                for r in matches
                if any(i.get("system") == system and i.get("value") == value for i in r.get("identifier", []))
            ]
        if resource_type == "Patient":
            matches = patient_search(matches, values)
        entries = [{"fullUrl": f"urn:x:{m['id']}", "resource": m, "search": {"mode": "match"}} for m in matches]
        wanted: set[str] = set()
        for include in (v for k, v in params if k == "_include"):
            if include.endswith(":medication"):
                wanted |= {_medication_reference(m) for m in matches}
            elif include.endswith(":subject"):
                wanted |= {(m.get("subject") or {}).get("reference") for m in matches}
        for r in self.resources:
            if f"{r['resourceType']}/{r['id']}" in wanted:
                entries.append({"resource": r, "search": {"mode": "include"}})
        bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": entries}
        if self.self_link:
            used = [(k, v) for k, v in params if k in self.understood]
            bundle["link"] = [{"relation": "self", "url": f"http://tiny/fhir/{resource_type}?{urlencode(used)}"}]
        return bundle


def _medication_reference(record: dict[str, Any]) -> Any:
    """An R4 ``medicationReference`` or an R5 ``medication.reference``."""
    found = record.get("medicationReference") or (record.get("medication") or {}).get("reference") or {}
    return found.get("reference")


def patient_search(patients: list[dict[str, Any]], values: dict[str, str]) -> list[dict[str, Any]]:
    """``birthdate`` (exact day), ``name`` (starts-with on family, given or text), ``phone``
    (the number as given) and ``_count``, as a vendor's server answers them."""

    def names(p: dict[str, Any]) -> list[str]:
        return [
            part for n in p.get("name", []) for part in [n.get("family", ""), n.get("text", ""), *n.get("given", [])]
        ]

    if "birthdate" in values:
        patients = [p for p in patients if p.get("birthDate") == values["birthdate"]]
    if "name" in values:
        patients = [p for p in patients if any(part.startswith(values["name"]) for part in names(p) if part)]
    if "phone" in values:
        patients = [p for p in patients if any(t.get("value") == values["phone"] for t in p.get("telecom", []))]
    return patients[: int(values.get("_count", "100"))]


class _Handler(BaseHTTPRequestHandler):
    fhir: TinyFhir

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        fhir = self.server.fhir  # type: ignore[attr-defined]
        fhir.requests.append(self.path)
        if fhir.delay:
            time.sleep(fhir.delay)
        parts = urlsplit(self.path)
        resource_type = parts.path.rstrip("/").rsplit("/", 1)[-1]
        if fhir.behaviour == "500":
            return self._send(500, b'{"resourceType":"OperationOutcome"}')
        if fhir.behaviour == "garbage":
            return self._send(200, b"<html>Service Unavailable</html>", "text/html")
        if fhir.behaviour == "wrong-bundle":
            return self._send(200, b'{"resourceType":"Bundle","type":"transaction-response","entry":[]}')
        if fhir.behaviour == "endless":
            return self._endless()
        if resource_type == "metadata":
            body: dict[str, Any] = {"resourceType": "CapabilityStatement", "fhirVersion": fhir.version}
        else:
            body = fhir.search(resource_type, parse_qsl(parts.query))
        self._send(200, json.dumps(body).encode())

    def do_POST(self) -> None:
        """A batch Bundle of GET searches (what Yaolian asks an R5 member for)."""
        fhir = self.server.fhir  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        fhir.requests.append("POST batch")
        if fhir.delay:
            time.sleep(fhir.delay)
        if fhir.behaviour == "500":
            return self._send(500, b'{"resourceType":"OperationOutcome"}')
        if fhir.behaviour == "garbage":
            return self._send(200, b"<html>Service Unavailable</html>", "text/html")
        if fhir.behaviour == "wrong-bundle":
            return self._send(200, b'{"resourceType":"Bundle","type":"transaction-response","entry":[]}')
        results = []
        for entry in body.get("entry", []):
            parts = urlsplit(entry["request"]["url"])
            searchset = fhir.search(parts.path.rsplit("/", 1)[-1], parse_qsl(parts.query))
            results.append({"resource": searchset, "response": {"status": "200 OK"}})
        self._send(200, json.dumps({"resourceType": "Bundle", "type": "batch-response", "entry": results}).encode())

    def _endless(self) -> None:
        """A 200 without a length whose body never ends (until the reader hangs up)."""
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.end_headers()
            chunk = b'{"resourceType":"Bundle","type":"searchset","entry":[' + b" " * (1 << 20)
            for _ in range(400):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _send(self, status: int, body: bytes, media: str = "application/fhir+json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the gateway gave up waiting
            pass


class TinyServer:
    def __init__(self, fhir: TinyFhir) -> None:
        self.fhir = fhir
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fhir = fhir  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tiny_member() -> Iterator[Callable[..., TinyServer]]:
    started: list[TinyServer] = []

    def start(**kwargs: Any) -> TinyServer:
        server = TinyServer(TinyFhir(**kwargs))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def dead_address() -> str:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[TestClient]:
    """The gateway under test (tokens off: the policy has its own tests)."""
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'gateway.sqlite'}", insecure_dev=True, audit=False, federation_timeout=1.0
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


# -- resources --------------------------------------------------------------------------------
def organization(code: str, name: str, tier: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": code,
        "identifier": [{"system": MEMBER, "value": code}],
        "type": [{"coding": [{"system": TIER, "code": tier}]}],
        "name": name,
    }


def patient(pid: str, id_number: str, family: str = "王", given: str = "建国") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": RESIDENT_ID, "value": id_number}],
        "name": [{"family": family, "given": [given]}],
        "gender": "male",
        "birthDate": "1956-03-07",
    }


def medication(mid: str, text: str) -> dict[str, Any]:
    return {"resourceType": "Medication", "id": mid, "code": {"text": text}}


def r5_request(
    rid: str, rx: str, patient_id: str, authored: str, med: str, updated: str | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "identifier": [{"system": RX_NUMBER, "value": rx}],
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": authored,
        "medication": {"reference": {"reference": f"Medication/{med}"}},
    }
    if updated:
        resource["meta"] = {"lastUpdated": updated}
    return resource


def r4_request(rid: str, rx: str, patient_id: str, authored: str, med: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "identifier": [{"system": RX_NUMBER, "value": rx}],
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": authored,
        "medicationReference": {"reference": f"Medication/{med}"},
        "reasonCode": [{"text": "高血压"}],
        "dosageInstruction": [{"text": "每日一次", "asNeededBoolean": False}],
    }


def put(client: Any, resource: dict[str, Any], base: str = "/fhir") -> None:
    """PUT a resource (``client``: a TestClient, or httpx for a member at ``base``)."""
    response = client.put(f"{base}/{resource['resourceType']}/{resource['id']}", json=resource)
    assert response.status_code in (200, 201), response.text


def write_as_operator(database: str, *resources: dict[str, Any]) -> None:
    """Through the service as the local operator (``yaolian`` commands' way)."""
    with operator_service(database) as (service, ctx):

        def work(tx: Any) -> None:
            for r in resources:
                service.writer.update(tx, ctx, r["resourceType"], r["id"], ResourceText.parse(orjson.dumps(r)))

        service.write(ctx, work)
