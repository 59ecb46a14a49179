"""Stock alert evaluation and balancing over a provincial month of stock reports (issue 15).

    python benchmarks/bench_stock.py [--counties 10 100] [--members 100] [--drugs 100]
    python benchmarks/bench_stock.py --service --counties 1 2   # through SQLite and the service

Each county has one county hospital, 10 township centres and the rest villages (``--members`` in
all); every member reports every drug (one batch each) in a snapshot InventoryReport, so 100
counties x 100 members x 100 drugs is 1M stock rows. Per scale, in a fresh process (so peak
memory is that scale's): the reports are turned into ledger lines (:func:`entries_of`, what the
gateway does with what it reads), the ledger is built, alerts are evaluated, and balancing is
proposed. Prints CPU seconds per step (process time: the machine is shared, wall time is not
this work's alone), peak RSS, and the growth factor between the scales.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from typing import Any

TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"
SD = "http://yaolian.org/fhir/StructureDefinition/"


def _drug(i: int) -> str:
    return f"XB01AC{i:04d}A001010100000"[:23]


def province(counties: int, members: int, drugs: int) -> tuple[Any, Any, list[dict[str, Any]], Any]:
    """The synthetic province: (world, lines, organizations, reports generator)."""
    from gateway.alliance.supply.alert_lines import AlertLines
    from gateway.alliance.supply.reading import SupplyWorld
    from gateway.alliance.supply.terms import Catalogue, Places
    from gateway.federation.registry import MemberRegistry

    rng = random.Random(15)
    orgs: list[dict[str, Any]] = []
    codes: list[tuple[str, str]] = []
    for c in range(counties):
        county = f"c{c}"
        orgs.append(
            {"resourceType": "Organization", "id": county, "type": [{"coding": [{"system": TIER, "code": "county"}]}]}
        )
        codes.append((county, "county"))
        for t in range(10):
            orgs.append({"resourceType": "Organization", "id": f"{county}t{t}",
                         "partOf": {"reference": f"Organization/{county}"},
                         "type": [{"coding": [{"system": TIER, "code": "township"}]}]})  # fmt: skip
            codes.append((f"{county}t{t}", "township"))
        for v in range(members - 11):
            parent = f"{county}t{v % 10}"
            orgs.append({"resourceType": "Organization", "id": f"{county}v{v}",
                         "partOf": {"reference": f"Organization/{parent}"},
                         "type": [{"coding": [{"system": TIER, "code": "village"}]}]})  # fmt: skip
            codes.append((f"{county}v{v}", "village"))
    catalogue = Catalogue()
    for i in range(drugs):
        catalogue.add({"id": f"d{i}", "code": {"coding": [{"system": "http://yaolian.org/fhir/sid/nhsa-drug-code",
                                                            "code": _drug(i)}]}})  # fmt: skip
    places = Places()
    for code, _tier in codes:
        places.add({"id": f"{code}-ph", "managingOrganization": {"reference": f"Organization/{code}"}})
    world = SupplyWorld(MemberRegistry.from_organizations(orgs), catalogue, places)
    base = {"county": 400, "township": 80, "village": 15}
    lines = AlertLines({(tier, _drug(i)): float(base[tier]) for tier in base for i in range(drugs)})

    def reports() -> Any:
        for code, tier in codes:
            yield {
                "resourceType": "InventoryReport", "id": f"r-{code}", "status": "active", "countType": "snapshot",
                "reportedDateTime": "2025-11-30T18:00:00+08:00",
                "inventoryListing": [{"location": {"reference": f"Location/{code}-ph"}, "item": [
                    {"quantity": {"value": rng.randint(base[tier] // 2, 3 * base[tier])},
                     "item": {"reference": {"reference": f"Medication/d{i}"}},
                     "extension": [{"url": SD + "yl-lot-number", "valueString": f"L{i}"},
                                   {"url": SD + "yl-expiration-date",
                                    "valueDate": f"20{rng.randint(26, 29)}-{rng.randint(1, 12):02d}-01"}]}
                    for i in range(drugs)]}],
            }  # fmt: skip

    return world, lines, orgs, reports


def run(counties: int, members: int, drugs: int) -> dict[str, Any]:
    from datetime import date

    from gateway.alliance.supply.alerts import evaluate
    from gateway.alliance.supply.balance import propose
    from gateway.alliance.supply.bulk import without_cyclic_gc
    from gateway.alliance.supply.stock import build_ledger, entries_of

    world, lines, _orgs, reports = province(counties, members, drugs)
    timings: dict[str, float] = {}
    reading = 0.0  # only entries_of is timed, not the making of the synthetic reports
    entries = []
    with without_cyclic_gc():  # as load_ledger reads them
        for report in reports():
            start = time.process_time()
            entries.extend(entries_of(report, world))
            reading += time.process_time() - start
    timings["read reports -> ledger lines"] = reading
    start = time.process_time()
    ledger = build_ledger(entries)
    del entries
    timings["build ledger"] = time.process_time() - start
    start = time.process_time()
    findings = evaluate(ledger, lines, world.registry, date(2025, 11, 30), 90)
    timings["evaluate alerts"] = time.process_time() - start
    start = time.process_time()
    transfers = propose(ledger, lines, world.registry, date(2025, 11, 30))
    timings["balance"] = time.process_time() - start
    rows = sum(len(lots) for lots in ledger.batches.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"counties": counties, "rows": rows, "alerts": len(findings), "transfers": len(transfers),
            "seconds": timings, "peak_mb": round(peak_mb, 1)}  # fmt: skip


def run_through_service(counties: int, members: int, drugs: int, folder: str) -> dict[str, Any]:
    """The same province stored in SQLite and worked through the service: reading every report
    back (search, JSON), alert evaluation with its DetectedIssue writes, balancing. Loading is not
    timed (validation off, alerts after writes off, so loading is not what is measured)."""
    from datetime import date

    import orjson

    from gateway.alliance.supply.alert_lines import AlertLines
    from gateway.alliance.supply.alerts import evaluate, reconcile
    from gateway.alliance.supply.balance import propose
    from gateway.alliance.supply.reading import SupplyWorld
    from gateway.alliance.supply.stock import load_ledger
    from gateway.alliance.supply.system import system_context
    from gateway.app import create_app
    from gateway.hooks import RequestContext
    from gateway.settings import Settings

    world, lines, orgs, reports = province(counties, members, drugs)
    settings = Settings(database=f"sqlite:///{folder}/bench.db", validation_mode="off", audit=False,
                        supply_alerts_on_write=False, insecure_dev=True)  # fmt: skip
    app = create_app(settings)
    service = app.state.service
    ctx = system_context(RequestContext(base_url="http://bench/fhir"))
    resources = list(orgs)
    for org, loc in world.places.location_by_org.items():
        resources.append({"resourceType": "Location", "id": loc.removeprefix("Location/"),
                          "managingOrganization": {"reference": org}})  # fmt: skip
    for mid, code in world.catalogue.code_by_id.items():
        coding = {"system": "http://yaolian.org/fhir/sid/nhsa-drug-code", "code": code}
        resources.append({"resourceType": "Medication", "id": mid, "code": {"coding": [coding]}})
    resources += list(reports())
    for n in range(0, len(resources), 200):
        entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                   for r in resources[n : n + 200]]  # fmt: skip
        service.process_bundle(orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}), ctx)
    del resources
    timings: dict[str, float] = {}
    start = time.process_time()
    loaded = SupplyWorld.load(service, ctx)
    ledger = load_ledger(service, ctx, loaded)
    timings["read through the service -> ledger"] = time.process_time() - start
    today = date(2025, 11, 30)
    assert isinstance(lines, AlertLines)
    start = time.process_time()
    findings = evaluate(ledger, lines, loaded.registry, today, 90)
    timings["evaluate alerts"] = time.process_time() - start
    start = time.process_time()
    result = reconcile(service, ctx, loaded, findings, today.isoformat())
    timings["write alerts (DetectedIssue)"] = time.process_time() - start
    start = time.process_time()
    transfers = propose(ledger, lines, loaded.registry, today)
    timings["balance"] = time.process_time() - start
    app.state.store.dispose()
    rows = sum(len(lots) for lots in ledger.batches.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"counties": counties, "rows": rows, "alerts": len(result.raised), "transfers": len(transfers),
            "seconds": timings, "peak_mb": round(peak_mb, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counties", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--drugs", type=int, default=100)
    parser.add_argument("--service", action="store_true", help="through a SQLite store and the service")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one scale
    args = parser.parse_args()
    if args.one is not None:
        if args.service:
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                print(json.dumps(run_through_service(args.one, args.members, args.drugs, folder)))
        else:
            print(json.dumps(run(args.one, args.members, args.drugs)))
        return
    results = []
    for n in args.counties:
        child = [sys.executable, __file__, "--one", str(n), "--members", str(args.members), "--drugs", str(args.drugs)]
        child += ["--service"] if args.service else []
        result = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
        results.append(result)
        total = sum(result["seconds"].values())
        print(f"{n:>4} counties  {result['rows']:>9,} stock rows  {result['alerts']:>7,} alerts  "
              f"{result['transfers']:>7,} transfers  {total:7.2f} s  peak {result['peak_mb']:7.1f} MB")  # fmt: skip
        for step, seconds in result["seconds"].items():
            print(f"      {step:<32} {seconds:7.2f} s  ({1e6 * seconds / result['rows']:5.2f} us/row)")
    if len(results) >= 2:
        a, b = results[0], results[-1]
        scale = b["rows"] / a["rows"]
        growth = sum(b["seconds"].values()) / sum(a["seconds"].values())
        print(f"rows x{scale:.0f}: time x{growth:.1f}, peak memory x{b['peak_mb'] / a['peak_mb']:.1f}")


if __name__ == "__main__":
    main()
