"""Hand-written workflow tests: the alliance's business flows, end to end over HTTP.

These are the only tests not generated from definitions, because a flow (write a demand, find it
again; submit a stock count, find the alert) is not a single definition.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conformance import fixtures
from conformance.generate import CS_REQ, bundle_entries, matched, require_status
from conformance.model import Check, CheckFailed, NotApplicable
from conformance.session import Session

Json = dict[str, Any]
TOPIC_EXT = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-subscriptiontopic-supported"


def supply_request_roundtrip(s: Session) -> str:
    """A village clinic registers a missing drug for a patient; the county finds it by patient and kind."""
    world = s.world
    shortage = fixtures.build("SupplyRequest", 1, s.tag + "w", world.ref)
    stored = s.create(shortage)
    patient = shortage["deliverFor"]["reference"]
    query = [
        ("patient", patient),
        ("kind", "http://yaolian.org/fhir/CodeSystem/supply-request-kind|shortage"),
        ("status", shortage["status"]),
    ]
    ids = matched(bundle_entries(s.search("SupplyRequest", query), "GET SupplyRequest?patient&kind"), "SupplyRequest")
    if stored["id"] not in ids:
        raise CheckFailed(
            f"the shortage registration {stored['id']} is not found by patient and kind (got {sorted(ids)})"
        )
    r = s.client.get(f"SupplyRequest/{stored['id']}")
    require_status(r, 200, what="read the registration")
    if (r.json or {}).get("deliverFor") != shortage["deliverFor"]:
        raise CheckFailed("the registration read back lost its patient (deliverFor)")
    return f"SupplyRequest/{stored['id']} written and found by patient + kind"


def inventory_report_submit(s: Session) -> str:
    """A member submits a stock count; the county finds it by traceability code and below the alert line."""
    world = s.world
    report = fixtures.build("InventoryReport", 0, s.tag + "w", world.ref)
    r = s.client.request("POST", "InventoryReport", body=report)
    require_status(r, 201, what="POST InventoryReport")
    location = r.header("Location") or ""
    rid = location.split("InventoryReport/")[1].split("/")[0] if "InventoryReport/" in location else None
    if not rid:
        raise CheckFailed("the submitted InventoryReport has no Location")
    item = report["inventoryListing"][0]["item"][0]
    trace = item["extension"][2]["valueIdentifier"]
    ids = matched(
        bundle_entries(
            s.search("InventoryReport", [("traceability-code", f"{trace['system']}|{trace['value']}")]), "by trace code"
        ),
        "InventoryReport",
    )
    if ids != {rid}:
        raise CheckFailed(f"search by traceability code {trace['value']} returned {sorted(ids)}, expected [{rid}]")
    coding = item["item"]["concept"]["coding"][0]
    alert = int(item["quantity"]["value"]) + 1
    query = [("item-code-quantity", f"{coding['system']}|{coding['code']}$lt{alert}")]
    ids = matched(bundle_entries(s.search("InventoryReport", query), "below alert line"), "InventoryReport")
    if rid not in ids:
        raise CheckFailed(f"the stock count is not found below the alert line {alert} (got {sorted(ids)})")
    return f"InventoryReport/{rid} submitted, found by traceability code and below the alert line"


def transaction_graph(s: Session) -> str:
    """Members send a prescription with its patient in one transaction (urn:uuid references)."""
    if not any(
        i.get("code") == "transaction"
        for rest in s.server_capability.get("rest", [])
        for i in rest.get("interaction", [])
    ):
        raise NotApplicable("the server declares no transaction interaction")
    world = s.world
    tag = s.tag + "t"
    patient = fixtures.build("Patient", 0, tag, world.ref)
    rx = fixtures.build("MedicationRequest", 0, tag, world.ref)
    rx["subject"] = {"reference": "urn:uuid:6f1e0d2c-0000-4000-8000-000000000001"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1e0d2c-0000-4000-8000-000000000001",
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:6f1e0d2c-0000-4000-8000-000000000002",
                "resource": rx,
                "request": {"method": "POST", "url": "MedicationRequest"},
            },
        ],
    }
    r = s.client.request("POST", "", body=bundle)
    entries = bundle_entries(r, "POST transaction", "transaction-response") if r.status == 200 else None
    if entries is None:
        body = r.json or {}
        if r.status != 200 or body.get("type") != "transaction-response":
            raise CheckFailed(f"transaction: HTTP {r.status}, expected 200 with a transaction-response")
    locations = [((e.get("response") or {}).get("location") or "") for e in (r.json or {}).get("entry", [])]
    if len(locations) != 2 or not all(locations):
        raise CheckFailed(f"transaction-response entries without locations: {locations}")
    patient_ref = (
        "/".join(locations[0].split("/")[-4:-2])
        if "_history" in locations[0]
        else "/".join(locations[0].split("/")[-2:])
    )
    rx_path = (
        "/".join(locations[1].split("/")[-4:-2])
        if "_history" in locations[1]
        else "/".join(locations[1].split("/")[-2:])
    )
    got = s.client.get(rx_path)
    require_status(got, 200, what=f"GET {rx_path}")
    subject = ((got.json or {}).get("subject") or {}).get("reference", "")
    if not subject.endswith(patient_ref):
        raise CheckFailed(f"urn:uuid reference not rewritten: subject is {subject!r}, the patient is {patient_ref}")
    return f"{rx_path} refers to {patient_ref}"


class _Receiver(BaseHTTPRequestHandler):
    received: list[Json]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            self.server.received.append(json.loads(self.rfile.read(length) or b"{}"))  # type: ignore[attr-defined]
        except ValueError:
            self.server.received.append({"invalid": True})  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def subscription_handshake(s: Session) -> str:
    """An insurance feed subscribes (rest-hook); the server sends a handshake notification."""
    res = s.server_resource("Subscription") or {}
    topics = [e.get("valueCanonical") for e in res.get("extension", []) if e.get("url") == TOPIC_EXT]
    operations = {o.get("name") for o in res.get("operation", [])}
    if not any(i.get("code") == "create" for i in res.get("interaction", [])) or not (
        topics or operations & {"status", "$status"}
    ):
        raise NotApplicable(
            "the server's CapabilityStatement lists no Subscription support (no Subscription create with a "
            "subscriptiontopic-supported extension or a $status operation)"
        )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/notify"
        subscription = {
            "resourceType": "Subscription",
            "status": "requested",
            "topic": topics[0] if topics else "http://yaolian.org/fhir/SubscriptionTopic/prescription",
            "channelType": {
                "system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type",
                "code": "rest-hook",
            },
            "endpoint": endpoint,
            "contentType": "application/fhir+json",
            "content": "id-only",
        }
        stored = s.create(subscription)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not server.received:  # type: ignore[attr-defined]
            time.sleep(0.1)
        received: list[Json] = server.received  # type: ignore[attr-defined]
        if not received:
            raise CheckFailed(
                f"no handshake reached {endpoint} within 10 s of creating Subscription/{stored.get('id')}"
            )
        bundle = received[0]
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "subscription-notification":
            raise CheckFailed(f"the handshake is not a subscription-notification Bundle: {str(bundle)[:200]}")
        status = (bundle.get("entry") or [{}])[0].get("resource") or {}
        if status.get("resourceType") != "SubscriptionStatus" or status.get("type") != "handshake":
            raise CheckFailed("the first entry of the handshake is not a SubscriptionStatus of type handshake")
        return "handshake received"
    finally:
        server.shutdown()
        server.server_close()


def federated_lookup(s: Session) -> str:
    raise NotApplicable(
        "federated lookup across members is not yet specified in the alliance CapabilityStatement (planned, POL-08)"
    )


def workflows() -> list[Check]:
    def check(
        id_: str, title: str, zh: str, requirement: str, required: bool, fn: Any, policies: tuple[str, ...]
    ) -> Check:
        return Check(f"workflow/{id_}", "workflow", title, requirement, required, fn, zh, policies)

    return [
        check(
            "supply-request",
            "a shortage registration is written and found by patient and kind",
            "缺药登记写入后可按患者和类型检索",
            f"{CS_REQ} SupplyRequest create + search kind/patient; StructureDefinition yl-supply-request",
            True,
            supply_request_roundtrip,
            ("POL-11", "POL-16"),
        ),
        check(
            "inventory-report",
            "a stock count is submitted and found by traceability code and below its alert line",
            "库存盘点提交后可按追溯码和警戒线检索",
            f"{CS_REQ} InventoryReport create + search traceability-code, item-code-quantity",
            True,
            inventory_report_submit,
            ("POL-12", "POL-14", "POL-15"),
        ),
        check(
            "transaction",
            "a prescription and its patient in one transaction, urn:uuid references rewritten",
            "处方与患者在一个事务中提交，urn:uuid 引用被改写",
            f"{CS_REQ} rest.interaction transaction (SHOULD)",
            False,
            transaction_graph,
            ("POL-08",),
        ),
        check(
            "subscription-handshake",
            "a rest-hook Subscription gets a handshake notification",
            "rest-hook 订阅收到握手通知",
            f"{CS_REQ} Subscription (SHOULD); FHIR R5 subscriptions framework",
            False,
            subscription_handshake,
            ("POL-18",),
        ),
        check(
            "federated-lookup",
            "a prescription held by another member is found through the gateway",
            "通过网关检索其他成员的处方",
            "POL-08 (federation, planned)",
            False,
            federated_lookup,
            ("POL-08",),
        ),
    ]
