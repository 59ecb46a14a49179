"""A month of supply work in one county (3 townships, 6 villages), through REST writes, the CSV
import and the ``--format json`` commands: demand plans aggregated and approved (POL-11,
POL-12), stock reports against alert lines (POL-14, POL-15), deliveries refused whole or
accepted into stock (POL-12, POL-23, POL-24), balancing and a transfer (POL-15, POL-26),
shortage registrations (POL-16). Every expected number is computed here from the scenario's
own tables, not by the code under test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.settings import Settings

SD = "http://yaolian.org/fhir/StructureDefinition/"
NHSA = "http://yaolian.org/fhir/sid/nhsa-drug-code"
MEMBER = "http://yaolian.org/fhir/sid/member"
TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"
KIND = "http://yaolian.org/fhir/CodeSystem/supply-request-kind"
TRACE = "http://yaolian.org/fhir/sid/drug-trace-code"

DA, DB, DC = "XB01ACL052A001010109991", "XC08CAA044A001010109992", "XA10BAE054A001010109993"
DRUG_ID = {DA: "drug-a", DB: "drug-b", DC: "drug-c"}
TOWNS = {"t1": ("v1", "v2"), "t2": ("v3", "v4"), "t3": ("v5", "v6")}
TIER_OF = {"cty": "county", **{t: "township" for t in TOWNS}, **{v: "village" for vs in TOWNS.values() for v in vs}}
PARENT = {**{t: "cty" for t in TOWNS}, **{v: t for t, vs in TOWNS.items() for v in vs}}

LINES_CSV = f"""tier_or_member,nhsa_code,line
county,{DA},100
township,{DA},20
village,{DA},5
county,{DB},500
township,{DB},100
village,{DB},30
township,{DC},50
village,{DC},10
v6,{DA},8
"""
LINES = {("county", DA): 100, ("township", DA): 20, ("village", DA): 5, ("county", DB): 500,
         ("township", DB): 100, ("village", DB): 30, ("township", DC): 50, ("village", DC): 10,
         ("v6", DA): 8}  # fmt: skip

VILLAGE_LOT = ("2026-09-30",)
# Snapshot of 2025-11-01: member -> drug -> [(lot, expiry, quantity)]
SNAPSHOT: dict[str, dict[str, list[tuple[str, str, float]]]] = {
    "cty": {DA: [("A1", "2026-03-31", 60), ("A2", "2027-01-31", 100)], DB: [("B1", "2027-06-30", 900)],
            DC: [("C1", "2027-06-30", 300)]},
    "t1": {DA: [("A1", "2026-01-31", 30)], DB: [("B1", "2027-06-30", 100)], DC: [("C2", "2026-02-28", 40)]},
    "t2": {DA: [("A3", "2025-12-31", 45), ("A4", "2026-06-30", 10)], DB: [("B1", "2027-06-30", 80)],
           DC: [("C1", "2027-06-30", 70)]},
    "t3": {DA: [("A2", "2027-01-31", 19)], DB: [("B1", "2027-06-30", 150)], DC: [("C1", "2027-06-30", 50)]},
    **{
        v: {d: [(f"L-{v}", "2026-09-30", q)] for d, q in zip((DA, DB, DC), qs, strict=True)}
        for v, qs in {"v1": (5, 10, 12), "v2": (2, 30, 9), "v3": (0, 45, 10), "v4": (7, 29, 20),
                      "v5": (5, 31, 11), "v6": (7, 30, 10)}.items()
    },
}  # fmt: skip
# Differences of 2025-11-15 and a recount of 2025-11-20
DIFFERENCES = [("v1", DB, "L-v1", "2026-09-30", 25), ("t1", DB, "B1", "2027-06-30", -1)]
RECOUNT = ("v4", DB, "L-v4", "2026-09-30", 40)
AS_OF = "2025-11-30"
HORIZON = "2026-02-28"  # AS_OF + 90 days

# Demand plan lines for 2025-11: (id, member, drug, quantity, supplier)
PLAN = [
    (f"plan-{m}-{d[-1]}", m, d, float(10 * (i + 1) + j), "sup-a" if (i + j) % 2 else "sup-b")
    for i, m in enumerate(["t1", "t2", "t3", "v1", "v2", "v3", "v4", "v5", "v6"])
    for j, d in enumerate((DB, DC))
]


def _org(code: str, tier: str | None) -> dict[str, Any]:
    org: dict[str, Any] = {"resourceType": "Organization", "id": code, "name": f"member {code}",
                           "identifier": [{"system": MEMBER, "value": code}]}  # fmt: skip
    if tier:
        org["type"] = [{"coding": [{"system": TIER, "code": tier}]}]
    if code in PARENT:
        org["partOf"] = {"reference": f"Organization/{PARENT[code]}"}
    return org


def _trace(n: int) -> str:
    return f"8{n:019d}"


def _batch_ext(lot: str, expiry: str, traces: list[str] = ()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    ext = [{"url": SD + "yl-lot-number", "valueString": lot}, {"url": SD + "yl-expiration-date", "valueDate": expiry}]
    ext += [{"url": SD + "yl-traceability-code", "valueIdentifier": {"system": TRACE, "value": t}} for t in traces]
    return ext


def _report(rid: str, member: str, when: str, kind: str, rows: list[tuple[str, str, str, float]]) -> dict[str, Any]:
    return {
        "resourceType": "InventoryReport", "id": rid, "status": "active", "countType": kind,
        "reportedDateTime": when,
        "inventoryListing": [{
            "location": {"reference": f"Location/{member}-pharmacy"}, "countingDateTime": when,
            "item": [{"extension": _batch_ext(lot, exp, [_trace(n)]), "quantity": {"value": q},
                      "item": {"reference": {"reference": f"Medication/{DRUG_ID[d]}"}}}
                     for n, (d, lot, exp, q) in enumerate(rows)],
        }],
    }  # fmt: skip


def _delivery(line: str, member: str, drug: str, quantity: float, when: str, supplier: str,
              traces: list[str], *, lot: str = "N1", drug_ref: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "resourceType": "SupplyDelivery", "status": "completed",
        "basedOn": [{"reference": f"SupplyRequest/{line}"}],
        "suppliedItem": [{"quantity": {"value": quantity},
                          "itemReference": {"reference": drug_ref or f"Medication/{DRUG_ID[drug]}"},
                          "extension": _batch_ext(lot, "2027-10-31", traces)}],
        "occurrenceDateTime": when, "supplier": {"reference": f"Organization/{supplier}"},
        "destination": {"reference": f"Location/{member}-pharmacy"},
        "extension": [{"url": SD + "yl-receipt-acceptance", "extension": [
            {"url": "accepted", "valueBoolean": True}, {"url": "quantity", "valueDecimal": quantity},
            {"url": "quality", "valueCode": "pass"}, {"url": "storage", "valueString": "常温 room temperature"},
            {"url": "date", "valueDateTime": when}]}],
    }  # fmt: skip


@pytest.fixture
def county(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, list[str]]]:
    """The county's gateway. Alerts are evaluated "as of" the end of the month by the command
    only, so the report's raised/resolved counts are the scenario's (the evaluation after every
    InventoryReport write is tested on the demo alliance)."""
    from gateway.app import create_app

    monkeypatch.setenv("YAOLIAN_SUPPLY_ALERTS_ON_WRITE", "false")
    app = create_app(Settings(database=database_url, validation_mode="lenient", supply_alerts_on_write=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        for code, tier in [*TIER_OF.items(), ("sup-a", None), ("sup-b", None)]:
            assert client.put(f"/fhir/Organization/{code}", json=_org(code, tier)).status_code in (200, 201)
            if tier:
                location = {"resourceType": "Location", "id": f"{code}-pharmacy", "status": "active",
                            "managingOrganization": {"reference": f"Organization/{code}"}}  # fmt: skip
                assert client.put(f"/fhir/Location/{code}-pharmacy", json=location).status_code in (200, 201)
        for code, mid in DRUG_ID.items():
            med = {"resourceType": "Medication", "id": mid, "code": {"coding": [{"system": NHSA, "code": code}],
                                                                     "text": mid}}  # fmt: skip
            assert client.put(f"/fhir/Medication/{mid}", json=med).status_code in (200, 201)
        lines = tmp_path / "lines.csv"
        lines.write_text(LINES_CSV, encoding="utf-8")
        yield client, ["--database", database_url]


def _cli(args: list[str]) -> Any:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout[result.stdout.index("{") :])


def _final_stock() -> dict[tuple[str, str], list[tuple[str, str, float]]]:
    """The month's stock by hand: the snapshot, the differences, the recount."""
    stock = {(m, d): [list(b) for b in batches] for m, drugs in SNAPSHOT.items() for d, batches in drugs.items()}
    for m, d, lot, _exp, q in DIFFERENCES:
        next(b for b in stock[(m, d)] if b[0] == lot)[2] += q
    m, d, lot, exp, q = RECOUNT
    stock[(m, d)] = [[lot, exp, q]]
    return {k: [(b[0], b[1], float(b[2])) for b in v] for k, v in stock.items()}


def _line(member: str, drug: str) -> float | None:
    return LINES.get((member, drug), LINES.get((TIER_OF[member], drug)))


def test_pol11_to_pol26_a_month_in_one_county(county: tuple[TestClient, list[str]], tmp_path: Path) -> None:
    """POL-11, POL-12, POL-14, POL-15, POL-16, POL-23, POL-24, POL-26: the whole month."""
    client, db = county
    # -- alert lines as data (POL-15), imported through the CLI
    assert CliRunner().invoke(cli, ["stock", "alert-lines", "import", str(tmp_path / "lines.csv"), *db]).exit_code == 0

    # -- stock reports (POL-14): snapshot, differences, recount, all over REST
    for n, (member, drugs) in enumerate(SNAPSHOT.items()):
        rows = [(d, lot, exp, q) for d, batches in drugs.items() for lot, exp, q in batches]
        r = client.put(f"/fhir/InventoryReport/snap-{n}", json=_report(f"snap-{n}", member, "2025-11-01T18:00:00+08:00",
                                                                       "snapshot", rows))  # fmt: skip
        assert r.status_code == 201, r.text
    for n, (member, d, lot, exp, q) in enumerate(DIFFERENCES):
        body = _report(f"diff-{n}", member, "2025-11-15T18:00:00+08:00", "difference", [(d, lot, exp, q)])
        assert client.put(f"/fhir/InventoryReport/diff-{n}", json=body).status_code == 201
    member, d, lot, exp, q = RECOUNT
    body = _report("recount", member, "2025-11-20T18:00:00+08:00", "snapshot", [(d, lot, exp, q)])
    assert client.put("/fhir/InventoryReport/recount", json=body).status_code == 201

    stock = _final_stock()
    result = CliRunner().invoke(cli, ["stock", "show", *db])
    ledger = {(r["member"], r["drug"], r["lot"]): r["quantity"] for r in orjson.loads(result.stdout)}
    assert ledger == {(m, d, lot): q for (m, d), batches in stock.items() for lot, _e, q in batches if q != 0}

    # -- alerts: strictly below the line, none at exactly it; expiring batches within 90 days
    expected_below = {
        (m, d) for (m, d), batches in stock.items()
        if (line := _line(m, d)) is not None and sum(b[2] for b in batches) < line
    }  # fmt: skip
    assert expected_below == {("t1", DC), ("t1", DB), ("t2", DB), ("t3", DA), ("v2", DA), ("v2", DC), ("v3", DA),
                              ("v6", DA)}  # the same, counted by hand  # fmt: skip
    expected_expiring = {(m, d, lot) for (m, d), bs in stock.items() for lot, exp, q in bs if q > 0 and exp <= HORIZON}
    assert expected_expiring == {("t1", DA, "A1"), ("t1", DC, "C2"), ("t2", DA, "A3")}
    out = _cli(["stock", "alerts", "--format", "json", "--as-of", AS_OF, *db])
    below = {(a["member"], a["drug"]) for a in out["alerts"]}
    assert {a["kind"] for a in out["alerts"]} == {"below-alert-line"}
    expiring = {(a["member"], a["drug"], a["lot"]) for a in out["expiring"]}
    assert below == expected_below and expiring == expected_expiring
    assert len(out["open"]) == len(expected_below) + len(expected_expiring)
    # searchable by member and drug
    found = client.get("/fhir/DetectedIssue", params={"subject": "Organization/v3", "implicated": "Medication/drug-a",
                                                      "status": "final"}).json()  # fmt: skip
    assert found["total"] == 1 and "below its alert line" in found["entry"][0]["resource"]["detail"]
    assert client.get("/fhir/DetectedIssue", params={"subject": "Organization/v1", "status": "final"}).json()[
        "total"] == 0  # v1's DB recovered by its difference, its DA is exactly at the line  # fmt: skip

    # -- demand plans (POL-11): lines over REST, aggregate per drug and supplier
    for lid, m, d, qty, sup in PLAN:
        line = {"resourceType": "SupplyRequest", "id": lid, "status": "active",
                "category": {"coding": [{"system": KIND, "code": "demand-plan"}]},
                "item": {"reference": {"reference": f"Medication/{DRUG_ID[d]}"}}, "quantity": {"value": qty},
                "requester": {"reference": f"Organization/{m}"}, "supplier": [{"reference": f"Organization/{sup}"}],
                "authoredOn": "2025-10-20", "occurrencePeriod": {"start": "2025-11-01", "end": "2025-11-20"},
                "reason": [{"concept": {"coding": [{"system": "http://yaolian.org/fhir/CodeSystem/demand-reason",
                                                    "code": "chronic"}]}}]}  # fmt: skip
        assert client.put(f"/fhir/SupplyRequest/{lid}", json=line).status_code == 201
    unapproved = {"resourceType": "SupplyRequest", "id": "plan-december", "status": "active",
                  "category": {"coding": [{"system": KIND, "code": "demand-plan"}]},
                  "item": {"reference": {"reference": "Medication/drug-b"}}, "quantity": {"value": 5},
                  "requester": {"reference": "Organization/v1"}, "authoredOn": "2025-11-25",
                  "occurrencePeriod": {"start": "2025-12-01", "end": "2025-12-31"}}  # fmt: skip
    assert client.put("/fhir/SupplyRequest/plan-december", json=unapproved).status_code == 201
    aggregate = _cli(["supply", "aggregate", "--period", "2025-11", "--format", "json", *db])
    by_drug = {t["drug"]: (t["quantity"], sorted(t["lines"])) for t in aggregate["byDrug"]}
    for d in (DB, DC):
        mine = [p for p in PLAN if p[2] == d]
        assert by_drug[d] == (sum(p[3] for p in mine), sorted(f"SupplyRequest/{p[0]}" for p in mine))
    by_supplier = {(t["supplier"], t["drug"]): t["quantity"] for t in aggregate["bySupplier"]}
    assert by_supplier == {
        (f"Organization/{s}", d): sum(p[3] for p in PLAN if p[4] == s and p[2] == d)
        for s in ("sup-a", "sup-b") for d in (DB, DC)
    }  # fmt: skip
    rest = client.post("/fhir/SupplyRequest/$aggregate?period=2025-11").json()
    assert sum(1 for p in rest["parameter"] if p["name"] == "drugTotal") == 2

    # -- approval (POL-11): a change without a reason is refused and nothing changes
    cut, changed = PLAN[0][0], PLAN[1][0]
    no_reason = {"resourceType": "Parameters", "parameter": [
        {"name": "period", "valueString": "2025-11"},
        {"name": "change", "part": [{"name": "line", "valueReference": {"reference": f"SupplyRequest/{cut}"}},
                                    {"name": "quantity", "valueDecimal": 0}]}]}  # fmt: skip
    refused = client.post("/fhir/SupplyRequest/$approve", json=no_reason)
    assert refused.status_code == 400 and "YL-1204" in refused.text
    assert client.get(f"/fhir/SupplyRequest/{cut}").json()["status"] == "active"
    assert "extension" not in client.get(f"/fhir/SupplyRequest/{changed}").json()
    approved = _cli(["supply", "approve", "--period", "2025-11", "--change", f"{cut}=0=budget cut",
                     "--change", f"{changed}=5=stock on hand", *db])  # fmt: skip
    assert approved["cut"] == [cut] and approved["changed"] == [changed] and len(approved["approved"]) == len(PLAN) - 1
    kept = client.get(f"/fhir/SupplyRequest/{changed}").json()
    change = next(e for e in kept["extension"] if e["url"] == SD + "yl-plan-change")
    assert {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in change["extension"]}[
        "reason"] == "stock on hand"  # fmt: skip
    assert client.get(f"/fhir/SupplyRequest/{cut}").json()["status"] == "cancelled"
    exported = CliRunner().invoke(cli, ["supply", "export", "--period", "2025-11", "--format", "csv", *db]).stdout
    assert len(exported.strip().splitlines()) == 1 + len(PLAN) - 1
    xlsx = tmp_path / "plan.xlsx"
    assert CliRunner().invoke(cli, ["supply", "export", "--period", "2025-11", "--format", "xlsx", "--out", str(xlsx),
                                    *db]).exit_code == 0  # fmt: skip
    from openpyxl import load_workbook

    assert load_workbook(xlsx).active.max_row == len(PLAN)  # header + approved lines

    # -- deliveries (POL-12, POL-24): bad ones refused whole, naming the field
    t1_dc = "plan-t1-3"  # t1's DC line (approved, 10*1+1 = 11)
    bad = [
        (_delivery("plan-december", "v1", DB, 5, "2025-11-10", "sup-a", [_trace(900)]), "SupplyDelivery.basedOn[0]"),
        (_delivery(t1_dc, "t1", DC, 0, "2025-11-10", "sup-a", [_trace(901)]), "suppliedItem[0].quantity.value"),
        (_delivery(t1_dc, "t1", DC, 5, "2025-11-10", "sup-a", [_trace(902)], drug_ref="Medication/nothing"),
         "suppliedItem[0].itemReference"),
        (_delivery(t1_dc, "t1", DC, 5, "2025-11-10", "sup-a", ["8123"]), "valueIdentifier.value"),
    ]  # fmt: skip
    for body, where in bad:
        r = client.post("/fhir/SupplyDelivery", json=body)
        assert r.status_code == 422, r.text
        assert any(where in e for i in r.json()["issue"] for e in i.get("expression", [])), r.text
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _delivery(t1_dc, "t1", DC, 11, "2025-11-10", "sup-a", [_trace(903)]),
         "request": {"method": "POST", "url": "SupplyDelivery"}},
        {"resource": bad[3][0], "request": {"method": "POST", "url": "SupplyDelivery"}}]}  # fmt: skip
    assert client.post("/fhir", json=bundle).status_code == 422
    assert client.get("/fhir/SupplyDelivery").json()["total"] == 0  # nothing half applied
    assert client.get("/fhir/InventoryReport", params={"_id": "snap-1"}).json()["total"] == 1

    # good deliveries: on time (due 2025-11-20) or late, accepted into stock
    good = [("plan-t1-3", "t1", DC, 11.0, "2025-11-10", "sup-a"), ("plan-t2-2", "t2", DB, 20.0, "2025-11-19", "sup-a"),
            ("plan-v2-3", "v2", DC, 41.0, "2025-11-25", "sup-b")]  # fmt: skip
    suppliers = {lid: sup for lid, _m, _d, _q, sup in PLAN}
    for n, (lid, m, d, q, when, _s) in enumerate(good):
        r = client.post("/fhir/SupplyDelivery", json=_delivery(lid, m, d, q, when, suppliers[lid], [_trace(1000 + n)]))
        assert r.status_code == 201, r.text
    result = CliRunner().invoke(cli, ["stock", "show", *db])
    after = orjson.loads(result.stdout)
    for _lid, m, d, q, _w, _s in good:
        assert sum(r["quantity"] for r in after if (r["member"], r["drug"]) == (m, d)) == sum(
            b[2] for b in stock[(m, d)]) + q  # fmt: skip
    assert client.get("/fhir/SupplyRequest/plan-t1-3").json()["status"] == "completed"
    rates = {r["supplier"]: (r["deliveries"], r["onTime"]) for r in _cli_list(["supply", "suppliers", "--period",
                                                                               "2025-11", *db])}  # fmt: skip
    expected: dict[str, list[int]] = {}
    for lid, _m, _d, _q, when, _s in good:
        tally = expected.setdefault(f"Organization/{suppliers[lid]}", [0, 0])
        tally[0] += 1
        tally[1] += int(when <= "2025-11-20")
    assert rates == {s: tuple(v) for s, v in expected.items()}

    # -- balancing (POL-15): t1's DC recovered (40 + 11 >= 50); proposals for DA, nearest expiry first
    out = _cli(["stock", "balance", "--format", "json", "--as-of", AS_OF, "--propose", *db])
    da = [t for t in out["transfers"] if t["drug"] == DA]
    assert {(t["to"], t["quantity"]) for t in da} == {("v3", 5.0), ("v2", 3.0), ("v6", 1.0), ("t3", 1.0)}
    assert {(t["from"], t["lot"]) for t in da} == {("t2", "A3")}  # the batch expiring first, not the county's
    to_v3 = next(t for t in da if t["to"] == "v3")["request"].removeprefix("SupplyRequest/")
    assert CliRunner().invoke(cli, ["stock", "transfer", "approve", to_v3, *db]).exit_code == 0
    moved = CliRunner().invoke(cli, ["stock", "transfer", "deliver", to_v3, "--trace", _trace(2000), *db])
    assert moved.exit_code == 0, moved.output
    after = orjson.loads(CliRunner().invoke(cli, ["stock", "show", *db]).stdout)
    held = {(r["member"], r["drug"]): 0.0 for r in after}
    for r in after:
        held[(r["member"], r["drug"])] += r["quantity"]
    assert held[("v3", DA)] == 5.0 and held[("t2", DA)] == 55.0 - 5.0
    out = _cli(["stock", "alerts", "--format", "json", "--as-of", AS_OF, *db])
    below_after = {(a["member"], a["drug"]) for a in out["alerts"]}
    assert ("v3", DA) not in below_after  # exactly at the line now
    expiring_after = {(a["member"], a["drug"], a["lot"]) for a in out["expiring"]}
    assert ("v3", DA, "A3") in expiring_after  # the batch moved with its expiry
    # the month's stock by hand, after deliveries and the transfer
    final = {k: sum(b[2] for b in v) for k, v in stock.items()}
    for _lid, m, d, q, _w, _s in good:
        final[(m, d)] += q
    final[("t2", DA)] -= 5
    final[("v3", DA)] += 5
    lacking = {(m, d) for (m, d), q in final.items() if (line := _line(m, d)) is not None and q < line}
    assert below_after == lacking

    # -- shortage registrations (POL-16)
    def rx(rid: str, drug: str, reviewed: bool) -> dict[str, Any]:
        ext = [{"url": SD + "yl-extended-prescription", "extension": [
            {"url": "dispensingMember", "valueReference": {"reference": "Organization/v3"}}]}]  # fmt: skip
        if reviewed:
            ext.append({"url": SD + "yl-central-review-result", "extension": [{"url": "result", "valueCode": "pass"}]})
        return {"resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "order", "extension": ext,
                "medication": {"reference": {"reference": f"Medication/{DRUG_ID[drug]}"}},
                "subject": {"reference": "Patient/p1"}, "authoredOn": "2025-11-02",
                "dispenseRequest": {"quantity": {"value": 28}}}  # fmt: skip

    registered = {DA: 4, DB: 2}
    n = 0
    for drug, count in registered.items():
        for _ in range(count):
            n += 1
            assert client.put(f"/fhir/MedicationRequest/rx-{n}", json=rx(f"rx-{n}", drug, True)).status_code == 201
            assert (
                CliRunner().invoke(cli, ["supply", "shortage", "register", "--prescription", f"rx-{n}", *db]).exit_code
                == 0
            )
    assert client.put("/fhir/MedicationRequest/rx-plain", json=rx("rx-plain", DA, False)).status_code == 201
    refused_rx = CliRunner().invoke(cli, ["supply", "shortage", "register", "--prescription", "rx-plain", *db])
    assert refused_rx.exit_code == 1 and "YL-1230" in refused_rx.output
    year = str(__import__("datetime").date.today().year)
    listed = _cli(["supply", "shortage", "list", "--period", year, *db])
    assert len(listed["registrations"]) == sum(registered.values())
    assert listed["linkageCandidates"] == [{"drug": d, "registrations": c} for d, c in sorted(registered.items())
                                           if c > 3]  # fmt: skip

    # -- the report (POL-17, POL-28): every figure recomputed here from the scenario's tables
    month = _annual(db, "2025-11", tmp_path / "report")
    first = {("below", *k) for k in expected_below} | {("expiring", *k) for k in expected_expiring}
    second = {("below", *k) for k in below_after} | {("expiring", *k) for k in expiring_after}
    # v6's own line was checked when the lines were imported (no stock yet): that alert is dated
    # the day of the import, not in November
    at_import = {("below", "v6", DA)}
    assert month["alerts"]["raised"] == len((first | second) - at_import) == 11
    assert month["alerts"]["resolved"] == len(first - second) == 4  # t1 DC, t2 DB, v2 DC, v3 DA
    assert month["alerts"]["open"] == len(second)
    # stock at the end of November: the transfer was delivered after it (today)
    november = dict(final)
    november[("t2", DA)] += 5
    november[("v3", DA)] -= 5
    assert month["varieties"] == {m: sum(1 for (mm, _d), q in november.items() if mm == m and q > 0) for m in TIER_OF}
    assert month["varieties"]["v3"] == 2  # its DA came with the transfer, dated after November
    chronic = {DB, DC}
    assert month["linkage"] == {
        tier: round(sum(sum(1 for d in chronic if november.get((m, d), 0) > 0) / 2 for m in ms) / len(ms), 4)
        for tier in ("county", "township", "village")
        if (ms := [m for m, t in TIER_OF.items() if t == tier])
    }  # fmt: skip
    approved_qty: dict[str, float] = {}
    for lid, _m, d, qty, _sup in PLAN:
        if lid != cut:
            approved_qty[d] = approved_qty.get(d, 0.0) + (5.0 if lid == changed else qty)
    assert month["procurement"]["approved"] == approved_qty
    assert month["procurement"]["delivered"] == {DB: 20.0, DC: 11.0 + 41.0}
    assert {s["supplier"]: (s["deliveries"], s["onTime"]) for s in month["suppliers"]} == rates
    assert {t["id"] for t in month["targets"]} >= {"township-linkage-2024", "village-linkage-2025"}
    prescribed = {DA: 28.0 * (registered[DA] + 1), DB: 28.0 * registered[DB]}  # + the unreviewed one
    planned = {d: q for d, q in approved_qty.items()}
    assert month["demand"] == {
        d: {"prescribed": prescribed.get(d, 0.0), "planned": planned.get(d, 0.0),
            "held": sum(q for (_m, dd), q in november.items() if dd == d)}
        for d in (DA, DB, DC)
    }  # fmt: skip
    page = (tmp_path / "report" / "supply-report-2025-11.html").read_text(encoding="utf-8")
    assert page.count("<img") == 3 and "data:image/png;base64," in page
    assert (
        (tmp_path / "report" / "supply-report-2025-11.csv").read_text(encoding="utf-8").startswith("section,key,value")
    )
    stored = client.get(
        "/fhir/MeasureReport", params={"measure": "http://yaolian.org/fhir/Measure/annual-supply-report"}
    )
    assert stored.json()["total"] == 1
    yearly = _annual(db, year, tmp_path / "year")
    assert yearly["shortages"]["registered"] == 6 and yearly["shortages"]["closed"] == 0
    assert yearly["shortages"]["linkageCandidates"] == [{"drug": DA, "registrations": 4}]


def _cli_list(args: list[str]) -> Any:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def _annual(db: list[str], period: str, out: Path) -> Any:
    result = CliRunner().invoke(
        cli, ["report", "annual", "--period", period, "--format", "json", "--out", str(out), *db]
    )
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)
