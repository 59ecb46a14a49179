"""The supply operations over REST (issue 15) on the demo alliance: ``$aggregate`` (JSON and
CSV), ``$approve`` refusing a cut without a reason, ``$export-plan`` as XLSX, ``$balance`` and
``$stock-alerts`` (POL-11, POL-12, POL-15)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.demo import demo_bundle
from gateway.settings import Settings


@pytest.fixture
def demo(database_url: str) -> Iterator[TestClient]:
    from gateway.app import create_app

    app = create_app(Settings(database=database_url, validation_mode="lenient"))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/fhir", json=demo_bundle()).status_code == 200
        yield client


def test_pol11_aggregate_approve_and_export(demo: TestClient) -> None:
    result = demo.post("/fhir/SupplyRequest/$aggregate?period=2025-04").json()
    totals = {
        next(p["valueCoding"]["code"] for p in t["part"] if p["name"] == "drug"): (
            next(p["valueDecimal"] for p in t["part"] if p["name"] == "quantity"),
            [p["valueReference"]["reference"] for p in t["part"] if p["name"] == "line"],
        )
        for t in result["parameter"]
        if t["name"] == "drugTotal"
    }
    assert totals == {
        "XC08CAA044A001010103451": (2800.0, ["SupplyRequest/xy-plan-2025q2-wangqiao-amlodipine"]),
        "XA10BAE054A001010102770": (4000.0, ["SupplyRequest/xy-plan-2025q2-houbao-metformin"]),
    }
    csv_text = demo.get("/fhir/SupplyRequest/$aggregate?period=2025-04&output=csv").text
    assert (
        csv_text.splitlines()[0] == "county,supplier,nhsa_code,quantity,unit,lines" and len(csv_text.splitlines()) == 3
    )
    bad_period = demo.post("/fhir/SupplyRequest/$aggregate?period=2025-4")
    assert bad_period.status_code == 400 and "YL-1202" in bad_period.text
    change = {"name": "change", "part": [
        {"name": "line", "valueReference": {"reference": "SupplyRequest/xy-plan-2025q2-houbao-metformin"}},
        {"name": "quantity", "valueDecimal": 3000}]}  # fmt: skip
    params = {"resourceType": "Parameters", "parameter": [{"name": "period", "valueString": "2025-04"}, change]}
    assert demo.post("/fhir/SupplyRequest/$approve", json=params).status_code == 400
    change["part"].append({"name": "reason", "valueString": "两个月用量"})
    approved = demo.post("/fhir/SupplyRequest/$approve", json=params)
    assert approved.status_code == 200, approved.text
    assert demo.get("/fhir/SupplyRequest/xy-plan-2025q2-houbao-metformin").json()["quantity"]["value"] == 3000
    xlsx = demo.get("/fhir/SupplyRequest/$export-plan?period=2025-04&output=xlsx")
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("period", "supplier", "deliver_to_member")
    assert sorted((r[2], r[7]) for r in rows[1:]) == [("xy-houbao", 3000), ("xy-wangqiao", 2800)]


def test_pol15_balance_and_stock_alerts(demo: TestClient) -> None:
    alerts = demo.post("/fhir/$stock-alerts?as-of=2025-03-02").json()
    kinds = [{p["name"]: p["valueString"] for p in a["part"]} for a in alerts["parameter"] if a["name"] == "alert"]
    assert {(k["member"], k["drug"]) for k in kinds if k["kind"] == "below-alert-line"} == {
        ("xy-county-hospital", "XB01ACL052A001010103120")
    }
    proposals = demo.post("/fhir/SupplyRequest/$balance?propose=true&as-of=2025-03-02").json()
    # nothing anywhere holds clopidogrel above a line: no transfer can help the county
    assert [p for p in proposals.get("parameter", []) if p["name"] == "transfer"] == []


def test_pol16_register_shortage_over_rest(demo: TestClient) -> None:
    from gateway.alliance.supply.shortages import qualifies

    prescriptions = [r for r in demo_bundle()["entry"] if r["resource"]["resourceType"] == "MedicationRequest"]
    reviewed = next(e["resource"] for e in prescriptions if qualifies(e["resource"]))
    unreviewed = next(e["resource"] for e in prescriptions if not qualifies(e["resource"]))
    rx = {"reference": f"MedicationRequest/{reviewed['id']}"}
    body = {"resourceType": "Parameters", "parameter": [{"name": "prescription", "valueReference": rx}]}
    created = demo.post("/fhir/SupplyRequest/$register-shortage", json=body)
    assert created.status_code == 201, created.text
    registration = created.json()
    assert registration["category"]["coding"][0]["code"] == "shortage"
    assert registration["deliverFor"] == reviewed["subject"]
    assert registration["reason"] == [{"reference": {"reference": f"MedicationRequest/{reviewed['id']}"}}]
    # the temporary procurement delivered and accepted at that member: registration closed, patient told
    delivery = _delivery(float(registration["quantity"]["value"]), "80000010000000000009")
    delivery["basedOn"] = [{"reference": f"SupplyRequest/{registration['id']}"}]
    delivery["suppliedItem"][0]["itemReference"] = registration["item"]["reference"]  # type: ignore[index]
    delivery["destination"] = registration["deliverTo"]
    filled = demo.post("/fhir/SupplyDelivery", json=delivery)
    assert filled.status_code == 201, filled.text
    assert demo.get(f"/fhir/SupplyRequest/{registration['id']}").json()["status"] == "completed"
    notice = demo.get(f"/fhir/Task/shortage-filled-{registration['id']}").json()
    assert notice["for"] == reviewed["subject"] and notice["status"] == "requested"
    assert notice["focus"] == {"reference": f"SupplyRequest/{registration['id']}"}
    body["parameter"][0]["valueReference"]["reference"] = f"MedicationRequest/{unreviewed['id']}"
    refused = demo.post("/fhir/SupplyRequest/$register-shortage", json=body)
    assert refused.status_code == 400 and "YL-1230" in refused.text


def _delivery(quantity: float, trace: str) -> dict[str, object]:
    sd = "http://yaolian.org/fhir/StructureDefinition/"
    return {
        "resourceType": "SupplyDelivery", "status": "completed",
        "basedOn": [{"reference": "SupplyRequest/xy-plan-2025q2-wangqiao-amlodipine"}],
        "suppliedItem": [{"quantity": {"value": quantity}, "itemReference": {"reference": "Medication/amlodipine-5mg"},
                          "extension": [{"url": sd + "yl-lot-number", "valueString": "L2504"},
                                        {"url": sd + "yl-expiration-date", "valueDate": "2027-04-30"},
                                        {"url": sd + "yl-traceability-code",
                                         "valueIdentifier": {"system": "http://yaolian.org/fhir/sid/drug-trace-code",
                                                             "value": trace}}]}],
        "occurrenceDateTime": "2025-04-03", "supplier": {"reference": "Organization/xy-county-hospital"},
        "destination": {"reference": "Location/xy-wangqiao-pharmacy"},
        "extension": [{"url": sd + "yl-receipt-acceptance", "extension": [
            {"url": "accepted", "valueBoolean": True}, {"url": "quality", "valueCode": "pass"},
            {"url": "storage", "valueString": "常温"}, {"url": "date", "valueDateTime": "2025-04-03T10:00:00+08:00"}]}],
    }  # fmt: skip


def test_pol12_partial_deliveries_add_up_once_each(demo: TestClient) -> None:
    params = {"resourceType": "Parameters", "parameter": [{"name": "period", "valueString": "2025-04"}]}
    assert demo.post("/fhir/SupplyRequest/$approve", json=params).status_code == 200
    first = demo.post("/fhir/SupplyDelivery", json=_delivery(1000, "80000010000000000001"))
    assert first.status_code == 201, first.text
    line = demo.get("/fhir/SupplyRequest/xy-plan-2025q2-wangqiao-amlodipine").json()
    assert line["status"] == "active"
    edited = {**first.json(), "identifier": [{"value": "配送单 DN-0001"}]}
    assert demo.put(f"/fhir/SupplyDelivery/{edited['id']}", json=edited).status_code == 200  # counted once
    assert demo.get("/fhir/SupplyRequest/xy-plan-2025q2-wangqiao-amlodipine").json()["status"] == "active"
    assert demo.post("/fhir/SupplyDelivery", json=_delivery(1800, "80000010000000000002")).status_code == 201
    assert demo.get("/fhir/SupplyRequest/xy-plan-2025q2-wangqiao-amlodipine").json()["status"] == "completed"
    third = demo.post("/fhir/SupplyDelivery", json=_delivery(1, "80000010000000000003"))
    assert third.status_code == 422 and "YL-1210" in third.text  # the line is fulfilled
