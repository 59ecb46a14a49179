"""Stock alerts follow InventoryReport writes (POL-14, POL-15): the demo county's zero stock of
clopidogrel raises an alert when it is loaded, and the alert closes itself when a delivery
report brings the stock to its line (exactly at the line is no alert)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.demo import demo_bundle
from gateway.settings import Settings

CLOPIDOGREL = "XB01ACL052A001010103120"
ALERTS = "http://yaolian.org/fhir/CodeSystem/stock-alert|below-alert-line"


@pytest.fixture
def demo(database_url: str) -> Iterator[TestClient]:
    from gateway.app import create_app

    app = create_app(Settings(database=database_url, validation_mode="lenient"))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/fhir", json=demo_bundle()).status_code == 200
        yield client


def _open(client: TestClient, **params: str) -> list[dict[str, Any]]:
    found = client.get("/fhir/DetectedIssue", params={"status": "final", "code": ALERTS, **params}).json()
    return [e["resource"] for e in found.get("entry", [])]


def test_pol15_demo_zero_clopidogrel_raises_an_alert_on_load_and_closes_at_the_line(demo: TestClient) -> None:
    alerts = _open(demo, subject="Organization/xy-county-hospital", implicated="Medication/clopidogrel-75mg")
    assert len(alerts) == 1 and "200" in alerts[0]["detail"]  # the county's shipped line for clopidogrel
    assert alerts[0]["identifiedDateTime"] == "2025-03-01"  # the day of the count, not of the load
    owner = {"system": "http://yaolian.org/fhir/sid/member", "code": "xy-county-hospital"}
    assert owner in alerts[0]["meta"]["tag"]  # the member's own alert (its clients may read it)
    outbox_event = demo.get("/fhir/DetectedIssue/_history").json()
    assert outbox_event["total"] >= 1
    receipt = {
        "resourceType": "InventoryReport", "status": "active", "countType": "difference",
        "reportedDateTime": "2025-03-05T10:00:00+08:00",
        "inventoryListing": [{"location": {"reference": "Location/xy-county-hospital-pharmacy"},
                              "countingDateTime": "2025-03-05T10:00:00+08:00",
                              "item": [{"quantity": {"value": 200},
                                        "item": {"reference": {"reference": "Medication/clopidogrel-75mg"}},
                                        "extension": [
                                            {"url": "http://yaolian.org/fhir/StructureDefinition/yl-lot-number",
                                             "valueString": "C250301"},
                                            {"url": "http://yaolian.org/fhir/StructureDefinition/yl-expiration-date",
                                             "valueDate": "2028-02-28"}]}]}],
    }  # fmt: skip
    assert demo.post("/fhir/InventoryReport", json=receipt).status_code == 201
    assert _open(demo, subject="Organization/xy-county-hospital", implicated="Medication/clopidogrel-75mg") == []
    closed = demo.get(
        "/fhir/DetectedIssue", params={"status": "mitigated", "implicated": "Medication/clopidogrel-75mg"}
    )
    assert closed.json()["total"] == 1
    assert owner in closed.json()["entry"][0]["resource"]["meta"]["tag"]
    mitigation = closed.json()["entry"][0]["resource"]["mitigation"][0]
    assert mitigation["action"]["text"].startswith("stock recovered") and mitigation["date"] == "2025-03-05"
    # one below 200 again raises a new alert (a new episode, the old one stays closed)
    receipt["inventoryListing"][0]["item"][0]["quantity"]["value"] = -1
    assert demo.post("/fhir/InventoryReport", json=receipt).status_code == 201
    assert len(_open(demo, implicated="Medication/clopidogrel-75mg")) == 1


def test_pol11_only_the_county_pharmacy_approves(database_url: str) -> None:
    from gateway.alliance.supply.periods import parse_period
    from gateway.alliance.supply.plans import approve
    from gateway.app import create_app
    from gateway.errors import Forbidden
    from gateway.hooks import RequestContext
    from gateway.principal import Principal, Role, parse_scopes

    app = create_app(Settings(database=database_url))
    member = Principal("m", "village", Role.MEMBER, "xy-dongpo", parse_scopes("system/*.cruds"))
    ctx = RequestContext(base_url="http://test/fhir", interaction="operation", principal=member)
    with pytest.raises(Forbidden) as refused:
        approve(app.state.service, ctx, parse_period("2025-11"), [])
    assert refused.value.issues[0].error_code == "YL-1203"
    app.state.store.dispose()


def test_pol15_county_pharmacy_role_does_the_supply_work(database_url: str) -> None:
    """With access control on: the county pharmacy approves a plan (its List included), reads the
    alert lines for balancing, and searches the alerts the gateway raised."""
    import orjson

    from gateway.alliance.supply.alert_lines import current_lines
    from gateway.alliance.supply.balance import propose
    from gateway.alliance.supply.periods import parse_period
    from gateway.alliance.supply.plans import approve
    from gateway.alliance.supply.reading import SupplyWorld
    from gateway.alliance.supply.stock import load_ledger
    from gateway.alliance.supply.system import system_context
    from gateway.app import create_app
    from gateway.hooks import RequestContext
    from gateway.principal import Principal, Role, parse_scopes

    app = create_app(Settings(database=database_url, insecure_dev=False))
    service = app.state.service
    try:
        admin = system_context(RequestContext(base_url="http://test/fhir"))
        service.process_bundle(orjson.dumps(demo_bundle()), admin)
        pharmacy = Principal("ph", "county pharmacy", Role.COUNTY_PHARMACY, None, parse_scopes("system/*.cruds"))
        ctx = RequestContext(base_url="http://test/fhir", interaction="operation", principal=pharmacy)
        result = approve(service, ctx, parse_period("2025-04"), [])
        assert result["plans"] == ["List/procurement-plan-xy-county-hospital-2025-04"]
        world = SupplyWorld.load(service, ctx)
        ledger = load_ledger(service, ctx, world)
        assert ledger.total("xy-county-hospital", "XA10BAE054A001010102770") == 18400
        assert (
            propose(ledger, current_lines(service, ctx), world.registry, __import__("datetime").date(2025, 3, 2)) == []
        )
        found = service.find("DetectedIssue", [("implicated", "Medication/clopidogrel-75mg")], ctx)
        assert len(found) == 1
    finally:
        app.state.store.dispose()
