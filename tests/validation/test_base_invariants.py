"""The base invariants of the R5 snapshots (issue 17): the compiled closures agree with fhirpathpy
on every evaluation over the official R5 examples and our oracle cases, and the table covers the
snapshot rules the structure walk evaluates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.validation import _invariants
from gateway.validation._base import base_issues
from gateway.validation._invariants import Invariant, invariants, not_evaluated

FIXTURES = Path(__file__).parents[1] / "fixtures"
RESOURCES = [json.loads(p.read_bytes()) for p in sorted((FIXTURES / "r5-examples").glob("*.json"))] + [
    case["resource"]
    for case in (json.loads(p.read_bytes()) for p in sorted((FIXTURES / "validator-cases").glob("*.json")))
    if "resource" in case
]


def test_closures_agree_with_fhirpathpy(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[str, str]] = []
    original = Invariant.check

    def both(self: Invariant, node: Any, where: Any, resource: Any, root: Any, out: list[Any]) -> None:
        if self.fn is not None:
            try:
                fast = self.fn([node])
            except _invariants.Unsure:
                fast = None
            except Exception:
                fast = None
            if fast is not None:
                try:
                    slow = _invariants._fhirpathpy(self, node, resource, root)
                except Exception:
                    slow = None
                if slow is not None:
                    assert (fast == [False]) == (slow == [False]), (self.context, self.key, node)
                    compared.append((self.context, self.key))
        original(self, node, where, resource, root, out)

    monkeypatch.setattr(Invariant, "check", both)
    for resource in RESOURCES:
        base_issues(resource, resource["resourceType"])
    assert len(compared) > 1000
    assert len({key for _, key in compared}) > 30


def test_every_snapshot_invariant_is_compiled_or_listed() -> None:
    table = _invariants._data()
    assert len(table["invariants"]) > 100
    ext = invariants("Extension")
    assert [i.key for i in ext] == ["ext-1"] and ext[0].fn is not None
    assert not_evaluated() == ["eld-11", "exs-1", "opd-3", "per-1", "ratrng-2", "rng-2"]
    assert not set(table["handled_in_code"]) & {r[0] for rows in table["invariants"].values() for r in rows}
