"""Balancing surplus to deficit (POL-15, POL-25): never a giver below its own line, nearest
expiry first, the county central pharmacy's reserve last, no expired batch moved."""

from __future__ import annotations

import random
from datetime import date

from gateway.alliance.supply.alert_lines import AlertLines
from gateway.alliance.supply.balance import propose
from gateway.alliance.supply.stock import StockEntry, build_ledger
from gateway.federation.registry import MemberRegistry

TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"
D = "XB01ACL052A001010109991"
TODAY = date(2025, 11, 30)


def _registry(villages: int) -> MemberRegistry:
    orgs = [{"resourceType": "Organization", "id": "c", "type": [{"coding": [{"system": TIER, "code": "county"}]}]}]
    orgs += [
        {"resourceType": "Organization", "id": f"v{i}", "type": [{"coding": [{"system": TIER, "code": "village"}]}],
         "partOf": {"reference": "Organization/c"}}
        for i in range(villages)
    ]  # fmt: skip
    return MemberRegistry.from_organizations(orgs)


def test_pol15_nearest_expiry_first_and_central_reserve_last() -> None:
    lines = AlertLines({("county", D): 100, ("village", D): 10})
    ledger = build_ledger(
        StockEntry("r", "2025-11-01", True, m, D, lot, exp, q)
        for m, lot, exp, q in [
            ("c", "C-early", "2025-12-15", 500),  # the county's batch expires first of all, still last
            ("v0", "late", "2027-01-01", 14),
            ("v0", "soon", "2026-01-10", 3),
            ("v1", "mid", "2026-06-01", 20),
            ("v1", "gone", "2025-11-01", 50),  # expired: never moved
            ("v2", "x", "2027-01-01", 0),
            ("v3", "y", "2027-01-01", 4),
        ]
    )
    proposals = propose(ledger, lines, _registry(4), TODAY)
    # v2 needs 10, v3 needs 6. Spare: v0 17-10=7, v1 70-10=60 (but only 20 not expired), c 400.
    assert [(t.receiver, t.giver, t.lot, t.quantity) for t in proposals] == [
        ("v2", "v0", "soon", 3.0),
        ("v2", "v1", "mid", 7.0),
        ("v3", "v1", "mid", 6.0),
    ]


def test_pol15_county_reserve_used_when_members_run_out() -> None:
    lines = AlertLines({("county", D): 100, ("village", D): 10})
    ledger = build_ledger(
        StockEntry("r", "2025-11-01", True, m, D, lot, exp, q)
        for m, lot, exp, q in [
            ("c", "C1", "2026-05-01", 105),
            ("v0", "a", "2026-03-01", 12),
            ("v1", "b", "2027-01-01", 0),
        ]
    )
    proposals = propose(ledger, lines, _registry(2), TODAY)
    assert [(t.giver, t.quantity) for t in proposals] == [("v0", 2.0), ("c", 5.0)]


def test_pol15_no_giver_below_its_line_on_random_stock() -> None:
    """Property over random ledgers: every giver keeps at least its line (or all of its stock when
    it had none above it), every receiver gets no more than it lacks, expired batches stay."""
    rng = random.Random(15)
    registry = _registry(12)
    for _ in range(200):
        lines = AlertLines({("county", D): rng.randint(0, 200), ("village", D): rng.randint(0, 30)})
        for v in range(12):
            if rng.random() < 0.3:
                lines.rows[(f"v{v}", D)] = rng.randint(0, 40)
        rows = []
        for m in ["c", *(f"v{i}" for i in range(12))]:
            for b in range(rng.randint(0, 3)):
                rows.append((m, f"{m}-{b}", f"202{rng.randint(5, 7)}-{rng.randint(1, 12):02d}-01", rng.randint(0, 60)))
        ledger = build_ledger(StockEntry("r", "2025-11-01", True, m, D, lot, exp, q) for m, lot, exp, q in rows)
        proposals = propose(ledger, lines, registry, TODAY)
        given: dict[str, float] = {}
        got: dict[str, float] = {}
        for t in proposals:
            given[t.giver] = given.get(t.giver, 0) + t.quantity
            got[t.receiver] = got.get(t.receiver, 0) + t.quantity
            assert t.expiry >= TODAY.isoformat() and t.giver != t.receiver and t.quantity > 0
        for code, amount in given.items():
            member = registry.get(code)
            assert member is not None
            line = lines.line_for(member, D) or 0
            assert ledger.total(code, D) - amount >= line
        for code, amount in got.items():
            member = registry.get(code)
            assert member is not None
            line = lines.line_for(member, D)
            assert line is not None and ledger.total(code, D) + amount <= line


def test_pol15_transfers_stay_inside_one_county_alliance() -> None:
    def org(code: str, tier: str, parent: str | None = None) -> dict[str, object]:
        out: dict[str, object] = {"resourceType": "Organization", "id": code,
                                  "type": [{"coding": [{"system": TIER, "code": tier}]}]}  # fmt: skip
        if parent:
            out["partOf"] = {"reference": f"Organization/{parent}"}
        return out

    registry = MemberRegistry.from_organizations(
        [org("c1", "county"), org("c2", "county"), org("a", "village", "c1"), org("b", "village", "c2")]
    )
    lines = AlertLines({("village", D): 10})
    ledger = build_ledger(
        StockEntry("r", "2025-11-01", True, m, D, "L", "2027-01-01", q) for m, q in [("a", 0), ("b", 50)]
    )
    assert propose(ledger, lines, registry, TODAY) == []  # b is in another county
    ledger.batches[("c1", D)] = build_ledger([StockEntry("r", "x", True, "c1", D, "R", "2027-01-01", 30)]).batches[
        ("c1", D)
    ]
    assert [(t.giver, t.receiver, t.quantity) for t in propose(ledger, lines, registry, TODAY)] == [("c1", "a", 10.0)]
