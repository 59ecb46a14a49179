#!/usr/bin/env python
"""Central pre-review throughput: reviews per second of a typical prescription with the full
rule set, a 10,000-drug catalogue and many stored prescriptions for the duplicate check.

Runnable script, not a test::

    python benchmarks/bench_review.py                          # SQLite, 200k stored prescriptions
    python benchmarks/bench_review.py --prescriptions 1000000 --database postgresql://...

It bulk-loads (``gateway.store.bulk``) the alliance's members, ``--drugs`` Medications, one list
per member and ``--prescriptions`` active MedicationRequests spread over ``--patients``
patients (so each patient has a few active prescriptions to compare with), then reviews one
typical prescription (metformin 0.5 g twice a day, 28 days, long-term, extended to a village)
again and again on one thread for ``--seconds``, three ways:

* ``engine``: facts + every rule, data in memory (the rule evaluation alone);
* ``review``: what ``$review`` does minus HTTP: the patient read and the alliance-wide search
  for active prescriptions through the service, then the engine;
* ``review+record``: the same plus the decision stored (Task, DetectedIssue per finding).

Target: at least 500 reviews/s on one core for ``review``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.alliance.catalogue import Dose, Drug, medication_id, to_medication
from gateway.alliance.formulary import FormularyVersion, to_list

SD = "http://yaolian.org/fhir/StructureDefinition/"
MEMBER = "http://yaolian.org/fhir/sid/member"
TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"
MEMBERS = (
    [("C1", "county", None)]
    + [(f"T{i}", "township", "C1") for i in range(1, 6)]
    + [(f"V{i}", "village", f"T{1 + i % 5}") for i in range(1, 21)]
)


def drugs(count: int) -> list[Drug]:
    rnd = random.Random(1)
    out = [
        Drug(
            "XA10BAE054A001010102770",
            "二甲双胍",
            "片剂",
            "0.5g",
            "diabetes",
            "A10BA02",
            None,
            Dose(2.55, "g"),
            True,
            "national",
        )
    ]
    for n in range(1, count):
        group = f"{rnd.choice('ABCDJMNR')}{rnd.randint(1, 16):02d}{rnd.choice('ABCDE')}{rnd.choice('ABCDE')}"
        atc = f"{group}{rnd.randint(1, 30):02d}"
        out.append(
            Drug(
                f"X{n:022d}",
                f"药品{n}",
                rnd.choice(["片剂", "胶囊", "注射剂"]),
                f"{rnd.randint(1, 500)}mg",
                rnd.choice([None, None, None, "hypertension", "diabetes", "copd"]),
                atc,
                None,
                Dose(rnd.randint(1, 20) * 100, "mg"),
                rnd.random() < 0.5,
                "none",
            )
        )
    return out


def prescription(n: int, drug: Drug, patient: int, member: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"rx{n}",
        "meta": {"tag": [{"system": MEMBER, "code": member}]},
        "extension": [{"url": SD + "yl-prescription-category", "valueCoding": {"code": "general"}}],
        "status": "active",
        "intent": "order",
        "medication": {"reference": {"reference": f"Medication/{medication_id(drug.nhsa_code)}"}},
        "subject": {"reference": f"Patient/p{patient}"},
        "authoredOn": "2026-11-01T09:00:00+08:00",
        "requester": {"reference": "Practitioner/d1"},
        "reason": [{"concept": {"coding": [{"code": "I10.x00x002"}]}}],
        "dispenseRequest": {"expectedSupplyDuration": {"value": 28, "code": "d"}},
    }


def typical(patient: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "typical",
        "extension": [
            {"url": SD + "yl-prescription-category", "valueCoding": {"code": "general"}},
            {
                "url": SD + "yl-long-term-prescription",
                "extension": [{"url": "chronicGroup", "valueCoding": {"code": "diabetes"}}],
            },
            {
                "url": SD + "yl-extended-prescription",
                "extension": [{"url": "dispensingMember", "valueReference": {"reference": "Organization/v1"}}],
            },
        ],
        "status": "active",
        "intent": "order",
        "medication": {"reference": {"reference": f"Medication/{medication_id('XA10BAE054A001010102770')}"}},
        "subject": {"reference": f"Patient/p{patient}"},
        "authoredOn": "2026-11-10T09:00:00+08:00",
        "requester": {"reference": "Practitioner/d1"},
        "reason": [{"concept": {"coding": [{"code": "E11.900"}]}}],
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 0.5, "unit": "g", "code": "g"}}],
            }
        ],
        "dispenseRequest": {"quantity": {"value": 56}, "expectedSupplyDuration": {"value": 28, "code": "d"}},
    }


def load(url: str, n_drugs: int, n_rx: int, n_patients: int) -> None:
    from gateway.store.bulk import bulk_load
    from gateway.store.sql import open_store

    store = open_store(url)
    store.create_schema()
    catalogue = drugs(n_drugs)
    rnd = random.Random(2)
    from gateway.alliance.catalogue import Catalogue

    cat = Catalogue.of(catalogue)

    def resources() -> Any:
        for code, tier, parent in MEMBERS:
            org: dict[str, Any] = {
                "resourceType": "Organization",
                "id": code.lower(),
                "name": code,
                "identifier": [{"system": MEMBER, "value": code}],
                "type": [{"coding": [{"system": TIER, "code": tier}]}],
            }
            if parent:
                org["partOf"] = {"reference": f"Organization/{parent.lower()}"}
            yield org
        yield from (to_medication(d) for d in catalogue)
        for code, _, _ in MEMBERS:
            listed = {d.nhsa_code for d in rnd.sample(catalogue, min(1500, len(catalogue)))} | {catalogue[0].nhsa_code}
            yield to_list(FormularyVersion(code, "2026-03-01", frozenset(listed)), cat, code.lower())
        for p in range(n_patients):
            yield {"resourceType": "Patient", "id": f"p{p}", "birthDate": f"{1940 + p % 60}-01-01"}
        for n in range(n_rx):
            yield prescription(n, rnd.choice(catalogue), n % n_patients, rnd.choice(MEMBERS)[0])

    started = time.perf_counter()
    total = bulk_load(store, resources(), batch=2000)
    print(f"loaded {total:,} resources in {time.perf_counter() - started:.0f} s")
    store.dispose()


def rate(label: str, seconds: float, step: Any) -> float:
    step()  # warm: snapshot, caches
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        count += 1
    per_second = count / (time.perf_counter() - started)
    print(f"{label:>15}: {per_second:8.0f} reviews/s ({count} in {seconds:.0f} s)")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="database URL (default: a new SQLite file)")
    parser.add_argument("--drugs", type=int, default=10_000)
    parser.add_argument("--prescriptions", type=int, default=200_000)
    parser.add_argument("--patients", type=int, default=40_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--skip-load", action="store_true", help="reuse --database as it is")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.mkdtemp()}/review.sqlite"
    if not args.skip_load:
        load(url, args.drugs, args.prescriptions, args.patients)

    from gateway.alliance.review.central import CentralReview
    from gateway.alliance.review.engine import review
    from gateway.commands import OPERATOR
    from gateway.hooks import RequestContext
    from gateway.service.fhir_service import FhirService
    from gateway.settings import Settings
    from gateway.store.sql import open_store

    settings = Settings(database=url, insecure_dev=True, audit=False)
    store = open_store(url)
    service = FhirService(store, settings)
    central = CentralReview(service)
    ctx = RequestContext(base_url="http://bench/fhir", principal=OPERATOR)
    patient = 7
    rx = typical(patient)
    snapshot = central.snapshot(ctx)
    subjects = central.subjects(rx, ctx, "T1")
    active = central.active_prescriptions(f"Patient/p{patient}", snapshot.catalogue, ctx)
    found = central.review_subjects(subjects, ctx)[0]
    print(
        f"catalogue {len(snapshot.catalogue):,} drugs, {len(snapshot.formularies.members())} lists, "
        f"{len(central.rule_set.rules)} rules (rule set {central.rule_set.version}); "
        f"patient has {len(active)} active prescriptions; typical result: {found.result} "
        f"{[f.rule for f in found.findings]}"
    )
    drug = subjects[0].drug
    rate(
        "engine",
        args.seconds,
        lambda: review(central.rule_set, snapshot, rx, drug, patient=subjects[0].patient, member="T1", active=active),
    )
    rate("review", args.seconds, lambda: central.review_body(rx, ctx, "T1"))
    rate("review+record", args.seconds, lambda: central.record(ctx, central.review_body(rx, ctx, "T1")[1]))
    store.dispose()


if __name__ == "__main__":
    main()
